"""Export and import: the store's memory as portable records, and back, idempotently.

A record is a JSON object with a ``kind``: ``session``, ``prompt``,
``observation`` or ``summary``, each naming its session by Claude Code session
id (row ids are local to one store). Raw tool events are not exported: they are
the worker's queue, not memory, and hold the bulk of the tool output.

Import matches what it already has, so importing the same file twice, or a
file exported from this store, adds nothing: sessions by session id, prompts
and summaries by (session, prompt number), observations by (session, prompt
number, created_at, position among observations made in the same instant).
"""

from __future__ import annotations

import json

from ..errors import InvalidInput
from ..paths import validate_session_id
from ..text import code_terms
from ..values import Record
from .connection import Connected

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

FORMAT_VERSION = 1

_SESSION_FIELDS = ("project", "cwd", "status", "started_at", "updated_at", "ended_at",
                   "end_reason")
_PROMPT_FIELDS = ("prompt_number", "text", "response", "created_at", "finished_at")
_OBS_TEXT = ("type", "title", "subtitle", "narrative", "created_at")
_OBS_LISTS = ("facts", "concepts", "files_read", "files_modified")
_SUMMARY_TEXT = ("request", "investigated", "learned", "completed", "next_steps", "notes",
                 "created_at")


class ImportReport(Record):
    """How many records of each kind an import added, and how many it already had."""

    added: dict[str, int]
    present: dict[str, int]


def _text(record: dict[str, Any], key: str, line: int, *, optional: bool = False) -> str | None:
    value = record.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"line {line}: field {key!r} must be a string", reason="bad-import")
    return value


def _int(record: dict[str, Any], key: str, line: int) -> int:
    value = record.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInput(f"line {line}: field {key!r} must be a whole number",
                           reason="bad-import")
    return value


def _strings(record: dict[str, Any], key: str, line: int) -> str:
    value = record.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"line {line}: field {key!r} must be a list of strings",
                           reason="bad-import")
    return json.dumps(value, ensure_ascii=False)


class TransferQueries(Connected):
    """Export records out of the store and import them back."""

    def export_records(self, project: str | None = None) -> Iterator[dict[str, Any]]:
        """Every session (of one project, or all) with its prompts, observations, summaries."""
        where, args = ("WHERE project = ?", (project,)) if project is not None else ("", ())
        sessions = self.conn.execute(
            f"SELECT * FROM sessions {where} ORDER BY started_at, id", args).fetchall()
        for s in sessions:
            sid = s["claude_session_id"]
            yield {"kind": "session", "session": sid, **{k: s[k] for k in _SESSION_FIELDS}}
            for p in self.conn.execute(
                    "SELECT * FROM prompts WHERE session_id = ? ORDER BY prompt_number",
                    (s["id"],)):
                yield {"kind": "prompt", "session": sid, **{k: p[k] for k in _PROMPT_FIELDS}}
            seen: dict[tuple[int, str], int] = {}
            for o in self.conn.execute(
                    "SELECT * FROM observations WHERE session_id = ? ORDER BY id", (s["id"],)):
                group = (o["prompt_number"], o["created_at"])
                seq = seen.get(group, 0)
                seen[group] = seq + 1
                yield {"kind": "observation", "session": sid,
                       "prompt_number": o["prompt_number"], "seq": seq,
                       **{k: o[k] for k in _OBS_TEXT},
                       **{k: json.loads(o[k]) for k in _OBS_LISTS},
                       "edited_at": o["edited_at"]}
            for m in self.conn.execute(
                    "SELECT * FROM summaries WHERE session_id = ? ORDER BY prompt_number",
                    (s["id"],)):
                yield {"kind": "summary", "session": sid, "prompt_number": m["prompt_number"],
                       "summary_kind": m["kind"], **{k: m[k] for k in _SUMMARY_TEXT}}

    def import_records(self, records: Iterable[tuple[int, dict[str, Any]]]) -> ImportReport:
        """Add the records this store lacks, in one transaction (all or nothing).

        ``records`` are (line number, record) pairs; a malformed record raises
        InvalidInput naming its line, and nothing is imported.
        """
        added = {"sessions": 0, "prompts": 0, "observations": 0, "summaries": 0}
        present = dict(added)
        with self.transaction() as conn:
            ids: dict[str, int] = {}

            def session_row_id(record: dict[str, Any], line: int) -> int:
                sid = validate_session_id(record.get("session"))
                if sid not in ids:
                    row = conn.execute("SELECT id FROM sessions WHERE claude_session_id = ?",
                                       (sid,)).fetchone()
                    if row is None:
                        raise InvalidInput(f"line {line}: session {sid} comes before its "
                                           "session record", reason="bad-import")
                    ids[sid] = int(row[0])
                return ids[sid]

            for line, record in records:
                kind = record.get("kind")
                if kind == "session":
                    sid = validate_session_id(record.get("session"))
                    status = _text(record, "status", line)
                    if status not in ("active", "completed", "failed"):
                        raise InvalidInput(f"line {line}: unknown status {status!r}",
                                           reason="bad-import")
                    # No worker serves an imported session here: it is over.
                    status = "completed" if status == "active" else status
                    cur = conn.execute(
                        "INSERT OR IGNORE INTO sessions (claude_session_id, project, cwd, status,"
                        " started_at, updated_at, ended_at, end_reason)"
                        " VALUES (?, ?, ?, ?, ?, ?, COALESCE(?, ?), ?)",
                        (sid, _text(record, "project", line), _text(record, "cwd", line),
                         status, _text(record, "started_at", line),
                         _text(record, "updated_at", line),
                         _text(record, "ended_at", line, optional=True),
                         _text(record, "updated_at", line),
                         _text(record, "end_reason", line, optional=True)))
                    (added if cur.rowcount else present)["sessions"] += 1
                elif kind == "prompt":
                    text = _text(record, "text", line)
                    cur = conn.execute(
                        "INSERT OR IGNORE INTO prompts (session_id, prompt_number, text,"
                        " response, created_at, finished_at, terms)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (session_row_id(record, line), _int(record, "prompt_number", line),
                         text,
                         _text(record, "response", line, optional=True),
                         _text(record, "created_at", line),
                         _text(record, "finished_at", line, optional=True), code_terms(text)))
                    (added if cur.rowcount else present)["prompts"] += 1
                elif kind == "observation":
                    session_id = session_row_id(record, line)
                    number = _int(record, "prompt_number", line)
                    created = _text(record, "created_at", line)
                    have = conn.execute(
                        "SELECT COUNT(*) FROM observations WHERE session_id = ?"
                        " AND prompt_number = ? AND created_at = ?",
                        (session_id, number, created)).fetchone()[0]
                    if have > _int(record, "seq", line):
                        present["observations"] += 1
                        continue
                    texts = [_text(record, k, line) for k in _OBS_TEXT[:-1]]
                    lists = [_strings(record, k, line) for k in _OBS_LISTS]
                    conn.execute(
                        "INSERT INTO observations (session_id, prompt_number, type, title,"
                        " subtitle, narrative, created_at, facts, concepts, files_read,"
                        " files_modified, edited_at, terms)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (session_id, number, *texts, created, *lists,
                         _text(record, "edited_at", line, optional=True),
                         code_terms(*texts[1:], *(t for raw in lists
                                                  for t in json.loads(raw)))))
                    added["observations"] += 1
                elif kind == "summary":
                    summary_kind = record.get("summary_kind", "agent")
                    if summary_kind not in ("agent", "fallback"):
                        raise InvalidInput(f"line {line}: unknown summary_kind",
                                           reason="bad-import")
                    fields = [_text(record, k, line) for k in _SUMMARY_TEXT]
                    cur = conn.execute(
                        "INSERT OR IGNORE INTO summaries (session_id, prompt_number, request,"
                        " investigated, learned, completed, next_steps, notes, created_at,"
                        " kind, terms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (session_row_id(record, line), _int(record, "prompt_number", line),
                         *fields, summary_kind, code_terms(*fields[:-1])))
                    (added if cur.rowcount else present)["summaries"] += 1
                elif kind == "memoir-export":
                    if record.get("version") != FORMAT_VERSION:
                        raise InvalidInput(f"line {line}: export format version "
                                           f"{record.get('version')!r} is not {FORMAT_VERSION}",
                                           reason="bad-import")
                else:
                    raise InvalidInput(f"line {line}: unknown record kind {kind!r}",
                                       reason="bad-import")
        return ImportReport(added=added, present=present)
