"""The ``memoir`` command line.

    memoir install [--scope user|project]   wire the hooks into Claude Code
    memoir uninstall [--scope user|project] take them out again
    memoir context [--cwd DIR]              print what SessionStart would inject
    memoir sessions [--limit N] [--cwd DIR] [--json]  recorded sessions with counts
    memoir show SESSION [--json]            one session (id or unique prefix) with its summaries
    memoir status [--json]                  disk usage, today's agent spend, live workers
    memoir ui [--port N] [--no-open]        the local web viewer (needs the `ui` extra)
    memoir forget (SESSION | --cwd DIR | --before DATE) [--dry-run] [--yes]
    memoir export [--cwd DIR | --all] [--format jsonl|markdown] [-o FILE]
    memoir import FILE                      round-trip of export (idempotent)
    memoir search QUERY [--cwd DIR | --all] [--type T] [--file PATH] [--since DATE]
                  [--limit N] [--json]      ranked search of the project's memory
    memoir mcp                              the MCP server (stdio) Claude Code starts
    memoir usage [--since 7d] [--cwd DIR | --all] [--json]
                                            agent tokens and cost per day and project
    memoir reprocess SESSION [--wait S]     retry parked events, replace fallback summaries
    memoir cleanup-sessions [--max-age 24h] [--dry-run] [--json]
    memoir doctor [--fix] [--live] [--json] check install, privacy, database, agent
    memoir ui [--port N] [--no-open]        the local web viewer (extra: claude-memoir[ui])
    memoir forget (SESSION | --cwd DIR | --before DATE) [--dry-run] [--yes]
    memoir export [--cwd DIR | --all] [--format jsonl|markdown] [-o FILE]
    memoir import FILE                      add what an export holds (idempotent)
    memoir edit ID [--title T] [--fact F]... [--narrative N]   correct an observation
    memoir delete observation|summary ID

Exit codes: 0 success, 1 failure, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import TextIO

from .. import __version__
from ..errors import InvalidInput, MemoirError
from ..log import get_logger
from . import browse, data, maintenance, recall, ui, usage, wiring

log = get_logger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="memoir", description="Persistent memory for Claude Code.")
    parser.add_argument("--version", action="version", version=f"memoir {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (wiring, browse, recall, maintenance, usage, data, ui):
        group.register(sub)
    return parser


# Commands whose stdout is a protocol or a faithful copy of the data, printed
# as it is; every other command's output shows stored text (tool output,
# prompts) and goes through PrintableOutput.
RAW_OUTPUT = frozenset({"mcp", "export", "ui"})


class PrintableOutput:
    """A text stream that makes control characters inert before they reach the terminal.

    Stored text came from tool output: printed raw, ``\x1b]0;...\x07`` or
    ``\x1b[2J`` in it would retitle or clear the user's terminal, or hide text.
    """

    def __init__(self, stream: TextIO) -> None:
        from ..recall.fence import printable

        self._stream = stream
        self._printable = printable

    def write(self, text: str) -> int:
        return self._stream.write(self._printable(text))

    def flush(self) -> None:
        self._stream.flush()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``memoir`` console script."""
    args = build_parser().parse_args(argv)
    from ..config import load_settings
    from ..log import setup_logging

    settings = load_settings()
    setup_logging(settings.home, settings.log_level, settings.log_max_bytes)
    if args.command not in RAW_OUTPUT:
        sys.stdout = PrintableOutput(sys.stdout)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        # `memoir sessions | head -1`: the reader is gone, which is no error of
        # ours. Point stdout at /dev/null so the interpreter's final flush does
        # not print a traceback either, and exit as a program killed by SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return 128 + signal.SIGPIPE
    except MemoirError as e:
        print(f"memoir: {e}", file=sys.stderr)
        log.error("%s failed (%s): %s", args.command, e.reason, e)
        return 2 if isinstance(e, InvalidInput) else 1


if __name__ == "__main__":
    sys.exit(main())
