"""Prompts for the LLM writer: Japanese and English, single narrator and dialogue.

They ask for the structure the original movie-generator used (hook, context, 3–5 main points,
conclusion), phrases of about 40 characters (15 words), and, for Japanese, katakana readings
written by its rules (particles は→ワ and へ→エ, small ッ, acronyms letter by letter, numbers
and English words read out).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stages.settings import Persona

SYSTEM_JA = """あなたは解説動画の台本作家です。与えられた記事だけを根拠に、視聴者を引き込み、内容を正しく理解させる台本を書きます。記事にない事実を付け加えてはいけません。出力は指定されたJSONだけです。"""

SYSTEM_EN = """You write scripts for narrated explainer videos. Use only the article you are given as your source; never add facts it does not contain. Output only the requested JSON."""

STRUCTURE_JA = """【構成】
1. 掴み（Hook）: 驚きの事実や問題提起で始め、最初の15秒で「知りたい」と思わせる。
2. 背景（Context）: なぜこの話題が視聴者にとって大事なのかを説明する。
3. 本編: 3〜5個の要点。各要点を1セクションとし、具体例や数字を添え、つなぎの言葉で自然につなぐ。
4. まとめ（Conclusion）: 要点を3つ以内で振り返り、視聴者が次にすることを示す。最後のセクションのタイトルは「まとめ」とする。
全体で6セクション前後、話す長さは約{minutes}分（およそ{chars}文字）に収める。"""

STRUCTURE_EN = """[Structure]
1. Hook: open with a surprising fact or a question that makes viewers want to know more, within the first 15 seconds.
2. Context: why the topic matters to the viewer.
3. Core: 3 to 5 main points, one section each, with concrete examples or numbers, linked by transitions.
4. Conclusion: recap at most 3 points and tell viewers what to do next. Title the last section "Summary".
About 6 sections in all; the narration should last about {minutes} minutes (about {words} words)."""

PHRASES_JA = """【ナレーション】
- 話し言葉で書く。各 narrations の要素は1フレーズ（字幕1枚分）で、40文字程度まで。長い文は読点や助詞の後など自然な位置で分ける。
- 専門用語は噛み砕いて説明する。
- 各セクションの slide には heading（短い見出し）と bullets（2〜5個、各25文字以内）を書く。
- 記事の画像一覧にセクションの内容と直接関係する画像があれば、その URL を source_image_url に入れる。なければ null。
- 記事のコード・表・数式には [V1] のような印がある。それを紹介する行（「次のコードを見てみましょう」など）の show にその印（"V1"）を入れると画面に表示される。ほかの行の show は null。
- コード、表のセルの中身、数式の記号、URL、@ユーザー名は読み上げない。リンクはその文字だけを話す。"""

PHRASES_EN = """[Narration]
- Spoken language. Each element of narrations is one phrase (one subtitle), at most about 15 words; split long sentences at commas or before conjunctions.
- Explain jargon in plain words.
- Each section's slide has a short heading and 2 to 5 bullets of at most 10 words.
- If the article's image list has an image directly about the section, put its URL in source_image_url; otherwise null.
- The article's code, tables and formulas are marked like [V1]. On the line that introduces one ("Here is the code"), set show to its mark ("V1") to put it on screen; on other lines show is null.
- Never read out code, table cells, formula symbols, URLs or @handles. Say only a link's words."""

READING_JA = """【reading（読み）の規則 — 音声合成が読む文字列。字幕は text を表示する】
- すべてカタカナで書く（ひらがな・漢字・英字・数字・空白は使わない）。句読点は「、。！？」だけ使ってよい。
- 助詞の「は」は「ワ」、「へ」は「エ」と書く（例: 「これは」→「コレワ」、「東京へ」→「トーキョーエ」）。
- 促音は小さい「ッ」で書く（例: 「言った」→「イッタ」、「APIって」→「エーピーアイッテ」）。
- 英字の略語は一文字ずつ読む（例: 「API」→「エーピーアイ」、「CPU」→「シーピーユー」）。英単語は一般的なカタカナ読みにする（例: 「GitHub」→「ギットハブ」）。
- 数字は読みに直す（例: 「2024年」→「ニセンニジュウヨネン」、「97%」→「キュウジュウナナパーセント」）。
- 例: text「APIって何？」→ reading「エーピーアイッテナニ？」、text「明日は晴れです」→ reading「アシタワハレデス」"""

READING_EN = """[reading]
- Set reading to null; the voice reads text as written."""

DIALOGUE_JA = """【話者】
この台本は次のキャラクターの掛け合いで進める。narrations の各要素の persona_id には必ず次のいずれかの id を入れる:
{personas}
- 1人目が主に解説し、2人目が視聴者の代わりに質問やリアクションをする。単調な交互発言を避け、相槌や短い質問を混ぜる。
- 口調は各キャラクターで一貫させる。"""

DIALOGUE_EN = """[Speakers]
The script is a conversation between these characters. Every element of narrations must set persona_id to one of these ids:
{personas}
- The first one mostly explains; the second asks the questions a viewer would and reacts. Avoid a mechanical back-and-forth: mix in short reactions and questions.
- Keep each character's voice consistent."""

SINGLE_JA = """【話者】
1人のナレーター（persona_id は "{persona}"）が語る。"""

SINGLE_EN = """[Speaker]
One narrator tells the story (persona_id "{persona}")."""

FORMAT_JA = """【出力】
次の形のJSONオブジェクトだけを出力する（コードフェンスや説明文は不要）:
{{"title": 動画タイトル, "description": 動画の説明, "sections": [{{"title": セクション名, "narrations": [{{"text": 字幕の文, "reading": カタカナの読み, "persona_id": 話者id, "show": 印またはnull}}], "slide": {{"heading": 見出し, "bullets": [箇条書き]}}, "source_image_url": 画像URLまたはnull}}]}}"""

FORMAT_EN = """[Output]
Output only a JSON object of this shape (no code fences, no commentary):
{{"title": video title, "description": video description, "sections": [{{"title": section name, "narrations": [{{"text": subtitle text, "reading": null, "persona_id": speaker id, "show": mark or null}}], "slide": {{"heading": heading, "bullets": [bullets]}}, "source_image_url": image URL or null}}]}}"""

ARTICLE_JA = """【記事】
タイトル: {title}
URL: {url}

{body}

【記事の画像一覧】
{images}"""

ARTICLE_EN = """[Article]
Title: {title}
URL: {url}

{body}

[Images in the article]
{images}"""

RETRY_JA = """直前の出力は次の理由で受け付けられませんでした:
{errors}
同じ形のJSONを、誤りを直して、JSONだけで出力し直してください。"""

RETRY_EN = """Your previous reply was rejected for these reasons:
{errors}
Reply again with the corrected JSON object only, in the same shape."""


def system_prompt(japanese: bool) -> str:
    """The system message."""
    return SYSTEM_JA if japanese else SYSTEM_EN


def instructions(japanese: bool, personas: "list[Persona]", dialogue: bool, max_minutes: float) -> str:
    """Everything but the article: structure, phrasing, speakers, readings and output shape."""
    if dialogue:
        listing = "\n".join(f"- {p.id}" + (f"（{p.name}）" if japanese and p.name else f" ({p.name})" if p.name else "") for p in personas)
        speakers = (DIALOGUE_JA if japanese else DIALOGUE_EN).format(personas=listing)
    else:
        speakers = (SINGLE_JA if japanese else SINGLE_EN).format(persona=personas[0].id)
    if japanese:
        parts = [STRUCTURE_JA.format(minutes=_minutes(max_minutes), chars=int(max_minutes * 300)), PHRASES_JA, speakers, READING_JA, FORMAT_JA.format()]
    else:
        parts = [STRUCTURE_EN.format(minutes=_minutes(max_minutes), words=int(max_minutes * 150)), PHRASES_EN, speakers, READING_EN, FORMAT_EN.format()]
    return "\n\n".join(parts)


def article_message(japanese: bool, title: str, url: str, body: str, images: str) -> str:
    """The article part of the user message."""
    return (ARTICLE_JA if japanese else ARTICLE_EN).format(title=title, url=url or "-", body=body, images=images or "-")


def retry_message(japanese: bool, errors: str) -> str:
    """The follow-up after a reply that failed validation."""
    return (RETRY_JA if japanese else RETRY_EN).format(errors=errors)


def _minutes(value: float) -> str:
    return f"{value:g}"
