"""Chapters inside the MP4: real tiny renders read back with ffprobe -show_chapters."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from stages.video import plan_timeline, render_timeline
from stages.video.chapters import escape_ffmetadata, ffmetadata_text
from stages.video.timeline import Chapter
from tests.test_video_fixtures import Phrase, make_job

TITLES = ["はじめに = 準備; #1", "後半 \\ まとめ"]


def probe_chapters(path: Path) -> list[dict]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_chapters", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["chapters"]


def titled_job(root: Path):
    job = make_job(root, [[Phrase("最初の字幕", seconds=0.8)], [Phrase("最後の字幕", seconds=0.6)]])
    script = yaml.safe_load((job.dir / "script.yaml").read_text(encoding="utf-8"))
    for section, title in zip(script["sections"], TITLES):
        section["title"] = title
    (job.dir / "script.yaml").write_text(yaml.safe_dump(script, allow_unicode=True), encoding="utf-8")
    return job


@pytest.mark.parametrize("mode", ["segments", "graph"])
def test_rendered_mp4_lists_the_sections_as_chapters(tmp_path, mode):
    """ffprobe -show_chapters lists one chapter per section, with its title and start, in both modes."""
    job = titled_job(tmp_path)
    settings = job.settings.model_copy(deep=True)
    settings.video.ffmpeg_mode = mode
    timeline = plan_timeline(job.dir, settings)
    out = render_timeline(timeline, tmp_path / "out.mp4", settings)
    chapters = probe_chapters(out)
    assert [c["tags"]["title"] for c in chapters] == TITLES
    assert float(chapters[0]["start_time"]) == 0.0
    assert float(chapters[1]["start_time"]) == pytest.approx(timeline.chapters[1].start, abs=0.002)
    assert float(chapters[1]["end_time"]) == pytest.approx(timeline.duration, abs=0.002)
    assert float(chapters[0]["end_time"]) == pytest.approx(float(chapters[1]["start_time"]), abs=0.002)
    streams = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(out)],
                                        capture_output=True, text=True, check=True).stdout)["streams"]
    # the remux kept both streams; the MP4 muxer adds its chapter text track as a data stream
    assert sorted(s["codec_type"] for s in streams) == ["audio", "data", "video"]
    assert not list(tmp_path.glob(".*part*"))  # no temporary left beside it


def test_a_cache_hit_has_the_chapters_too(tmp_path):
    """The render cache keeps the file with its chapters: a second job's hit lists them as well."""
    job = titled_job(tmp_path)
    timeline = plan_timeline(job.dir, job.settings)
    cache = tmp_path / "cache"
    notes: list[dict] = []
    render_timeline(timeline, tmp_path / "a.mp4", job.settings, cache_dir=cache)
    second = render_timeline(timeline, tmp_path / "b.mp4", job.settings, cache_dir=cache,
                             note=lambda message, **data: notes.append({"message": message, **data}))
    assert any(n.get("hit") for n in notes if n["message"] == "video cache")
    assert [c["tags"]["title"] for c in probe_chapters(second)] == TITLES


def test_ffmetadata_escapes_user_titles_and_skips_empty_chapters():
    """Titles cannot add keys or sections to the metadata file; zero-length chapters are left out."""
    assert escape_ffmetadata("a=b;c#d\\e\nf") == "a\\=b\\;c\\#d\\\\e\\\nf"
    text = ffmetadata_text([Chapter(title="x\n[CHAPTER]\nSTART=5", start=0), Chapter(title="empty", start=2.0),
                            Chapter(title="last", start=2.0)], 3.5)
    assert text.count("[CHAPTER]\n") == 2  # the title's newlines became spaces and "empty" is skipped
    assert "title=x [CHAPTER] START\\=5\n" in text
    assert "START=2000\nEND=3500\ntitle=last" in text


def test_remotion_renders_get_the_chapters_too(tmp_path):
    """The chapters step is shared: a Remotion render lists the same chapters."""
    from stages.video.remotion import DEFAULT_PROJECT_DIR

    if not (DEFAULT_PROJECT_DIR / "node_modules" / "@remotion" / "renderer").is_dir():
        pytest.skip("remotion/node_modules missing: run `make setup-test` (npm ci in remotion/)")
    job = titled_job(tmp_path)
    timeline = plan_timeline(job.dir, job.settings)
    out = render_timeline(timeline, tmp_path / "remotion.mp4", job.settings, renderer="remotion",
                          timeline_path=timeline.save(job.dir / "timeline.json"))
    assert [c["tags"]["title"] for c in probe_chapters(out)] == TITLES
