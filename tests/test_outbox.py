"""Delivery into outbox/ and done/, and failure notes in failed/: real files, a real tiny MP4."""

from __future__ import annotations

import json
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from daemon.events import EventStore
from daemon.outbox import Outbox, job_date, slugify
from stages.base import public_mode
from stages.settings import load_settings

JOB = "20261126-022000-3fa2c1"
OTHER = "20261126-023000-77aa00"


@pytest.fixture(scope="module")
def tiny_mp4(tmp_path_factory) -> Path:
    """A real 0.5 s 320x180 H.264 file."""
    out = tmp_path_factory.mktemp("video") / "tiny.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x180:rate=10", "-t", "0.5",
                    "-pix_fmt", "yuv420p", str(out)], check=True, timeout=60)
    return out


@pytest.fixture
def settings(tmp_path: Path):
    return load_settings(home=tmp_path / "home")


def make_job(settings, job_id: str, video: Path | None, *, title: str = "ベランダで始める ミニトマト栽培!",
             name: str = "tomato.md", extras: bool = True) -> Path:
    job_dir = settings.jobs_dir / job_id
    job_dir.mkdir(parents=True)
    (job_dir / "claim.json").write_text(json.dumps({"name": name, "kind": "article", "claimed_at": "2026-11-26T02:20:00+00:00"}))
    (job_dir / "source.md").write_text("# tomato\n")
    (job_dir / "script.yaml").write_text(yaml.safe_dump({"title": title, "sections": [{"title": "はじめに"}]},
                                                        allow_unicode=True))
    if video is not None:
        (job_dir / "video.mp4").write_bytes(video.read_bytes())
    if extras:
        (job_dir / "video.srt").write_text("1\n00:00:00,000 --> 00:00:00,500\nこんにちは\n")
        (job_dir / "timeline.json").write_text(json.dumps({
            "duration": 0.5, "chapters": [{"title": "はじめに", "start": 0.0}]}))
        (job_dir / "audio").mkdir()
        (job_dir / "audio" / "index.json").write_text(json.dumps({"credits": ["VOICEVOX:ずんだもん"]}))
        (job_dir / "article.json").write_text(json.dumps({"url": "https://example.com/tomato", "title": "x"}))
    return job_dir


@pytest.mark.parametrize(
    "title, slug",
    [
        ("ベランダで始める ミニトマト栽培!", "ベランダで始める-ミニトマト栽培"),
        ("Hello, World: a/b\\c*?", "hello-world-a-b-c"),
        ("../../etc/passwd", "etc-passwd"),
        ("Ｆｕｌｌｗｉｄｔｈ　ＡＢＣ", "fullwidth-abc"),
        ("???", ""),
    ],
)
def test_slugify_keeps_cjk_and_drops_unsafe_characters(title: str, slug: str) -> None:
    """Letters of any script survive; separators, dots and slashes do not."""
    assert slugify(title) == slug


def test_long_slugs_end_at_a_word_boundary() -> None:
    """A long English title is cut between words, not inside one; a CJK title anywhere."""
    title = "Apple releases iOS 17.2 with the new Journal app and spatial video recording for iPhone 15 Pro"
    slug = slugify(title)
    assert len(slug) <= 60 and title.lower().replace(".", "-").replace(" ", "-").startswith(slug + "-")
    assert slugify("あ" * 80) == "あ" * 50  # 150 bytes


def test_job_date_comes_from_the_job_id() -> None:
    """The date in outbox names is the job's, not the delivery day's."""
    assert job_date(JOB) in ("2026-11-25", "2026-11-26")  # local time of 02:20 UTC


def test_deliver_writes_mp4_srt_and_json(settings, tiny_mp4) -> None:
    """outbox/<date>-<slug>.{mp4,srt,json} appear with the metadata; the input is copied to done/."""
    make_job(settings, JOB, tiny_mp4)
    output = Path(Outbox(settings).deliver(JOB))
    stem = f"{job_date(JOB)}-ベランダで始める-ミニトマト栽培"
    assert output == settings.outbox / f"{stem}.mp4"
    assert output.read_bytes() == tiny_mp4.read_bytes()
    assert (settings.outbox / f"{stem}.srt").read_text().endswith("こんにちは\n")
    meta = json.loads((settings.outbox / f"{stem}.json").read_text())
    assert meta["job_id"] == JOB
    assert meta["title"] == "ベランダで始める ミニトマト栽培!"
    assert meta["source"] == "https://example.com/tomato"
    assert meta["duration"] == 0.5
    assert meta["chapters"] == [{"title": "はじめに", "start": 0.0}]
    assert meta["credits"] == ["VOICEVOX:ずんだもん"]
    assert (settings.done / "tomato.md").read_text() == "# tomato\n"
    assert sorted(p.name for p in settings.outbox.iterdir()) == sorted(
        [f"{stem}.mp4", f"{stem}.srt", f"{stem}.json"])
    for path in settings.outbox.iterdir():  # like any new file (0644 under umask 022), not 0600
        assert stat.S_IMODE(path.stat().st_mode) == public_mode(), path


def test_deliver_tolerates_a_bare_job_folder(settings, tiny_mp4) -> None:
    """Without timeline, audio index or srt: duration from ffprobe, title from the script."""
    make_job(settings, JOB, tiny_mp4, extras=False)
    output = Path(Outbox(settings).deliver(JOB))
    meta = json.loads(output.with_suffix(".json").read_text())
    assert meta["duration"] == pytest.approx(0.5, abs=0.1)
    assert meta["credits"] == [] and meta["source"] == "tomato.md"
    assert not output.with_suffix(".srt").exists()


def test_deliver_again_after_a_crash_changes_nothing(settings, tiny_mp4) -> None:
    """Delivering the same job twice reuses its names: no duplicates in outbox/ or done/."""
    make_job(settings, JOB, tiny_mp4)
    outbox = Outbox(settings)
    first = outbox.deliver(JOB)
    listing = sorted(p.name for p in settings.outbox.iterdir())
    assert outbox.deliver(JOB) == first
    assert sorted(p.name for p in settings.outbox.iterdir()) == listing
    assert [p.name for p in settings.done.iterdir()] == ["tomato.md"]


def test_same_title_same_day_gets_a_distinct_name(settings, tiny_mp4) -> None:
    """A second job with the same title does not overwrite the first one's video."""
    make_job(settings, JOB, tiny_mp4)
    make_job(settings, OTHER, tiny_mp4)
    outbox = Outbox(settings)
    first, second = Path(outbox.deliver(JOB)), Path(outbox.deliver(OTHER))
    assert first != second and first.exists() and second.exists()
    assert second.stem.endswith("-77aa00")
    assert sorted(p.name for p in settings.done.iterdir()) == ["tomato-1.md", "tomato.md"]


def test_untitled_falls_back_to_the_job_id(settings, tiny_mp4) -> None:
    """A title with no usable characters gives <date>-<job id>."""
    make_job(settings, JOB, tiny_mp4, title="???")
    assert Path(Outbox(settings).deliver(JOB)).stem == f"{job_date(JOB)}-{JOB}"


def test_deliver_without_a_video_raises(settings) -> None:
    """No video.mp4: delivery fails loudly (the runner turns that into a failed job)."""
    make_job(settings, JOB, None)
    with pytest.raises(FileNotFoundError):
        Outbox(settings).deliver(JOB)


def test_fail_copies_the_input_and_writes_a_note(settings) -> None:
    """failed/<name> holds the original bytes; the note names job, stage, error and the runner's hint.
    The job folder keeps its copy, so retry still works."""
    make_job(settings, JOB, None)
    store = EventStore(settings.db_path)
    store.submit(JOB, source="tomato.md", kind="article")
    store.append(JOB, "job.failed", "audio", stage="audio", error="VOICEVOX is down",
                 hint="check the service; `moviegen retry JOB`")
    Outbox(settings, store=store).fail(JOB, "audio", "VOICEVOX is down")
    store.close()
    assert (settings.failed / "tomato.md").read_text() == "# tomato\n"
    note = (settings.failed / "tomato.md.error.txt").read_text()
    assert f"job:   {JOB}" in note and "stage: audio" in note and "VOICEVOX is down" in note
    assert f"moviegen retry {JOB}" in note
    assert (settings.jobs_dir / JOB / "source.md").exists()


def test_fail_twice_reuses_the_entry_and_success_clears_it(settings, tiny_mp4) -> None:
    """A job failing again rewrites its note; another job's failure gets its own name; a later
    success removes the job's entry from failed/."""
    make_job(settings, JOB, tiny_mp4)
    make_job(settings, OTHER, None)
    outbox = Outbox(settings)
    outbox.fail(JOB, "video", "first")
    outbox.fail(JOB, "video", "second")
    outbox.fail(OTHER, "script", "other")
    assert sorted(p.name for p in settings.failed.iterdir()) == [
        "tomato-1.md", "tomato-1.md.error.txt", "tomato.md", "tomato.md.error.txt"]
    assert "second" in (settings.failed / "tomato.md.error.txt").read_text()
    outbox.deliver(JOB)
    assert sorted(p.name for p in settings.failed.iterdir()) == ["tomato-1.md", "tomato-1.md.error.txt"]
