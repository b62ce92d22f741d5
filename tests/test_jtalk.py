"""pyopenjtalk is loaded once, safely, however many worker threads ask for it first."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_first_use_from_many_threads_sees_a_complete_module():
    """Eight threads asking at once all get the finished module (a fresh interpreter, no preload)."""
    code = textwrap.dedent(
        """
        import threading
        from stages.jtalk import pyopenjtalk
        barrier = threading.Barrier(8)
        results = []
        def use():
            barrier.wait()
            module = pyopenjtalk()
            results.append(callable(getattr(module, "tts", None)) and callable(getattr(module, "g2p", None)))
        threads = [threading.Thread(target=use) for _ in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        print("ok" if results == [True] * 8 else f"bad {results}")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok", "the import notice must stay off stdout, and every thread must see tts/g2p"
