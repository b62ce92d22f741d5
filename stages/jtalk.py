"""pyopenjtalk, loaded once for every stage that needs it (script readings, audio synthesis).

Stages run in worker threads. A plain ``if "pyopenjtalk" not in sys.modules: import`` lets a
second thread see the half-initialised module while the first is still importing it; the lock
makes the first import finish before anyone uses the module. The import prints an ONNX notice
with ``print`` (that the optional ONNX runtime is missing; nothing we use needs it): it is dropped,
so stdout stays clean for JSON logs and ``name=value`` output and users see no false alarm.
"""

from __future__ import annotations

import contextlib
import io
import threading
from types import ModuleType

_LOCK = threading.Lock()
_MODULE: ModuleType | None = None


def pyopenjtalk() -> ModuleType:
    """The pyopenjtalk module, fully imported (with ``openjtalk`` and ``version``)."""
    global _MODULE
    if _MODULE is not None:
        return _MODULE
    with _LOCK:
        if _MODULE is None:
            with contextlib.redirect_stdout(io.StringIO()):
                import pyopenjtalk as module
                import pyopenjtalk.openjtalk  # noqa: F401
                import pyopenjtalk.version  # noqa: F401
            _MODULE = module
    return _MODULE
