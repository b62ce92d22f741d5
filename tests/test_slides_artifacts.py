"""A sample deck at 1080p with every layout, saved to tests/artifacts/slides/ for people to look at."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw

from stages.settings import load_settings
from stages.slides import generate_slides
from tests.test_slides import Notes, assert_clear_of_safe_areas

ARTIFACTS = Path(__file__).parent / "artifacts" / "slides"


def sample_picture(path: Path) -> None:
    """A photo-like landscape picture: sky gradient, hills, a sun."""
    w, h = 1200, 800
    sky = np.linspace([70, 130, 200], [190, 220, 240], h).astype(np.uint8)
    image = Image.fromarray(np.repeat(sky[:, None, :], w, axis=1))
    draw = ImageDraw.Draw(image)
    draw.ellipse([850, 120, 1010, 280], fill=(255, 214, 90))
    draw.polygon([(0, 560), (300, 380), (620, 600), (900, 420), (1200, 580), (1200, 800), (0, 800)], fill=(60, 140, 90))
    draw.polygon([(0, 680), (400, 560), (800, 700), (1200, 620), (1200, 800), (0, 800)], fill=(40, 105, 70))
    image.save(path)


SAMPLE = {
    "title": "SQLiteのWALモードって何？書き込み中でも読み込みが止まらない仕組み",
    "language": "ja",
    "sections": [
        {"title": "はじめに", "narrations": ["今日はSQLiteのWALモードについて話すのだ！"]},
        {
            "title": "WALの仕組み",
            "narrations": [
                "変更はまず別のファイルに追記されるのだ。読む人は古いページをそのまま読めるので、待たされません。"
                "チェックポイントで本体に書き戻すのだ。"
            ],
        },
        {
            "title": "How checkpoints work",
            "narrations": ["A checkpoint copies pages back."],
            "slide": {"bullets": [
                "The write-ahead log grows until a checkpoint copies pages back into the database file",
                "SQLite runs an automatic checkpoint at 1000 pages by default",
                "Readers never block writers, and writers never block readers",
            ]},
        },
        {"title": "図で見るWAL", "narrations": ["図を見てほしいのだ。"], "source_image_url": "picture.png"},
        {
            "title": "写真",
            "narrations": ["キャプション付きの画像なのだ。"],
            "slide": {"image": "picture.png", "caption": "図：読み手と書き手が同時に動く様子（イメージ）",
                      "layout": "image_caption"},
        },
        {
            "title": "注意点",
            "narrations": ["長い文章は自動で小さくなり、入りきらなければ省略されるのだ。"],
            "slide": {"heading": "注意点：WALファイルは同じディレクトリに作られ、ネットワーク越しのファイルシステムでは使えない",
                      "bullets": ["WALファイル（-wal）と共有メモリファイル（-shm）がデータベースと同じ場所に作られる。",
                                  "NFSなどのネットワークファイルシステムでは、共有メモリが使えないため動かない。",
                                  "読み込み専用のメディアでは、WALモードに切り替えられない。",
                                  "非常に大きなトランザクションでは、WALファイルが大きくなりすぎることがある。",
                                  "チェックポイントが追いつかないと、読み込み性能が少しずつ落ちていく。"]},
        },
        {
            "title": "まとめ",
            "narrations": ["読み込みが多いアプリには、WALモードがおすすめですわ。", "みんなも試してみるのだ！"],
        },
    ],
}


def test_sample_deck_is_saved_for_people_to_look_at(tmp_path: Path):
    """The sample renders every layout at 1920x1080 within the safe areas, and lands in tests/artifacts/."""
    job = tmp_path / "job"
    job.mkdir()
    (job / "script.yaml").write_text(yaml.safe_dump(SAMPLE, allow_unicode=True), "utf-8")
    (job / "article.json").write_text(json.dumps({"site": "sqlite.org", "published": "2024-05-01"}), "utf-8")
    sample_picture(job / "picture.png")
    settings = load_settings(home=tmp_path / "home")
    notes = Notes()
    index_path = generate_slides(job / "script.yaml", job, settings, cache_dir=tmp_path / "cache", note=notes)
    index = json.loads(index_path.read_text("utf-8"))
    layouts = [s["layout"] for s in index["slides"]]
    assert layouts == ["title", "bullets", "bullets", "image", "image_caption", "bullets", "closing"]
    assert not notes.named("image fallback")
    assert_clear_of_safe_areas(index)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    for slide in index["slides"]:
        shutil.copyfile(slide["path"], ARTIFACTS / f"{slide['section']:02d}-{slide['layout']}.png")
    (ARTIFACTS / "index.json").write_text(json.dumps(index, ensure_ascii=False, indent=2), "utf-8")
    assert len(list(ARTIFACTS.glob("*.png"))) == len(SAMPLE["sections"])
