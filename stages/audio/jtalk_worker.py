"""An OpenJTalk worker process: ``python -m stages.audio.jtalk_worker <parent pid>``.

Reads ``(text, speed, half_tone, userdic)`` frames on stdin and answers ``(True, (samples, rate))``
or ``(False, exception)`` on stdout (see :mod:`stages.audio.jtalk_pool`); the first frame it
writes says it is ready. It exits at the end of stdin, or when its parent is gone.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import time

_PARENT_POLL_SECONDS = 0.5


def main(parent_pid: int) -> None:
    """Serve phrases until stdin ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; EOF stops us
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()
    requests = sys.stdin.buffer
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # a stray print (C or Python) must not enter the pipe

    from stages.audio.jtalk_pool import read_frame, write_frame
    from stages.audio.openjtalk import speak

    speak("あ", 1.0, 0.0, None)  # loads pyopenjtalk, MeCab's dictionary and the voice
    write_frame(answers, ("ready", os.getpid()))
    while True:
        try:
            args = read_frame(requests)
        except EOFError:
            return
        try:
            answer = (True, speak(*args))
        except Exception as exc:  # the parent raises it as the in-process call would have
            answer = (False, exc if _picklable(exc) else RuntimeError(f"{type(exc).__name__}: {exc}"))
        write_frame(answers, answer)


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_PARENT_POLL_SECONDS)
    os._exit(1)


def _picklable(exc: Exception) -> bool:
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return False
    return True


if __name__ == "__main__":
    try:
        main(int(sys.argv[1]))
    except (BrokenPipeError, KeyboardInterrupt):
        sys.exit(1)
