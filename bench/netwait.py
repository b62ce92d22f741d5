"""Network-wait benchmarks: how soon a deadline or a cancel frees a thread blocked on a slow server.

Run: ``.venv/bin/python bench/netwait.py`` prints ``name=value`` lines:

- ``fetch_trickle_total_timeout_s`` / ``fetch_trickle_ended_after_s``: a server sending one byte
  every 0.5 s against ``fetch.total_timeout``; the second should be the first plus a little.
- ``fetch_cancel_to_free_ms``: a cancel while fetch waits for headers that never come, to the
  moment ``get_bytes`` has returned (the worker thread is free).
- ``llm_cancel_to_free_ms``: the same for an LLM request to a model that never answers.

The servers are the tests' own (tests/fixtures_slow.py, tests/doubles/llm.py) on 127.0.0.1.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.base import Cancelled, CancelToken, TransientError  # noqa: E402
from stages.fetch.http import get_bytes  # noqa: E402
from stages.script.llm import write_with_llm  # noqa: E402
from stages.settings import load_settings  # noqa: E402
from tests.doubles.llm import ChatDouble, stall  # noqa: E402
from tests.fixtures_slow import TrickleServer, wait_until  # noqa: E402

ARTICLE = {"title": "t", "language": "ja", "blocks": [{"type": "paragraph", "text": "本文です。" * 20}]}


def trickle_cut(home: Path, total: float = 3.0) -> dict[str, float]:
    """Seconds until a 1-byte-per-0.5-s download ends, against ``fetch.total_timeout``."""
    settings = load_settings(home=home, fetch={"allow_private": True, "read_timeout": 30, "total_timeout": total})
    with TrickleServer(interval=0.5) as slow:
        t0 = time.monotonic()
        try:
            get_bytes(slow.url(), settings, max_bytes=1 << 20)
        except TransientError:
            pass
        ended = time.monotonic() - t0
    return {"fetch_trickle_total_timeout_s": total, "fetch_trickle_ended_after_s": round(ended, 3)}


def _cancel_to_free(start: Callable[[CancelToken], None], ready: Callable[[], bool]) -> float:
    """Milliseconds from ``cancel.set()`` to ``start`` returning with Cancelled."""
    cancel = CancelToken()
    done: list[float] = []

    def work() -> None:
        try:
            start(cancel)
        except Cancelled:
            done.append(time.monotonic())

    worker = threading.Thread(target=work)
    worker.start()
    wait_until(ready, 30, "the request")
    time.sleep(0.2)  # let the thread block in its read
    t0 = time.monotonic()
    cancel.set()
    worker.join(60)
    if not done:
        raise RuntimeError("the request did not end with Cancelled")
    return (done[0] - t0) * 1000


def fetch_cancel(home: Path, runs: int = 5) -> dict[str, float]:
    settings = load_settings(home=home, fetch={"allow_private": True, "read_timeout": 600, "total_timeout": 600})
    samples = []
    for _ in range(runs):
        with TrickleServer(interval=None) as silent:
            samples.append(_cancel_to_free(
                lambda cancel: get_bytes(silent.url(), settings, max_bytes=1 << 20, cancel=cancel),
                lambda: silent.accepted() == 1))
    return {"fetch_cancel_to_free_ms": round(statistics.median(samples), 2)}


def llm_cancel(home: Path, runs: int = 5) -> dict[str, float]:
    samples = []
    for _ in range(runs):
        with ChatDouble() as llm:
            llm.queue(stall())
            settings = load_settings(home=home, script={"writer": "llm"},
                                     llm={"base_url": llm.base_url, "model": "m", "timeout": 600})
            samples.append(_cancel_to_free(
                lambda cancel: write_with_llm(ARTICLE, settings, cancel=cancel),
                lambda: bool(llm.requests)))
    return {"llm_cancel_to_free_ms": round(statistics.median(samples), 2)}


BENCHMARKS = [trickle_cut, fetch_cancel, llm_cancel]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for bench in BENCHMARKS:
            for name, value in bench(Path(tmp)).items():
                print(f"{name}={value}", flush=True)


if __name__ == "__main__":
    main()
