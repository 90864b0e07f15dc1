"""The user's control over stored memory.

``forget``, ``export``, ``import``, ``edit`` and ``delete``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from ..errors import InvalidInput
from .output import print_json

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?Z?)?")

# Largest import file accepted: an export of a very large store is a few
# hundred MB; anything past this is not one, and reading it would take the memory.
MAX_IMPORT_BYTES = 2 * 1024**3


def _file_size(path: str) -> int:
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(OSError):
            total += os.path.getsize(path + suffix)
    return total


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise InvalidInput("refusing to forget without confirmation: pass --yes "
                           "(or --dry-run to see what would go)", reason="not-confirmed")
    answer = input(f"{question} [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def cmd_forget(args: argparse.Namespace) -> int:
    """Remove sessions and everything derived from them, then reclaim the space."""
    from ..config import load_settings
    from ..paths import validate_session_id
    from ..recall.project import project_key
    from ..store import Store

    selectors = [args.session is not None, args.cwd is not None, args.before is not None]
    if sum(selectors) != 1:
        raise InvalidInput("name exactly one of SESSION, --cwd DIR or --before DATE",
                           reason="bad-selector")
    if args.before is not None and not _DATE.fullmatch(args.before):
        raise InvalidInput(f"--before wants a date like 2026-01-31, not {args.before!r}",
                           reason="bad-date")
    with Store.open(load_settings().home) as store:
        sessions = store.sessions_to_forget(
            claude_session_id=None if args.session is None else validate_session_id(args.session),
            project=None if args.cwd is None else project_key(args.cwd),
            before=args.before)
        plan = store.forget_plan(sessions)
        what = ", ".join(f"{n} {k}" for k, n in plan.counts.items())
        if args.json and (args.dry_run or not sessions):
            print_json({"dry_run": bool(args.dry_run), **plan.counts,
                        "session_ids": [s.claude_session_id for s in sessions]})
            return 0
        if not sessions:
            print("nothing to forget: no session matches")
            return 0
        if args.dry_run:
            print(f"would forget {what}:")
            for s in sessions:
                print(f"  {s.claude_session_id}  {s.started_at[:16].replace('T', ' ')}  "
                      f"{s.project}")
            return 0
        if not args.yes and not _confirm(f"forget {what}? This cannot be undone."):
            print("nothing forgotten")
            return 1
        before = _file_size(store.path)
        store.forget_sessions([s.id for s in sessions])
        store.reclaim_space()
        after = _file_size(store.path)
    if args.json:
        print_json({"dry_run": False, **plan.counts, "bytes_before": before,
                    "bytes_after": after,
                    "session_ids": [s.claude_session_id for s in sessions]})
    else:
        print(f"forgot {what}; database {before // 1024} KiB -> {after // 1024} KiB")
    return 0


def _markdown(records: Iterator[dict[str, Any]], out: TextIO) -> None:
    """Write records as readable notes: a section per session, newest detail last."""
    out.write("# claude-memoir export\n")
    project = None
    for r in records:
        kind = r["kind"]
        if kind == "session":
            if r["project"] != project:
                project = r["project"]
                out.write(f"\n## Project {project}\n")
            out.write(f"\n### Session {r['session']} ({r['started_at'][:16].replace('T', ' ')},"
                      f" {r['status']})\n")
        elif kind == "prompt":
            out.write(f"\n**Prompt {r['prompt_number']}:** {_one_line(r['text'])}\n")
        elif kind == "observation":
            edited = " *(edited)*" if r["edited_at"] else ""
            out.write(f"\n- **[{r['type']}] {_one_line(r['title'])}**{edited}")
            if r["subtitle"]:
                out.write(f": {_one_line(r['subtitle'])}")
            out.write("\n")
            for fact in r["facts"]:
                out.write(f"  - {_one_line(fact)}\n")
            if r["narrative"]:
                out.write(f"\n  {_one_line(r['narrative'])}\n")
            files = r["files_modified"] + r["files_read"]
            if files:
                out.write(f"  - files: {', '.join(_one_line(f) for f in files)}\n")
        elif kind == "summary":
            out.write(f"\n#### Summary of prompt {r['prompt_number']}\n")
            for field in ("request", "investigated", "learned", "completed", "next_steps",
                          "notes"):
                if r[field]:
                    out.write(f"- {field.replace('_', ' ')}: {_one_line(r[field])}\n")


def _one_line(text: str) -> str:
    # Markdown notes: stored text must not open headings or break list items.
    return " ".join(str(text).split())


def cmd_export(args: argparse.Namespace) -> int:
    """Write memory (one project or all) as JSON Lines or Markdown."""
    from ..config import load_settings
    from ..recall.project import project_key
    from ..store import Store

    project = None if args.all else project_key(args.cwd or os.getcwd())
    with Store.open(load_settings().home) as store:
        records = store.export_records(project)
        target: TextIO
        if args.output is None:
            target = sys.stdout
        else:
            # The export holds prompts and tool-derived text: private like the store.
            try:
                fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.fchmod(fd, 0o600)
            except OSError as e:
                raise InvalidInput(f"cannot write {args.output}: {e.strerror}",
                                   reason="bad-output") from e
            target = os.fdopen(fd, "w", encoding="utf-8")
        try:
            _write_export(args.format, records, target, project)
        except BrokenPipeError:
            # `memoir export | head`: the reader has what it wanted.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        finally:
            if target is not sys.stdout:
                target.close()
    return 0


def _write_export(fmt: str, records: Iterator[dict[str, Any]], target: TextIO,
                  project: str | None) -> None:
    from ..store.transfer import FORMAT_VERSION

    if fmt == "markdown":
        _markdown(records, target)
    else:
        target.write(json.dumps({"kind": "memoir-export", "version": FORMAT_VERSION,
                                 "project": project}) + "\n")
        for record in records:
            target.write(json.dumps(record, ensure_ascii=False) + "\n")


def _read_records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        if path.stat().st_size > MAX_IMPORT_BYTES:
            raise InvalidInput(f"{path} is larger than an export can be", reason="bad-import")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(f"cannot read {path}: {e}", reason="bad-import") from e
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as e:
            raise InvalidInput(f"{path} line {number} is not JSON ({e}); import reads the "
                               "JSON Lines that `memoir export` writes", reason="bad-import") from e
        if not isinstance(value, dict):
            raise InvalidInput(f"{path} line {number} is not a record", reason="bad-import")
        records.append((number, value))
    if not records or records[0][1].get("kind") != "memoir-export":
        raise InvalidInput(f"{path} is not a memoir export (JSON Lines from `memoir export`)",
                           reason="bad-import")
    return records


def cmd_import(args: argparse.Namespace) -> int:
    """Add what an export holds and this store lacks (idempotent)."""
    from ..config import load_settings
    from ..store import Store

    records = _read_records(args.file)
    with Store.open(load_settings().home) as store:
        report = store.import_records(records)
    if args.json:
        print_json(report._asdict())
    else:
        added = ", ".join(f"{n} {k}" for k, n in report.added.items())
        present = sum(report.present.values())
        print(f"imported {added} ({present} already present)")
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    """Correct an observation; it is marked edited and the agent never overwrites it."""
    from ..config import load_settings
    from ..store import Store

    if args.title is None and args.fact is None and args.narrative is None:
        raise InvalidInput("nothing to change: give --title, --fact or --narrative",
                           reason="bad-edit")
    with Store.open(load_settings().home) as store:
        row = store.edit_observation(args.id, title=args.title, facts=args.fact,
                                     narrative=args.narrative)
    if row is None:
        print(f"memoir: no observation {args.id}", file=sys.stderr)
        return 1
    print(f"observation {row.id} edited: {row.title}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """Delete one observation or summary by id."""
    from ..config import load_settings
    from ..store import Store

    with Store.open(load_settings().home) as store:
        gone = (store.delete_observation(args.id) if args.what == "observation"
                else store.delete_summary(args.id))
    if not gone:
        print(f"memoir: no {args.what} {args.id}", file=sys.stderr)
        return 1
    print(f"{args.what} {args.id} deleted")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``forget``, ``export``, ``import``, ``edit`` and ``delete``."""
    text = "remove sessions and everything derived from them, and reclaim the space"
    p = sub.add_parser("forget", help=text, description=text)
    p.add_argument("session", nargs="?", help="Claude Code session id")
    p.add_argument("--cwd", type=Path, default=None, help="every session of this project")
    p.add_argument("--before", metavar="DATE",
                   help="every session with no activity since DATE (e.g. 2026-01-31)")
    p.add_argument("--dry-run", action="store_true", help="list what would go, change nothing")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_forget)

    text = "write memory as JSON Lines (for import) or Markdown (as notes)"
    p = sub.add_parser("export", help=text, description=text)
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--cwd", type=Path, default=None,
                       help="project directory (default: the current directory)")
    scope.add_argument("--all", action="store_true", help="every project")
    p.add_argument("--format", choices=("jsonl", "markdown"), default="jsonl")
    p.add_argument("-o", "--output", default=None, metavar="FILE",
                   help="write here, mode 0600 (default: standard output)")
    p.set_defaults(func=cmd_export)

    text = "add what a `memoir export` file holds (idempotent)"
    p = sub.add_parser("import", help=text, description=text)
    p.add_argument("file", type=Path, help="a JSON Lines export")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.set_defaults(func=cmd_import)

    text = "correct an observation (marked edited; the agent never overwrites it)"
    p = sub.add_parser("edit", help=text, description=text)
    p.add_argument("id", type=int, help="observation id")
    p.add_argument("--title", default=None)
    p.add_argument("--fact", action="append", default=None,
                   help="a fact (repeat; replaces all facts)")
    p.add_argument("--narrative", default=None)
    p.set_defaults(func=cmd_edit)

    text = "delete one observation or summary"
    p = sub.add_parser("delete", help=text, description=text)
    p.add_argument("what", choices=("observation", "summary"))
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_delete)
