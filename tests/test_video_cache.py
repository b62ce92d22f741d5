"""The render cache on real tiny renders (320x180): hits, misses, corrupt entries, eviction."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image

import stages.video.ffmpeg as ffmpeg_renderer
import stages.video.render_process as render_process
from stages.base import JobContext
from stages.video import VideoStage, plan_timeline, render_timeline, verify_video
from stages.video.cache import GB, cache_folder, entry_path, render_key
from tests.test_video_fixtures import Phrase, make_job


class Recorder:
    """Collects notes and progress calls; counts the ffmpeg renders that actually ran."""

    def __init__(self, monkeypatch):
        self.notes: list[tuple[str, dict]] = []
        self.progress: list[tuple[int, int, str]] = []
        self.renders = 0
        original = render_process.render_in_child  # the ffmpeg render runs in a child process

        def counting(*args, **kwargs):
            self.renders += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(render_process, "render_in_child", counting)

    def note(self, message: str, **data) -> None:
        self.notes.append((message, data))

    def on_progress(self, current: int, total: int, message: str) -> None:
        self.progress.append((current, total, message))

    def last_cache_note(self) -> dict:
        return [data for message, data in self.notes if message == "video cache"][-1]


@pytest.fixture
def job(tmp_path):
    return make_job(tmp_path, [[Phrase("最初", "narrator", 0.5), Phrase("次", "zundamon", 0.5)]],
                    characters={"zundamon": (60, 60, 220)})


def render(job, timeline, out: Path, rec: Recorder, cache: Path, **kwargs) -> Path:
    return render_timeline(timeline, out, job.settings, rec.on_progress, cache_dir=cache, note=rec.note, **kwargs)


def test_the_same_timeline_is_rendered_once(job, tmp_path, monkeypatch):
    rec = Recorder(monkeypatch)
    cache = tmp_path / "cache"
    timeline = plan_timeline(job.dir, job.settings)
    first = render(job, timeline, tmp_path / "a" / "video.mp4", rec, cache)
    miss = rec.last_cache_note()
    assert miss["hit"] is False and miss["stored"] == "link" and rec.renders == 1
    entry = entry_path(cache, miss["key"])
    assert entry.is_file() and entry.stat().st_ino == first.stat().st_ino  # no extra space while the job has it

    rec.progress.clear()
    again = plan_timeline(job.dir, job.settings)  # planned afresh, as a second job would
    second = render(job, again, tmp_path / "b" / "video.mp4", rec, cache)
    hit = rec.last_cache_note()
    assert hit == {"hit": True, "key": miss["key"], "placed": "link", "renderer": "ffmpeg"}
    assert rec.renders == 1  # nothing was encoded
    assert second.stat().st_ino == entry.stat().st_ino
    assert second.read_bytes() == first.read_bytes()
    assert rec.progress[-1][:2] == (timeline.frames, timeline.frames)
    assert not [p for p in second.parent.iterdir() if p.name.startswith(".")]  # no temporary left
    verify_video(second, timeline)


def test_a_changed_subtitle_or_character_image_is_a_miss(job, tmp_path, monkeypatch):
    rec = Recorder(monkeypatch)
    cache = tmp_path / "cache"
    timeline = plan_timeline(job.dir, job.settings)
    key = render_key(timeline, job.settings, "ffmpeg")
    render(job, timeline, tmp_path / "a.mp4", rec, cache)

    cue = timeline.subtitles[0].model_copy(update={"text": "変更", "lines": ["変更"]})
    edited = timeline.model_copy(update={"subtitles": [cue, *timeline.subtitles[1:]]})
    assert render_key(edited, job.settings, "ffmpeg") != key
    render(job, edited, tmp_path / "b.mp4", rec, cache)
    assert rec.last_cache_note()["hit"] is False and rec.renders == 2

    # the same path, new pixels: the user redrew their character
    image = Path(timeline.characters[0].mouth_open)
    Image.new("RGBA", (60, 100), (0, 255, 0, 255)).save(image)
    assert render_key(timeline, job.settings, "ffmpeg") != key
    render(job, timeline, tmp_path / "c.mp4", rec, cache)
    assert rec.last_cache_note()["hit"] is False and rec.renders == 3

    # a setting that changes the bytes
    settings = job.settings.model_copy(deep=True)
    settings.video.crf = job.settings.video.crf + 5
    assert render_key(timeline, settings, "ffmpeg") != render_key(timeline, job.settings, "ffmpeg")
    # one that does not
    settings = job.settings.model_copy(deep=True)
    settings.video.decode_check = "full"
    settings.video.cache_max_gb = 1.0
    assert render_key(timeline, settings, "ffmpeg") == render_key(timeline, job.settings, "ffmpeg")


def test_a_corrupt_entry_is_discarded_and_rendered_again(job, tmp_path, monkeypatch):
    rec = Recorder(monkeypatch)
    cache = tmp_path / "cache"
    timeline = plan_timeline(job.dir, job.settings)
    render(job, timeline, tmp_path / "a.mp4", rec, cache)
    entry = entry_path(cache, rec.last_cache_note()["key"])
    (tmp_path / "a.mp4").unlink()
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 3])  # cut short: no moov atom

    out = render(job, timeline, tmp_path / "b.mp4", rec, cache)
    note = rec.last_cache_note()
    assert note["hit"] is False and "discarded" in note and rec.renders == 2
    verify_video(out, timeline)
    verify_video(entry, timeline)  # the fresh render took the entry's place


def test_a_small_cap_evicts_older_renders_but_never_the_new_one(job, tmp_path, monkeypatch):
    rec = Recorder(monkeypatch)
    cache = tmp_path / "cache"
    settings = job.settings.model_copy(deep=True)
    timeline = plan_timeline(job.dir, settings)
    sizes = []
    for i, text in enumerate(["一", "二", "三"]):
        cue = timeline.subtitles[0].model_copy(update={"text": text, "lines": [text]})
        variant = timeline.model_copy(update={"subtitles": [cue, *timeline.subtitles[1:]]})
        out = render_timeline(variant, tmp_path / f"{i}.mp4", settings, cache_dir=cache, note=rec.note)
        sizes.append(out.stat().st_size)
        settings.video.cache_max_gb = max(sizes) * 1.5 / GB  # room for one entry, not two
    entries = sorted(cache_folder(cache).glob("*/*.mp4"))
    assert len(entries) == 1 and entries[0] == entry_path(cache, rec.last_cache_note()["key"])
    assert rec.last_cache_note()["evicted"] == 1
    assert sum(p.stat().st_size for p in entries) <= settings.video.cache_max_gb * GB


def test_cache_off_stores_nothing(job, tmp_path, monkeypatch):
    rec = Recorder(monkeypatch)
    settings = job.settings.model_copy(deep=True)
    settings.video.cache_max_gb = 0
    timeline = plan_timeline(job.dir, settings)
    render_timeline(timeline, tmp_path / "a.mp4", settings, cache_dir=tmp_path / "cache", note=rec.note)
    render_timeline(timeline, tmp_path / "b.mp4", settings, cache_dir=tmp_path / "cache", note=rec.note)
    assert rec.renders == 2 and not rec.notes and not (tmp_path / "cache" / "video").exists()


def test_a_second_job_with_the_same_inputs_is_a_hit_and_writes_its_side_files(job, tmp_path, monkeypatch):
    rec = Recorder(monkeypatch)
    cache = tmp_path / "cache"
    results = []
    for name in ("job", "job2"):
        job_dir = tmp_path / name
        if not job_dir.exists():
            shutil.copytree(job.dir, job_dir)
            for stale in ("video.mp4", "video.srt", "chapters.txt", "timeline.json"):
                (job_dir / stale).unlink(missing_ok=True)
        context = JobContext(job_id=name, job_dir=job_dir, settings=job.settings, cache_dir=cache,
                             source=job_dir / "script.yaml", kind="script", note=rec.note)
        results.append(VideoStage().run(context, rec.on_progress))
    assert [r.data["cache"] for r in results] == ["miss", "hit"] and rec.renders == 1
    for name in ("job", "job2"):
        assert all((tmp_path / name / f).is_file() for f in ("video.mp4", "video.srt", "chapters.txt", "timeline.json"))
    assert (tmp_path / "job2" / "video.srt").read_text() == (tmp_path / "job" / "video.srt").read_text()
    assert rec.progress[-1][0] == rec.progress[-1][1] == results[1].data["frames"]


def test_remotion_renders_go_through_the_cache(job, tmp_path, monkeypatch):
    """The Remotion dispatch is cached too (here the ffmpeg renderer stands in for Chromium)."""
    import stages.video.remotion as remotion
    from stages.video.timeline import Timeline

    rec = Recorder(monkeypatch)
    calls = []

    def fake(path, out, settings, progress, cancel=None):
        calls.append(path)
        return ffmpeg_renderer.render_with_ffmpeg(Timeline.load(path), out, settings, progress, cancel=cancel)

    monkeypatch.setattr(remotion, "render_with_remotion", fake)
    timeline = plan_timeline(job.dir, job.settings)
    path = timeline.save(tmp_path / "timeline.json")
    for name in ("a.mp4", "b.mp4"):
        render(job, timeline, tmp_path / name, rec, tmp_path / "cache", renderer="remotion", timeline_path=path)
    assert len(calls) == 1 and rec.last_cache_note()["hit"] is True and rec.last_cache_note()["renderer"] == "remotion"
    assert render_key(timeline, job.settings, "remotion") != render_key(timeline, job.settings, "ffmpeg")
