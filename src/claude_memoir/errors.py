"""The single exception root of claude-memoir.

Low-level errors (sqlite3, OSError, JSON) are converted to these at module
boundaries with ``raise ... from e`` so callers catch one family and still see
the cause.
"""

from __future__ import annotations


class MemoirError(Exception):
    """Root of every error claude-memoir raises on purpose.

    ``reason`` is a short machine-readable tag (e.g. ``"bad-session-id"``);
    ``detail`` carries structured context for the log line.
    """

    def __init__(self, message: str, *, reason: str = "error", **detail: object) -> None:
        super().__init__(message)
        self.reason = reason
        self.detail = detail


class InvalidInput(MemoirError):
    """A payload, argument or file did not have the shape we accept."""


class StoreError(MemoirError):
    """The SQLite store could not be opened, migrated or written."""


class IPCError(MemoirError):
    """A worker socket could not be reached or answered badly."""


class AgentError(MemoirError):
    """The memory agent (Agent SDK + Claude Code CLI) failed."""


class InstallError(MemoirError):
    """settings.json could not be read, merged or written."""
