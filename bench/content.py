"""What real articles become: spoken markup, code and tables carried to the screen, script time.

Usage: ``python bench/content.py [--ja DIR] [--articles DIR] [--limit N] [--only NAME,…]
[--repeat N] [--video N|all [--keep DIR] [--size WxH]]`` (defaults ``../shared/eval/ja`` and
``../shared/eval/articles``; a page's name is the first 12 hex digits of its file name). Each Markdown file in the first and each
``html/*.html[.gz]`` page in the second goes through the fetch stage's extraction and the script
stage's offline writer (``script.writer = extractive``, one narrator). No audio or video is made:
these figures come from ``article.json`` and ``script.yaml`` alone.

Prints ``name=value`` lines, per article (``<name>.<figure>``) and in total:

- ``bad_cues``: narration lines (one subtitle cue each) whose text or reading holds a URL, a
  handle, markup (``* ` # | $ \\ :::`` or ``](``) or a run of code punctuation (goal 0);
- ``code_blocks`` / ``code_shown``, ``tables`` / ``tables_shown``, ``math`` / ``math_shown``: such
  blocks in the article, and those the script carries as a visual that some line shows (goal: all);
- ``code_blocks`` etc. are counted with ``--max-minutes 30`` by default, so that the length budget
  (which drops whole parts of a long article, by design) does not hide what the writer carries;
- ``script_ms``: the script stage's time (writing and dumping ``script.yaml``, after a warm-up
  on ``samples/ja-article.md`` and loading e2k, whose one-time load is ``e2k_load_ms``;
  goal < 1000) and ``script_cpu_ms``, the
  CPU time it took (on a machine shared with other work, the wall time is the CPU time plus the
  waiting for a core); ``--repeat N`` keeps the fastest of N runs, each from cold caches;
- ``sections`` and ``fragment_titles``: section titles that are sentence fragments rather than
  headings or labels (goal 0).

With ``--video N`` the first N inputs (the Markdown articles first, then the HTML pages) are also
made into real videos, one at a time (``--video all``: every input; offline voice, ``--size``
640x360 by default, the product's length budget); ``--keep DIR`` keeps the videos, subtitles and
job folders there for a look. Per video:

- ``static_s``: the longest time the slide area (above the subtitle band) stays unchanged, from
  the decoded video at 5 frames a second (goal <= 30, aim 20);
- ``code_on_slide`` / ``tables_on_slide``: the script's code blocks and tables that some picture
  on the video's slide track shows (compare with ``video_code`` / ``video_tables``, those the script
  carries);
- ``pictures``: pictures on the slide track; ``make_s``: the time to make the video (a video that
  fails prints ``<name>.error`` and the run goes on; ``videos_failed`` counts them);
- ``bad_cues`` / ``srt_bad``: the video's narration lines and ``.srt`` cues that speak or show
  markup or URLs (as above; goal 0); ``static_at_s``: where the longest unchanged stretch starts.
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stages.fetch import extract  # noqa: E402
from stages.script.extractive import write_extractive  # noqa: E402
from stages.script.loader import dump_script  # noqa: E402
from stages.script.readings import preload as preload_readings  # noqa: E402
from stages.settings import load_settings  # noqa: E402

EVAL = Path(__file__).resolve().parent.parent.parent / "shared" / "eval"
SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "ja-article.md"
BAD = re.compile(r"https?://|www\.|(?<![\w.@])(?:[a-z0-9-]+\.)+(?:com|org|net|io|co|jp|ly|gl|be)/\w|(?<![\w.])@[A-Za-z0-9_]{2,}|[*`#|\\]|\$(?![\d.,]+)|:::|\]\(|[{};=]\s*[{};=]|\w\[\w*\]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ja", type=Path, default=EVAL / "ja")
    parser.add_argument("--articles", type=Path, default=EVAL / "articles")
    parser.add_argument("--limit", type=int, default=0, help="at most N inputs of each set (0: all)")
    parser.add_argument("--max-minutes", type=float, default=30.0,
                        help="script.max_minutes (default 30, so no part is trimmed away; the product's default is 5)")
    parser.add_argument("--video", type=_count, default=0,
                        help="also render the first N inputs, Markdown first, then HTML ('all': every one; 0: none)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the videos and job folders in DIR")
    parser.add_argument("--only", default="", help="only these inputs: names (file stems, a page's first 12 hex digits), comma-separated")
    parser.add_argument("--size", default="640x360", help="the rendered videos' size (WxH)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="time each script N times from cold caches and keep the fastest (default 1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-content-") as tmp:
        home = Path(tmp) if args.keep is None else args.keep.resolve()
        home.mkdir(parents=True, exist_ok=True)
        settings = load_settings(home=home / "home", script={"max_minutes": args.max_minutes})
        print(f"max_minutes={args.max_minutes:g}")
        inputs = _inputs(args.ja, args.articles, home, args.limit)
        if args.only:
            inputs = [(name, path) for name, path in inputs if name in args.only.split(",")]
        totals: dict[str, float] = {}
        times: list[float] = []
        cpu_times: list[float] = []
        for i, (name, path) in enumerate(inputs):
            article = extract(path, settings)
            if i == 0:  # warm-up on texts of our own (pyopenjtalk, budoux, pysbd load once): warming up
                # on the first article left its analyses cached, and it was measured at 17 ms
                write_extractive(extract(SAMPLE, settings), settings)
                write_extractive({"title": "Warm-up", "language": "en", "blocks": [
                    {"type": "paragraph", "text": "A first sentence. And a second one, Dr. Smith said."}]}, settings)
                loading = time.perf_counter()
                preload_readings()  # and e2k, which the warm-up article may not need
                print(f"e2k_load_ms={(time.perf_counter() - loading) * 1000:.1f}")
            elapsed = cpu_ms = float("inf")
            for _ in range(args.repeat):  # the fastest of N cold runs: the machine's other work only adds
                if args.repeat > 1:
                    _clear_caches()
                started, cpu = time.perf_counter(), time.process_time()
                script = write_extractive(article, settings)
                dump_script(script)
                elapsed = min(elapsed, (time.perf_counter() - started) * 1000)
                cpu_ms = min(cpu_ms, (time.process_time() - cpu) * 1000)
            times.append(elapsed)
            cpu_times.append(cpu_ms)
            figures = _figures(article, script)
            figures["script_ms"] = round(elapsed, 1)
            figures["script_cpu_ms"] = round(cpu_ms, 1)
            for key, value in figures.items():
                print(f"{name}.{key}={value}")
                if key not in ("script_ms", "script_cpu_ms"):
                    totals[key] = totals.get(key, 0) + value
        print(f"articles={len(inputs)}")
        for key, value in totals.items():
            print(f"total.{key}={value:g}")
        print(f"script_ms_mean={sum(times) / max(1, len(times)):.1f}")
        print(f"script_ms_max={max(times, default=0):.1f}")
        print(f"script_cpu_ms_mean={sum(cpu_times) / max(1, len(cpu_times)):.1f}")
        print(f"script_cpu_ms_max={max(cpu_times, default=0):.1f}")
        if args.video:
            _videos([p for _n, p in inputs][: None if args.video < 0 else args.video], home, args.size)


def _videos(paths: list[Path], home: Path, size: str) -> None:
    """Make each article into a video and print the slide figures (module docstring)."""
    import json
    import subprocess

    from daemon.app import make_video

    width, height = (int(v) for v in size.lower().split("x"))
    settings = load_settings(home=home / "video-home", video={"width": width, "height": height})
    worst = 0.0
    over = failed = 0
    totals: dict[str, float] = {}
    for path in paths:
        work = home / "jobs" / path.stem
        started = time.perf_counter()
        try:
            out = make_video(str(path), home / "out" / f"{path.stem}.mp4", settings, work_dir=work)
        except Exception as exc:  # one failed video is a finding, not the end of the run
            print(f"{path.stem}.error={type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", flush=True)
            failed += 1
            continue
        made = time.perf_counter() - started
        timeline = json.loads((work / "timeline.json").read_text("utf-8"))
        index = json.loads((work / "slides" / "index.json").read_text("utf-8"))
        shown_paths = {c["image"] for c in timeline["slides"] if c["end"] > c["start"]}
        shown = {(p["section"], p["kind"], p["group"]) for p in index.get("pictures", [])
                 if str(Path(p["path"]).resolve()) in shown_paths}
        from stages.script.loader import load_script

        script = load_script(work / "script.yaml")
        carried = {k: sum(1 for s in script.sections for v in s.visuals if v.kind == k) for k in ("code", "table")}
        band = 1 - settings.slides.safe_area.subtitle_band
        raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-vf",
                              f"fps=5,crop=iw:trunc(ih*{band:.3f}/2)*2:0:0,scale=160:72", "-f", "rawvideo",
                              "-pix_fmt", "gray", "-"], capture_output=True, check=True).stdout
        rows = 72
        frames = np.frombuffer(raw, dtype=np.uint8)
        frames = frames[: len(frames) // (160 * rows) * 160 * rows].reshape(-1, rows, 160).astype(np.int16)
        changes = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2)) > 0.5
        longest = run = at = 0
        for i, changed in enumerate(changes):
            run = 0 if changed else run + 1
            if run > longest:
                longest, at = run, i + 1 - run
        cues = [c for c in out.with_suffix(".srt").read_text("utf-8").split("\n\n") if c.strip()]
        spoken = [n for _s, _i, n in script.phrases()]
        figures = {"static_s": round((longest + 1) / 5, 1), "static_at_s": round(at / 5, 1),
                   "bad_cues": sum(1 for n in spoken if BAD.search(n.text) or BAD.search(n.reading or "")),
                   "srt_cues": len(cues),
                   "srt_bad": sum(1 for c in cues if BAD.search(" ".join(c.splitlines()[2:]))),
                   "pictures": len(timeline["slides"]),
                   "video_code": carried["code"], "code_on_slide": sum(1 for s in shown if s[1] == "code"),
                   "video_tables": carried["table"], "tables_on_slide": sum(1 for s in shown if s[1] == "table"),
                   "duration_s": round(timeline["duration"], 1), "make_s": round(made, 1)}
        worst = max(worst, figures["static_s"])
        over += figures["static_s"] > 30
        for key, value in figures.items():
            print(f"{path.stem}.{key}={value}", flush=True)
            totals[key] = totals.get(key, 0) + value
    print(f"videos={len(paths)}")
    print(f"videos_failed={failed}")
    for key in ("bad_cues", "srt_bad", "video_code", "code_on_slide", "video_tables", "tables_on_slide"):
        print(f"total.{key}={totals.get(key, 0):g}")
    print(f"max_static_s={worst}")
    print(f"videos_over_30s={over}")
    print(f"total.make_s={totals.get('make_s', 0):.1f}")


def _clear_caches() -> None:
    """Forget every analysis and reading the script stage keeps, so a repeat runs cold."""
    from stages.jtalk import analyse
    from stages.script import readings

    analyse.cache_clear()
    readings.word_reading.cache_clear()
    readings._transliterated.cache_clear()


def _count(value: str) -> int:
    """``--video``'s value: a count, or ``all`` (-1)."""
    return -1 if value == "all" else int(value)


def _inputs(ja: Path, articles: Path, tmp: Path, limit: int) -> list[tuple[str, Path]]:
    found = [(p.stem, p) for p in sorted(ja.glob("*.md")) if p.name != "README.md"][: limit or None]
    pages = sorted((articles / "html").glob("*.html*"))[: limit or None]
    for page in pages:
        data = page.read_bytes()
        if page.suffix == ".gz":
            data = gzip.decompress(data)
        out = tmp / (page.name.split(".")[0][:12] + ".html")
        out.write_bytes(data)
        found.append((out.stem, out))
    return found


def _figures(article: dict, script) -> dict[str, int]:
    blocks = article["blocks"]
    lines = [n for _s, _i, n in script.phrases()]
    shown = {kind: 0 for kind in ("code", "table", "math")}
    for section in script.sections:
        used = {n.show for n in section.narrations if n.show is not None}
        for index, visual in enumerate(section.visuals):
            if index in used and visual.kind in shown:
                shown[visual.kind] += 1
    titles = [s.title for s in script.sections]
    headings = {b.get("text") for b in blocks if b["type"] == "heading"} | {script.title}
    return {
        "cues": len(lines),
        "bad_cues": sum(1 for n in lines if BAD.search(n.text) or BAD.search(n.reading or "")),
        "code_blocks": sum(1 for b in blocks if b["type"] == "code"),
        "code_shown": shown["code"],
        "tables": sum(1 for b in blocks if b["type"] == "table"),
        "tables_shown": shown["table"],
        "math": sum(1 for b in blocks if b["type"] == "math"),
        "math_shown": shown["math"],
        "sections": len(titles),
        "fragment_titles": sum(1 for t in titles if t not in headings and not _is_label(t)),
    }


def _is_label(title: str) -> bool:
    """A section title the writer gives (「その1」, "Part 1", 「まとめ」 in any of its languages)."""
    from stages.script.extractive import _WORDS

    labels = {w[k] for w in _WORDS.values() for k in ("intro", "summary")}
    parts = "|".join(re.escape(w["part"]).replace(r"\{n\}", r"\d+") for w in _WORDS.values())
    return title in labels or bool(re.fullmatch(parts, title))


if __name__ == "__main__":
    main()
