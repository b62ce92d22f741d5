"""What real articles become in the script: what is spoken, and how each line reads.

Markdown excerpts are from kaityo256's Zenn articles (github.com/kaityo256/zenn-content, commit
9bdb769, CC BY 4.0): union_find_physics.md, markov_eigenvalue.md, boltzmann_machine4.md,
inside_the_branch.md, rebase_of_git.md, position_of_functions.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stages.fetch import extract
from stages.script.extractive import write_extractive
from stages.script.loader import dump_script
from stages.settings import load_settings

UNION_FIND = """---
title: "Union-Findアルゴリズムと物理"
topics: ["アルゴリズム", "物理"]
---

## 物理との関わり

このようなスピン系のサンプリングをする際、効率的なアルゴリズムとしてSwendsen-WangアルゴリズムやWolffアルゴリズムがあります。

* [R. H. Swendsen, J.-S. Wang, “Nonuniversal critical dynamics in Monte Carlo simulations”. Phys. Rev. Lett. vol. 58, pp. 86–88.](http://dx.doi.org/10.1103%2FPhysRevLett.58.86)
* [U. Wolff, "Collective Monte Carlo Updating for Spin Systems", Phys. Rev. Lett. vol. 62, pp. 361 (1989)](https://doi.org/10.1103/PhysRevLett.62.361)
* Union-Find

その基礎アルゴリズムにUnion-Findアルゴリズムが使われます。

## 参考

[Pro Git - 10.1 Git Internals](https://git-scm.com/book/en/v2/Git-Internals-Plumbing-and-Porcelain)
"""


@pytest.fixture
def settings(tmp_path):
    return load_settings(home=tmp_path / "home")


def script_of(tmp_path: Path, settings, markdown: str, name: str = "article.md"):
    path = tmp_path / name
    path.write_text(markdown, encoding="utf-8")
    return write_extractive(extract(path, settings), settings)


def test_english_citations_in_a_japanese_article_are_not_spoken(tmp_path, settings):
    """A cited paper or book title (no Japanese, four English words or more) is not read in katakana."""
    script = script_of(tmp_path, settings, UNION_FIND)
    spoken = " ".join(n.text for _s, _i, n in script.phrases())
    assert "Swendsen" in spoken and "Union-Findアルゴリズムが使われます" in spoken
    assert "Nonuniversal" not in spoken and "Collective" not in spoken and "Internals" not in spoken
    assert "Union-Find。" in spoken or "Union-Find." in spoken or spoken.count("Union-Find") >= 3


def test_script_yaml_is_pyyamls_text_and_keeps_emoji(tmp_path, settings, monkeypatch):
    """script.yaml (written by libyaml) is the text PyYAML writes, an emoji (in code on screen) as itself."""
    import yaml

    from stages.script import loader

    page = tmp_path / "page.html"
    page.write_text("<html><head><title>Weekend ideas</title></head><body><article><h1>Weekend ideas</h1>"
                    "<p>Try something new with your couple this weekend and take the long way home.</p>"
                    "<pre><code class='language-python'>print(\"Have a nice weekend 😉\")</code></pre>"
                    "<h2>Games</h2><p>Click here to get more information about the game we like.</p>"
                    "</article></body></html>", encoding="utf-8")
    scripts = [write_extractive(extract(page, settings), settings), script_of(tmp_path, settings, UNION_FIND)]
    fast = [dump_script(s) for s in scripts]
    assert "😉" in fast[0] and "\\U" not in fast[0]
    monkeypatch.setattr(loader, "_DUMPER", yaml.SafeDumper)
    assert fast == [dump_script(s) for s in scripts]


LONG_SENTENCES = [  # from markov_eigenvalue.md and boltzmann_machine4.md
    "マルコフ連鎖の遷移行列の固有値を調べると、定常分布への収束の速さが二番目に大きな固有値の絶対値で決まることがわかり、これが緩和時間に対応します。",
    "ぼっち飯のDaveは、いつも学食前のテラスでお弁当を食べていますが、同じクラスのAliceとBobが学食をよく利用していることに気づきます。",
    "そこでDaveは239日にわたって二人を観察し、AliceとBobが学食に来た日、来ていない日の統計を取りました。",
]


@pytest.mark.parametrize("sentence", LONG_SENTENCES)
def test_a_long_sentence_is_analysed_once_for_its_phrases_and_their_readings(sentence):
    """Phrases and readings are split_phrases' and reading_for's; a phrase without Latin costs no analysis of its own."""
    from stages.jtalk import analyse
    from stages.script.text import reading_for, split_phrases, spoken_phrases

    analyse.cache_clear()
    spoken = spoken_phrases(sentence, "ja")
    latin = sum(1 for phrase, _r in spoken if any("A" <= ch <= "z" for ch in phrase))
    assert analyse.cache_info().misses == 1 + latin  # the sentence, and each Latin phrase once rewritten
    assert len(spoken) > 1
    assert spoken == [(phrase, reading_for(phrase)) for phrase in split_phrases(sentence, "ja")]


def test_a_pronunciation_entry_still_shapes_a_long_sentences_reading():
    """A phrase holding a pronunciation entry's surface is read with it."""
    from stages.script.text import spoken_phrases

    spoken = spoken_phrases(LONG_SENTENCES[0], "ja", [("緩和時間", "カンワジカンダヨ")])
    assert any("緩和時間" in phrase and "カンワジカンダヨ" in reading for phrase, reading in spoken)


GIT = """---
title: "Gitのブランチの実装"
topics: ["git"]
---

## ブランチの実体

`HEAD`の実体は`.git/HEAD`というファイルで、`master`の実体は`.git/refs/heads/master`になっています。

この図を見ると、新しくできた`c1'`や`c2'`コミットは、リベース前の対応するコミット`c1`、`c2`とは異なるスナップショットを表していることがわかります。

デフォルトは`pick`です。`-i`をつけずに`rebase`した場合は、リベース対象となっている玉の数だけ、リベース先にくっつくことになります。

`edi`に1が、`xmm0`に`2.3`が入っていますね。それをアトミック演算(`atomicMin()`)を使って排他制御をしているようです。

`cluster[i] = i`である時、その要素は同じグループの代表です。
"""


def test_inline_code_that_names_a_path_prime_option_or_number_is_said_as_a_programmer_would(tmp_path, settings):
    """Paths, primes, options, numbers and calls in inline code are said (not 「このコード」), and read
    スラッシュ, ドット, ダッシュ, ハイフン; an expression is still 「このコード」."""
    script = script_of(tmp_path, settings, GIT)
    lines = [n for _s, _i, n in script.phrases()]
    text = "".join(n.text for n in lines)
    reading = "".join(n.reading or "" for n in lines)
    for said in (".git/HEAD", ".git/refs/heads/master", "c1'やc2'コミット", "-iをつけずに", "xmm0に2.3が", "(atomicMin)"):
        assert said in text, said
    for read in ("ドットギットスラッシュヘッド", "スラッシュレフススラッシュヘッズスラッシュマスター", "ダッシュヤ", "ハイフンアイヲ",
                 "ニーテンサン"):
        assert read in reading, read
    assert "このコードである時" in text  # cluster[i] = i is code, not a name
    assert "このコードや" not in text and "このコードコミット" not in text


@pytest.mark.parametrize(("text", "reading"), [
    ("I/OとTCP/IPとA/Bテスト", "アイオートティーシーピーアイピートエービーテスト"),  # acronyms keep their silent slash
    ("Three.jsとexample.com", "スリージェイエストエグザンプルドットコム"),
])
def test_marks_outside_code_keep_their_usual_readings(text, reading):
    """The code marks' readings leave acronyms with slashes and dotted names as they were read."""
    from stages.script.text import reading_for

    assert reading_for(text) == reading


PAGES = Path(__file__).parent / "data" / "pages"


def page(tmp_path: Path, prefix: str) -> Path:
    import gzip

    source = next(PAGES.glob(f"{prefix}*.html.gz"))
    out = tmp_path / f"{prefix}.html"
    out.write_bytes(gzip.decompress(source.read_bytes()))
    return out


def test_a_pages_furniture_is_neither_extracted_nor_said(tmp_path, settings):
    """A "Comments" or "Tell us what YOU think..." heading over a comment widget, and a WordPress
    shortcode the theme left unexpanded, are not the article: no section, no words."""
    for prefix, furniture in (("0dd135704572", "Comments"), ("30b771a40a4e", "Tell us what YOU think...")):
        article = extract(page(tmp_path, prefix), settings)
        assert furniture not in [b["text"] for b in article["blocks"] if b["type"] == "heading"]
        assert not any(b.get("text") == "comments" for b in article["blocks"])
        script = write_extractive(article, settings)
        spoken = " ".join(n.text for _s, _i, n in script.phrases())
        assert furniture not in spoken and "We cover Comments" not in spoken
        assert "button link" not in spoken and "newwindow" not in spoken
    # the review is said; the shortcode's own words were "Send us YOUR kit review", a call to action
    assert "feel great about being a biker" in spoken and "Send us" not in spoken


def test_english_lines_lose_the_spaces_and_commas_a_removed_handle_leaves(tmp_path, settings):
    """「the Senate , @NGRSenate .」 is said "the Senate." and 「Senate ’s」 "Senate’s"."""
    script = write_extractive(extract(page(tmp_path, "0dd135704572"), settings), settings)
    spoken = " ".join(n.text for _s, _i, n in script.phrases())
    assert "the Twitter handle of the Senate." in spoken
    assert "Senate’s plenary" in spoken
    assert ",." not in spoken and " ’s" not in spoken and " :" not in spoken


@pytest.mark.parametrize(("tex", "japanese", "english"), [  # inline math of least_squares_method2.md and others
    (r"\vec{y}", "ベクトルy", "vector y"),
    (r"\vec{\tilde{y}}", "ベクトルyチルダ", "vector y tilde"),
    (r"\theta_1 = a", "θ_1 = a", "θ_1 = a"),
    (r"x_1, x_2, \cdots, x_N", "x_1、x_2、…、x_N", "x_1, x_2, …, x_N"),
    (r"n^2", "nの2乗", "n to the 2"),
    (r"P^{-1}", "Pの−1乗", "P to the −1"),
    (r"\exp(-H)", "exp(−H)", "exp(−H)"),
    (r"3/4", "4分の3", "3/4"),
    (r"\frac{1}{2}", "2分の1", "1 over 2"),
    (r"a\sim b", "aチルダb", "a ~ b"),
    (r"y = ax", "y = a x", "y = a x"),
    (r"\sum_i x_i", None, None),
    (r"{}^t(1,0,0,0,0)", None, None),
    (r"|y_i - \tilde{y}_i|", None, None),
])
def test_inline_math_that_names_something_is_said_in_words(tex, japanese, english):
    """Names, relations and powers are said; sums, bars and transposes written before are 「この式」."""
    from stages.script.mathwords import math_words

    assert math_words(tex, True) == japanese
    assert math_words(tex, False) == english


LEAST_SQUARES = r"""---
title: "最小二乗法と線形代数"
topics: ["数学"]
---

## 最小二乗法

観測値$y_1, y_2, \cdots, y_N$が与えられているとします。推定関数を$y = ax$とし、パラメータを$\theta_1 = a$とします。

最小二乗法は「与えられたベクトル$\vec{y}$に対して、なるべく$\vec{\tilde{y}}$を近づけるようにパラメータを選ぶ作業」となります。

誤差の二乗和$\sum_i (y_i - \tilde{y}_i)^2$を最小化します。
"""


def test_a_formula_in_a_sentence_is_said_and_read_not_replaced_by_this_formula(tmp_path, settings):
    """Vectors, subscripts and relations are said (ベクトルy, y_1, θ_1 = a) and read (イコール,
    シータ, ピーアイ-style letters); only the sum is still 「この式」; no ベクトルベクトル."""
    script = script_of(tmp_path, settings, LEAST_SQUARES)
    lines = [n for _s, _i, n in script.phrases()]
    text = "".join(n.text for n in lines)
    reading = "".join(n.reading or "" for n in lines)
    assert "与えられたベクトルyに対して" in text and "ベクトルyチルダを近づける" in text
    assert "ベクトルベクトル" not in text
    assert "θ_1 = a" in text or "θ1 = a" in text
    assert "シータイチイコールエー" in reading and "ワイイコールエーエックス" in reading
    assert "ワイイチ、ワイニ、ワイエヌ" in reading
    assert text.count("この式") == 1  # the sum


def test_a_korean_page_opens_recaps_and_labels_its_parts_in_korean(tmp_path, settings):
    """The opening, the recap and the part labels follow the page's language (it opened with
    "In this video, we look at 엔터 미디어.")."""
    article = extract(page(tmp_path, "0ec95c7261d1"), settings)
    assert article["language"] == "ko"
    script = write_extractive(article, settings)
    spoken = [n.text for _s, _i, n in script.phrases()]
    assert spoken[0] == "이번 영상에서는 “엔터 미디어”에 대해 알아봅니다."
    assert spoken[-1] == "시청해 주셔서 감사합니다."
    assert not any("In this video" in t or "Thanks for watching" in t or "Part " in t for t in spoken)
    assert [s.title for s in script.sections][1:3] == ["파트 1", "파트 2"]
    assert script.sections[-1].title == "정리"


def test_an_english_title_ending_in_an_ellipsis_is_said_with_one_end_mark(tmp_path, settings):
    """「Só quem se Ama...」 in the opening sentence ends once, not "Ama....\""""
    path = tmp_path / "ama.html"
    path.write_text("<html lang='en'><head><title>Only who loves...</title></head><body><article>"
                    "<h1>Only who loves...</h1><p>Living a true experience of love is one of the greatest pleasures "
                    "of life, and it is worth every page of this long story about it.</p></article></body></html>",
                    encoding="utf-8")
    script = write_extractive(extract(path, settings), settings)
    assert [n.text for _s, _i, n in script.phrases()][0] == "In this video, we look at Only who loves."


def test_calls_to_action_and_photo_credits_are_not_said(tmp_path, settings):
    """"Click here…", "Subscribe to…", "READ MORE: …" and an image captioned only with its credit
    (lines of the eval's news pages) are not narrated; the article's sentences are."""
    path = tmp_path / "news.html"
    path.write_text(
        "<html lang='en'><head><title>Gadgets of the year</title></head><body><article><h1>Gadgets of the year</h1>"
        "<figure><img src='https://example.com/a.jpg' width='800' height='600'>"
        "<figcaption>(Image: gargantiopa / Getty Images)</figcaption></figure>"
        "<p>As the year comes to an end, it's time to sit back and reflect on the gadgets we saw.</p>"
        "<p>Click here for more information.</p><p>Subscribe to NJ.com’s newsletters.</p><p>See it now: Amazon</p>"
        "<p>READ MORE: China plague outbreak confirmed: Two diagnosed with disease in Beijing</p><p>Also:</p>"
        "<p>Disclosure: ZDNet may earn a commission from some of the products featured on this page.</p>"
        "<figure><img src='https://example.com/b.jpg' width='800' height='600'>"
        "<figcaption>Jason Cipriani/ZDNet</figcaption></figure>"
        "<p>This year we saw Samsung almost fold the Fold, and many other surprises besides.</p>"
        "</article></body></html>", encoding="utf-8")
    script = write_extractive(extract(path, settings), settings)
    spoken = " ".join(n.text for _s, _i, n in script.phrases())
    assert "it's time to sit back and reflect" in spoken and "Samsung almost fold the Fold" in spoken
    for unsaid in ("Click here", "Subscribe to", "READ MORE", "Getty", "This is", "See it now", "Also", "Disclosure",
                   "Cipriani"):
        assert unsaid not in spoken, unsaid


def test_emoji_are_not_said_and_a_cross_the_font_lacks_becomes_one_it_has(tmp_path, settings):
    """😉 (no voice says it, Noto Sans CJK has no glyph) leaves the line; 「☓☓段」 reads 「××段」."""
    script = script_of(tmp_path, settings, "---\ntitle: インライン展開\n---\n\n## 限界\n\n"
                       "コンパイラは関数のインライン展開を☓☓段で力尽きる。今週末は何か新しいことを試しましょう😉\n")
    text = "".join(n.text for _s, _i, n in script.phrases())
    assert "××段で力尽きる" in text and "試しましょう" in text
    assert "☓" not in text and "😉" not in text


@pytest.mark.parametrize(("sentence", "said"), [
    ("while Chrome browser output seem to be aiming for 60. pic.twitter.com/4p7SXk7JPW — Digital Foundry",
     "while Chrome browser output seem to be aiming for 60. — Digital Foundry"),  # a tweet embedded in a news page
    ("The thread is at t.co/abc123 for now.", "The thread is at for now."),
    ("Node.js and example.com stay, and so do 1/2, km/h and I/O.", "Node.js and example.com stay, and so do 1/2, km/h and I/O."),
    ("詳しくはhttps://example.com/docsを参照してください。", "詳しくはを参照してください。"),  # the URL ends where Japanese starts
    ("Node.js/Denoで動きます。", "Node.js/Denoで動きます。"),
])
def test_a_url_without_its_scheme_is_not_said(sentence, said):
    """A host with a path (pic.twitter.com/…, t.co/…) is a URL even without https://; names and ratios are not;
    a URL ends at the first character no URL holds."""
    from stages.script.visuals import speakable

    import re

    assert speakable(sentence, bool(re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", sentence))) == said


def test_an_image_whose_alt_is_its_files_name_is_not_introduced_by_it(tmp_path, settings):
    """「detached_headの図です」 (inside_the_branch.md's alt text) is not said; an alt in words is."""
    script = script_of(tmp_path, settings, "---\ntitle: Gitのブランチの実装\n---\n\n## Detached HEAD状態\n\n"
                       "いわゆる「detached HEAD」になりました。\n\n![detached_head](https://example.com/detached_head.png)\n\n"
                       "masterに戻りましょう。\n\n![ブランチの概念図](https://example.com/branch.png)\n\n"
                       "これでブランチが作られました。\n")
    text = "".join(n.text for _s, _i, n in script.phrases())
    assert "detached_head" not in text and "ブランチの概念図です" in text and "図の図" not in text
    images = [v for s in script.sections for v in s.visuals if v.kind == "image"]
    assert [v.caption for v in images] == [None, "ブランチの概念図"]


def test_a_review_spec_box_a_phone_number_and_magazine_promos_are_not_said(tmp_path, settings):
    """A bike magazine's review (an eval page) read its spec box aloud, telephone number and all
    ("Tested by: … RRP: 49.95 Euro (£40) More info: +49 (0)40 …"), and ended on the magazine's
    promotions; the review's own sentences, with one "Note:" or a ratio, are still said."""
    path = tmp_path / "review.html"
    path.write_text(
        "<html lang='en'><head><title>Touring jacket review</title></head><body><article>"
        "<h1>Touring jacket review</h1>"
        "<p>Tested by: Jane Rider RRP: 199 Euro (£170) More info: +44 (0)20 7946 0958</p>"
        "<p>If you want a jacket that keeps the rain out on a long day in the saddle, this one does it well.</p>"
        "<p>Note: the sizes come up small, so try one on before you buy it from a shop near you.</p>"
        "<p>The vents open at a 3:2 ratio of front to back, which keeps the air moving at speed.</p>"
        "<p>Send us YOUR kit review and win a prize from our sponsors.</p>"
        "<p>Get Motorcycle Weekly delivered through your letterbox every month.</p>"
        "</article></body></html>", encoding="utf-8")
    script = write_extractive(extract(path, settings), settings)
    spoken = " ".join(n.text for _s, _i, n in script.phrases())
    assert "keeps the rain out" in spoken and "Note: the sizes come up small" in spoken and "3:2 ratio" in spoken
    for unsaid in ("Tested by", "RRP", "7946", "Send us", "letterbox"):
        assert unsaid not in spoken, unsaid


def test_an_embedded_tweets_byline_and_a_tweet_of_hashtags_are_not_said(tmp_path, settings):
    """The Nigerian Senate page quotes its tweets: "— The Nigerian Senate (@NGRSenate) October 9, 2018"
    was said after each, and a tweet of one hashtag was said "TodayInSenatePlenary"; the tweets'
    own words still are."""
    script = write_extractive(extract(page(tmp_path, "0dd135704572"), settings), settings)
    spoken = " ".join(n.text for _s, _i, n in script.phrases())
    assert "Observe a minute silence in honour of the departed souls" in spoken
    assert "October 9, 2018" not in spoken and "TodayInSenatePlenary" not in spoken
