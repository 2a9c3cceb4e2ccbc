"""Logging: structlog, human-readable on a terminal, JSON lines otherwise.

Context (the actor path, later the association id and peer AE) is bound through
structlog's contextvars, which Trio keeps per task, so every line says who wrote it.
Logs go to stderr; stdout belongs to the CLI's own output (the `ready` line, tables).
"""

import logging
import sys
from typing import TextIO

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR, "critical": logging.CRITICAL}


def configure_logging(level: str = "info", format: str = "auto", stream: TextIO | None = None) -> None:
    stream = stream if stream is not None else sys.stderr
    console = format == "console" or (format == "auto" and stream.isatty())
    renderer: structlog.typing.Processor
    if console:
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    else:
        renderer = structlog.processors.JSONRenderer(sort_keys=True)
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if not console:
        processors.append(structlog.processors.dict_tracebacks)
    processors.append(renderer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
