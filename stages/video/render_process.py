"""The ffmpeg render in a child process, so its memory goes back to the system when it ends.

Compositing (numpy, Pillow, libass overlays), the soundtrack mix and the x264/decoder pipes used
to run in the daemon; glibc kept much of what they had touched, and a daemon that had made five
videos sat at 400 MB while idle. Now :func:`render_in_child` starts ``python -m
stages.video.render_process`` (fork+exec, like the Open JTalk workers), hands it the timeline and
settings as one pickled frame on its stdin, and reads its progress back, one JSON line per call,
on its stdout; it calls ``progress`` in the calling thread, as an in-process render did.

Cancelling closes the child's stdin: the child sees the end of its input, sets its own cancel
token, and the render stops as it always did (ffmpeg's process groups killed, temporary files
removed). If it has not exited within ``_STOP_SECONDS`` it is killed. A parent that dies, even by
SIGKILL, closes the pipe too, so the child never outlives it.

Errors cross over by type: the child sends the exception's class, message and attributes, and
the parent raises the same type (an :class:`~stages.base.InputError` stays one, a
:class:`~stages.process.ProcessError` keeps its stderr); anything unexpected carries the child's
traceback in its message.
"""

from __future__ import annotations

import importlib
import json
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from stages.base import Cancelled, Progress, StageError, no_progress
from stages.process import kill_group

if TYPE_CHECKING:
    from stages.settings import Settings
    from stages.video.timeline import Timeline

_STOP_SECONDS = 10.0  # a cancelled render cleans up (kills ffmpeg, removes files) within this
_POLL_SECONDS = 0.05
_HEADER = struct.Struct("<Q")


class RenderProcessDied(StageError):
    """The render process ended without a result (killed by a signal, e.g. the OOM killer)."""


def render_in_child(
    timeline: "Timeline",
    out_path: Path,
    settings: "Settings",
    progress: Progress = no_progress,
    *,
    cancel: threading.Event | None = None,
    work_dir: Path | None = None,
) -> Path:
    """:func:`stages.video.ffmpeg.render_with_ffmpeg` in a child process; same arguments, result and errors.

    Raises:
        Cancelled: ``cancel`` was set; the child stopped its ffmpeg processes and exited (or was killed).
        RenderProcessDied: the child ended without saying how.
        whatever the render raised in the child (InputError, ProcessError, RenderCheckFailed, ...).
    """
    root = str(Path(__file__).resolve().parents[2])  # the folder holding the stages package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stages.video.render_process"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True,
    )
    messages: queue.SimpleQueue[dict | None] = queue.SimpleQueue()
    stderr: list[bytes] = []
    readers = [
        threading.Thread(target=_read_messages, args=(proc.stdout, messages), daemon=True),
        threading.Thread(target=lambda: stderr.append(proc.stderr.read()), daemon=True),
    ]
    for reader in readers:
        reader.start()
    outcome: dict | None = None
    try:
        try:
            _write_frame(proc.stdin, (timeline, Path(out_path), settings, work_dir))
        except (BrokenPipeError, OSError):
            pass  # the child died at start; its exit is reported below
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled("render was cancelled")  # the child is stopped below
            try:
                message = messages.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
            if message is None:  # the child closed its stdout: it is ending
                break
            if "progress" in message:
                progress(*message["progress"])
            else:
                outcome = message
    except BaseException:
        _stop(proc)
        raise
    finally:
        try:
            proc.stdin.close()  # the child is done (or stopped): nothing more to say to it
        except OSError:
            pass
    try:
        proc.wait(timeout=_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        kill_group(proc)
    for reader in readers:
        reader.join(timeout=5)
    if outcome is not None and "result" in outcome:
        return Path(outcome["result"])
    if outcome is not None and "error" in outcome:
        raise _rebuild(outcome["error"])
    tail = b"".join(stderr).decode("utf-8", "replace")[-2000:]
    raise RenderProcessDied(f"the render process ended with exit {proc.returncode} and no result "
                            f"(killed, or out of memory?): {tail}")


def _stop(proc: subprocess.Popen) -> None:
    """Ask the child to stop (end of its stdin), then kill it if it has not within _STOP_SECONDS."""
    try:
        proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(timeout=_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        kill_group(proc)


def _read_messages(stdout: IO[bytes], messages: "queue.SimpleQueue[dict | None]") -> None:
    for raw in stdout:
        try:
            messages.put(json.loads(raw))
        except ValueError:
            continue  # not ours (a library printing): ignore
    messages.put(None)


def _rebuild(error: dict) -> BaseException:
    """The child's exception as the same type here, with its message and attributes."""
    try:
        cls = getattr(importlib.import_module(error["module"]), error["type"])
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            raise TypeError(cls)
        exc = cls.__new__(cls)
        message = error["message"]
        if not issubclass(cls, StageError):  # a bug: keep where it happened
            message = f"{message}\n(in the render process)\n{error['traceback']}"
        Exception.__init__(exc, message)
        exc.__dict__.update(pickle.loads(bytes.fromhex(error["state"])))
        return exc
    except Exception:  # an exception we cannot rebuild: say what it was
        return RenderProcessDied(f"the render failed: {error.get('type')}: {error.get('message')}\n{error.get('traceback')}")


def _write_frame(stream: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_frame(stream: IO[bytes]) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("no request")
    data = stream.read(_HEADER.unpack(header)[0])
    return pickle.loads(data)


# --- the child ------------------------------------------------------------------------------------


def _main() -> int:
    stdin, out = sys.stdin.buffer, sys.stdout
    sys.stdout = sys.stderr  # anything else that prints must not mix with the messages
    try:
        timeline, out_path, settings, work_dir = _read_frame(stdin)
    except (EOFError, pickle.UnpicklingError):
        return 2
    cancel = threading.Event()

    def watch() -> None:  # the parent closes our stdin to cancel, or by dying
        # os.read on the descriptor, not stdin.read(): a daemon thread blocked inside the buffered
        # reader holds its lock, and at exit the interpreter waited for it, then aborted ("could not
        # acquire lock for <stdin> at interpreter shutdown"), a second after the result was sent.
        while os.read(stdin.fileno(), 1 << 16):
            pass
        cancel.set()

    threading.Thread(target=watch, daemon=True).start()
    lock = threading.Lock()

    def send(message: dict) -> None:
        with lock:
            out.write(json.dumps(message) + "\n")
            out.flush()

    from stages.video.ffmpeg import render_with_ffmpeg

    try:
        result = render_with_ffmpeg(timeline, out_path, settings, lambda c, t, m: send({"progress": [c, t, m]}),
                                    cancel=cancel, work_dir=work_dir)
    except BaseException as exc:  # every failure goes to the parent, typed
        try:
            state = pickle.dumps(dict(exc.__dict__)).hex()
        except Exception:
            state = pickle.dumps({}).hex()
        send({"error": {"module": type(exc).__module__, "type": type(exc).__qualname__, "message": str(exc),
                        "state": state, "traceback": traceback.format_exc()}})
        return 1
    send({"result": str(result)})
    return 0


if __name__ == "__main__":
    sys.exit(_main())
