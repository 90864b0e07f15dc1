"""Logging setup for a process's ``main`` (hook, worker, CLI), and nowhere else.

Everything goes to ``$MEMOIR_HOME/logs/memoir.log`` (0600), never to stdout:
a hook's stdout is parsed by Claude Code, and a worker has no terminal.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .paths import ensure_private_dir, log_dir

_FORMAT = "%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"


def setup_logging(home: Path, level: str = "INFO") -> None:
    """Send this process's log records to the shared log file.

    Never raises: a read-only or full disk must not break a hook, so on failure
    logging falls back to stderr (which Claude Code shows only in debug mode).
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    try:
        directory = ensure_private_dir(log_dir(home))
        path = directory / "memoir.log"
        # O_CREAT with 0600 so the file is private even under a loose umask.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.close(fd)
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(_FORMAT))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
