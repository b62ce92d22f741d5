"""Logging: structlog, JSON lines for journald, readable lines on a terminal.

The events are the same dicts either way; only the renderer differs. The runner binds ``job_id``
and ``stage`` (``log.bind(job_id=..., stage=...)``); everything else gets them through the
bound logger it is handed.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

import structlog


def configure_logging(
    *, json_lines: bool | None = None, level: str = "INFO", stream: IO[str] | None = None
) -> None:
    """Set up structlog (and the stdlib ``logging`` it forwards to) once per process.

    Args:
        json_lines: True for JSON lines, False for readable lines; None decides by whether
            ``stream`` is a terminal (journald is not).
        level: the lowest level written (``DEBUG``, ``INFO``, ``WARNING``...).
        stream: where lines go; default stdout.
    """
    out = stream if stream is not None else sys.stdout
    if json_lines is None:
        json_lines = not _is_tty(out)
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json_lines:
        renderer: Any = structlog.processors.JSONRenderer(ensure_ascii=False)
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=_is_tty(out))
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    # Libraries (watchdog, httpx) log through stdlib logging: keep them quiet unless warning.
    logging.basicConfig(level=logging.WARNING, stream=out, format="%(levelname)s %(name)s: %(message)s")


def get_logger(name: str = "moviegen", **bound: Any) -> structlog.typing.FilteringBoundLogger:
    """A structlog logger with ``logger=name`` and any extra context bound."""
    return structlog.get_logger(name).bind(logger=name, **bound)


def _is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
