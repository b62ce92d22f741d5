"""Audio benchmark: real-time factor of each engine here, and a fully cached rerun.

Real-time factor = seconds spent / seconds of audio made (lower is faster). ``*_stage_rtf`` goes
through ``generate_audio`` (engine, resampling, levelling, caching); ``*_engine_rtf`` is the engine
call alone. The VOICEVOX figure is the local test double, not the real engine: it measures our
client and the HTTP round trips only.

``openjtalk_*_workers1`` / ``_workers2`` compare OpenJTalk in the stage's own process with a
pool of two worker processes (``audio.workers``); see :func:`openjtalk_workers`.

Run: ``.venv/bin/python bench/audio.py``; prints ``name=value`` lines.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stages.audio import generate_audio  # noqa: E402
from stages.audio.engine import Voice  # noqa: E402
from stages.audio.espeak import EspeakEngine  # noqa: E402
from stages.audio.jtalk_pool import shared_pool, shutdown_pool  # noqa: E402
from stages.audio.openjtalk import OpenJTalkEngine  # noqa: E402
from stages.settings import load_settings  # noqa: E402

JAPANESE = [
    "今日は新しいツールの使い方を紹介します。", "まずは設定ファイルを開いてください。",
    "保存ボタンを押すと、一瞬固まるのだ。", "次に、入力フォルダにファイルを置きます。",
    "デーモンがファイルを見つけて、処理を始めます。", "進み具合はイベントログで確認できます。",
    "音声は一文ずつキャッシュされます。", "同じ文を二回読ませても、合成は一回だけです。",
    "スライドは記事の見出しから作られます。", "字幕は画面の下の帯に表示されます。",
    "動画の長さは、ナレーションの長さで決まります。", "途中で止まっても、続きから再開できます。",
    "エラーが起きたときは、理由がファイルに書かれます。", "設定は環境変数でも変えられます。",
    "ボイスボックスを使うと、声の種類が増えます。", "辞書に登録した単語は、正しく読まれます。",
    "長い文は、自然な区切りで分けて読みます。", "絵文字は読み上げの前に取り除かれます。",
    "最後に、出力フォルダに動画が届きます。", "ご視聴ありがとうございました。",
]  # fmt: skip
THREE_MINUTES_PHRASES = 32  # about 180 s of Mei's speech with the numbered endings

ENGLISH = [
    "Today we look at a new tool.", "First, open the settings file.", "Drop a file into the inbox folder.",
    "The daemon picks it up and starts working.", "Progress is written to the event log.",
    "Each sentence is cached on its own.", "Reading the same line twice costs one synthesis.",
    "Slides are drawn from the article's headings.", "Subtitles sit in a band at the bottom.",
    "The narration sets the length of the video.", "A crash loses nothing; the job resumes.",
    "Errors are explained in a small text file.", "Settings can come from the environment.",
    "Several voices can take turns in one video.", "Dictionary words are read the way you want.",
    "Long sentences are split at natural breaks.", "Emoji are removed before speaking.",
    "The finished video lands in the outbox.", "Subtitles and a metadata file come with it.",
    "Thanks for watching.",
]  # fmt: skip


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="moviegen-bench-audio-"))
    # Parallel figures mean something only on an otherwise idle machine: say how busy it was.
    print(f"load_average_1min={os.getloadavg()[0]:.2f}")
    try:
        engine_rtf("openjtalk", OpenJTalkEngine(work / "dict"), Voice("openjtalk", "mei"), JAPANESE)
        openjtalk_workers(work / "ojw")
        if shutil.which("espeak-ng"):
            engine_rtf("espeak", EspeakEngine(), Voice("espeak", "en"), ENGLISH)
            stage_rtf("espeak", work / "es", ENGLISH, "en", {})
        voicevox_double(work / "vv")
        cached_rerun(work / "cached", 100)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def engine_rtf(name: str, engine, voice: Voice, sentences: list[str]) -> None:
    engine.prepare([voice], [])
    engine.synthesize(sentences[0], voice, None)  # warm-up: first call loads dictionaries
    spent = audio = 0.0
    for sentence in sentences:
        start = time.perf_counter()
        samples, rate = engine.synthesize(sentence, voice, None)
        spent += time.perf_counter() - start
        audio += samples.size / rate
    print(f"{name}_engine_rtf={spent / audio:.4f}")


def stage_rtf(
    name: str, work: Path, sentences: list[str], language: str, overrides: dict, suffix: str = "", seconds: bool = False
) -> None:
    work.mkdir(parents=True)
    script = write_script(work / "script.yaml", sentences, language)
    settings = load_settings(home=work / "home", **overrides)
    start = time.perf_counter()
    index = generate_audio(script, work, settings)
    spent = time.perf_counter() - start
    clips = yaml.safe_load(index.read_text("utf-8"))["clips"]
    audio = sum(clip["duration"] for clip in clips.values())
    print(f"{name}_stage_rtf{suffix}={spent / audio:.4f}")
    if seconds:
        print(f"{name}_stage_seconds{suffix}={spent:.2f}")
    if not suffix or suffix.endswith("1"):
        print(f"{name}_audio_seconds={audio:.1f}")


def openjtalk_workers(work: Path) -> None:
    """The stage with OpenJTalk in its own process (workers=1) and with 2 worker processes.

    ``_workers2`` starts the pool cold, as the first job of a process does (the stage's process
    speaks while the workers start); ``_workers2_warm`` reuses the running pool, as the daemon's
    next jobs do. Each run has an empty cache.
    """
    long = [f"{JAPANESE[i % len(JAPANESE)]}これは{i + 1}番目の文です。" for i in range(THREE_MINUTES_PHRASES)]
    for name, sentences in (("openjtalk", JAPANESE), ("openjtalk_3min", long)):
        shutdown_pool()
        for suffix, workers in (("_workers1", 1), ("_workers2", 2), ("_workers2_warm", 2)):
            stage_rtf(name, work / f"{name}{suffix}", sentences, "ja", {"audio": {"workers": workers}},
                      suffix=suffix, seconds=True)  # fmt: skip
    shutdown_pool()
    start = time.perf_counter()
    shared_pool(2).warm_up()
    print(f"openjtalk_pool_startup_seconds={time.perf_counter() - start:.3f}")
    shutdown_pool()


def voicevox_double(work: Path) -> None:
    from tests.doubles.voicevox import VoicevoxDouble

    with VoicevoxDouble() as engine:
        overrides = {"audio": {"engine": "voicevox"}, "voicevox": {"url": engine.url, "concurrency": 2}}
        stage_rtf("voicevox_double", work, JAPANESE, "ja", overrides)


def cached_rerun(work: Path, count: int) -> None:
    work.mkdir(parents=True)
    sentences = [f"{JAPANESE[i % len(JAPANESE)]}その{i}。" for i in range(count)]
    script = write_script(work / "script.yaml", sentences, "ja")
    settings = load_settings(home=work / "home")
    generate_audio(script, work / "first", settings)
    start = time.perf_counter()
    generate_audio(script, work / "second", settings)
    print(f"cached_rerun_phrases={count}")
    print(f"cached_rerun_seconds={time.perf_counter() - start:.4f}")


def write_script(path: Path, sentences: list[str], language: str) -> Path:
    data = {"title": "bench", "language": language, "sections": [{"title": "s", "narrations": sentences}]}
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


if __name__ == "__main__":
    main()
