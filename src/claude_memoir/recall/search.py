"""Search: ranked full-text recall over observations, summaries and prompts.

One function, :func:`search`, behind ``memoir search``, the MCP tools and
prompt-time recall. The user's words never reach FTS5's query parser as typed:
each is split into the same tokens the index holds (``ReconcileLedger``,
``reconcile_ledger`` and ``reconcile ledger`` all become the phrase
"reconcile ledger"; see schema.m0004_recall for the index side) and quoted, so
unbalanced quotes, ``AND``/``NEAR``/``*`` or 10,000 characters of pasted log
are searched as words, never an SQLite syntax error.

Ranking: BM25 (SQLite's ``bm25()``, columns weighted: a title match counts
more than a narrative match), results matching every word first, then results
matching some of them, recency breaking ties. No time cutoff unless ``since``
is given.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from ..errors import InvalidInput
from ..values import Record

if TYPE_CHECKING:
    import sqlite3

    from ..store import Store

ResultKind = Literal["observation", "summary", "prompt"]
KINDS: tuple[ResultKind, ...] = ("observation", "summary", "prompt")

#: Most results one call returns, whatever ``limit`` asks (bounds output and work).
MAX_LIMIT = 200
#: Distinct words of a query that are searched; the rest are ignored (a pasted
#: 10,000-character log must not become a 2,000-term query).
MAX_QUERY_WORDS = 32
# Characters of a result's title and snippet.
TITLE_CHARS = 160
SNIPPET_CHARS = 240

# Letters/digits runs, and camelCase boundaries: the same split as text.code_terms.
_RUN = re.compile(r"[^\W_]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
# What --type accepts: the observation types the parser stores (agent.models,
# not imported here: it pulls typing into the MCP server's and hooks' imports),
# and the other two kinds. A typo must be an error, not an empty result.
SEARCH_TYPES = frozenset({"bugfix", "feature", "refactor", "change", "discovery", "decision",
                          "summary", "prompt"})
_RELATIVE = re.compile(r"(\d{1,6})\s*(m|min|h|d|w)", re.I)

# Words that match nearly every row: dropped from a query that has other words,
# so "what did we do about the ledger" searches for "ledger".
_STOPWORD_TEXT = """
a about above after again all also am an and any are as at be been before being
between both but by can could did do does doing done during each few for from
further had has have having he her here hers him his how i if in into is it its
itself just last let me more most my no nor not now of off on once only or other
our out over own same she should so some such than that the their them then there
these they this those through time to too under until up very was we were what
when where which while who whom why will with would you your yours
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

# bm25() column weights, in each index's column order (schema.m0004_recall).
_WEIGHTS: dict[ResultKind, tuple[float, ...]] = {
    # title, subtitle, narrative, facts, concepts, files_read, files_modified, terms
    "observation": (5.0, 3.0, 1.0, 2.0, 2.0, 1.0, 2.0, 1.0),
    # request, investigated, learned, completed, next_steps, notes, terms
    "summary": (2.0, 1.0, 2.0, 2.0, 1.5, 1.0, 1.0),
    # text, terms
    "prompt": (1.0, 1.0),
}


class SearchResult(Record):
    """One search hit: an observation, a prompt's summary, or a prompt."""

    id: int
    kind: ResultKind
    # The observation's type (bugfix, feature, ...), or "summary" / "prompt".
    type: str
    title: str
    snippet: str
    # Claude Code session id of the session it was recorded in.
    session: str
    project: str
    created_at: str
    # Higher is better (BM25, negated); 0.0 when listing without a query.
    score: float


class _Query(Record):
    """A user query made safe: FTS5 expressions built only from quoted tokens."""

    strict: str  # every word must match (AND of phrases)
    loose: str  # any word may match (OR of single tokens)
    tokens: tuple[str, ...]  # lower-case tokens, for snippets


def _word_parts(word: str) -> list[str]:
    """The index tokens of one typed word: ``src/app/ReconcileLedger.py`` -> src app reconcile
    ledger py."""
    return [p.lower() for run in _RUN.findall(word) for p in _CAMEL.split(run) if p]


def parse_query(query: str) -> _Query | None:
    """Build the FTS5 expressions for ``query``; None if it has no searchable word."""
    phrases: list[str] = []
    singles: list[str] = []
    seen: set[str] = set()
    words = query.split()
    content = [w for w in words if not set(_word_parts(w)) <= STOPWORDS]
    for word in content or words:
        parts = _word_parts(word)
        if not parts:
            continue
        key = " ".join(parts)
        if key in seen:
            continue
        seen.add(key)
        # A trailing * asks for a prefix ("ledg*"), FTS5's only operator kept.
        star = "*" if word.endswith("*") else ""
        # Tokens are [^\W_]+ runs: no quote can occur, so quoting is exact.
        phrases.append(f'"{key}"{star}')
        for part in parts:
            if part not in singles and (part not in STOPWORDS or not content):
                singles.append(part)
        if len(seen) >= MAX_QUERY_WORDS:
            break
    if not phrases:
        return None
    return _Query(strict=" AND ".join(phrases),
                  loose=" OR ".join(f'"{p}"' for p in singles) or phrases[0],
                  tokens=tuple(singles))


def parse_since(value: str) -> str:
    """``since`` as the store's timestamp format: a date, an ISO time, or ``7d``/``12h``/``2w``."""
    text = value.strip()
    now = _dt.datetime.now(_dt.UTC)
    relative = _RELATIVE.fullmatch(text)
    if relative:
        amount, unit = int(relative.group(1)), relative.group(2).lower()
        span = {"m": _dt.timedelta(minutes=amount), "min": _dt.timedelta(minutes=amount),
                "h": _dt.timedelta(hours=amount), "d": _dt.timedelta(days=amount),
                "w": _dt.timedelta(weeks=amount)}[unit]
        moment = now - span
    else:
        try:
            moment = _dt.datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInput(
                f"cannot read --since {value[:40]!r}: give a date (2026-01-31), an ISO time "
                "(2026-01-31T14:00) or an age (30m, 12h, 7d, 2w)", reason="bad-since") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=_dt.UTC)
        moment = moment.astimezone(_dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _normalize_file(file: str) -> str:
    path = file.strip()
    while path.startswith("./"):
        path = path[2:]
    path = path.rstrip("/")
    if not path or "\x00" in path:
        raise InvalidInput(f"bad --file {file[:80]!r}: give a file path", reason="bad-file")
    return path


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _list_text(raw: str) -> str:
    try:
        value = json.loads(raw or "[]")
    except ValueError:
        return raw
    return "; ".join(str(v) for v in value) if isinstance(value, list) else raw


def _stem(token: str) -> str:
    """A crude stem for finding a word in a snippet ("rounding" -> "round")."""
    for suffix in ("ing", "ed", "es", "s"):
        if token.endswith(suffix) and len(token) - len(suffix) >= 3:
            return token[: -len(suffix)]
    return token


def _snippet(fields: Sequence[str], tokens: Sequence[str]) -> str:
    """A one-line window of the field that mentions the most query words, else the first."""
    texts = [" ".join(f.split()) for f in fields if f and f.strip()]
    if not texts:
        return ""
    # The index stems ("cents" finds "cent"): look for a stem-like prefix too.
    needles = {t: {t, t[: max(4, len(t) - 2)], _stem(t)} for t in tokens}
    best: tuple[int, int] | None = None  # (words found, field index)
    best_at = 0
    for index, text in enumerate(texts):
        lower = text.lower()
        found = 0
        first = len(text)
        for forms in needles.values():
            hits = [i for i in (lower.find(n) for n in forms) if i >= 0]
            if hits:
                found += 1
                first = min(first, min(hits))
        if found and (best is None or found > best[0]):
            best, best_at = (found, index), first
    if best is None:
        return _one_line(texts[0], SNIPPET_CHARS)
    text = texts[best[1]]
    start = max(0, best_at - SNIPPET_CHARS // 3)
    window = text[start:start + SNIPPET_CHARS]
    if start > 0:
        window = "…" + window[1:]
    if start + SNIPPET_CHARS < len(text):
        window = window[:-1] + "…"
    return window


# -- one query per kind ---------------------------------------------------------------

def _file_clause() -> str:
    # A file matches when the stored path and the asked one are equal, or one
    # ends with "/" + the other: `ledger.py`, `src/app/ledger.py` and
    # `/home/u/app/src/app/ledger.py` name the same file. substr(), not LIKE:
    # `_` and `%` are common in file names and would be wildcards.
    match = ("(value = :file OR substr(value, -length(:file) - 1) = '/' || :file"
             " OR substr(:file, -length(value) - 1) = '/' || value)")
    return ("EXISTS (SELECT 1 FROM (SELECT value FROM json_each(CASE WHEN"
            " json_valid(o.files_read) THEN o.files_read ELSE '[]' END) UNION ALL"
            " SELECT value FROM json_each(CASE WHEN json_valid(o.files_modified)"
            f" THEN o.files_modified ELSE '[]' END)) WHERE typeof(value) = 'text' AND {match})")


_SOURCES: dict[ResultKind, tuple[str, str, str]] = {
    # kind: (table alias + columns, FTS table, base FROM)
    "observation": (
        "o.id, o.type, o.title, o.subtitle, o.narrative, o.facts, o.files_read,"
        " o.files_modified, o.prompt_number, o.created_at",
        "observations_fts", "observations o"),
    "summary": (
        "o.id, 'summary' AS type, o.request, o.investigated, o.learned, o.completed,"
        " o.next_steps, o.notes, o.prompt_number, o.created_at",
        "summaries_fts", "summaries o"),
    "prompt": (
        "o.id, 'prompt' AS type, o.text, o.prompt_number, o.created_at",
        "prompts_fts", "prompts o"),
}


def _result(kind: ResultKind, row: sqlite3.Row, tokens: Sequence[str],
            score: float) -> SearchResult:
    if kind == "observation":
        title = row["title"]
        # Facts before the narrative: on a tie the crisper text is shown.
        fields = [row["subtitle"], _list_text(row["facts"]), row["narrative"],
                  _list_text(row["files_modified"]), _list_text(row["files_read"])]
    elif kind == "summary":
        title = row["request"] or f"summary of prompt {row['prompt_number']}"
        fields = [row["learned"], row["completed"], row["next_steps"], row["investigated"],
                  row["notes"], row["request"]]
    else:
        title = row["text"]
        fields = [row["text"]]
    return SearchResult(
        id=int(row["id"]), kind=kind, type=str(row["type"]),
        title=_one_line(str(title), TITLE_CHARS), snippet=_snippet(fields, tokens),
        session=str(row["claude_session_id"]), project=str(row["project"]),
        created_at=str(row["created_at"]), score=round(score, 4))


def _run(store: Store, kind: ResultKind, match: str | None, where: list[str],
         params: dict[str, object], limit: int) -> list[tuple[sqlite3.Row, float]]:
    columns, fts, base = _SOURCES[kind]
    clauses = list(where)
    if match is not None:
        weights = ", ".join(str(w) for w in _WEIGHTS[kind])
        sql = (f"SELECT {columns}, s.claude_session_id, s.project,"
               f" bm25({fts}, {weights}) AS rank"
               f" FROM {fts} JOIN {base} ON o.id = {fts}.rowid"
               " JOIN sessions s ON s.id = o.session_id"
               f" WHERE {fts} MATCH :match")
        params = {**params, "match": match}
        order = " ORDER BY rank, o.created_at DESC, o.id DESC"
    else:
        sql = (f"SELECT {columns}, s.claude_session_id, s.project, 0.0 AS rank"
               f" FROM {base} JOIN sessions s ON s.id = o.session_id WHERE 1")
        order = " ORDER BY o.created_at DESC, o.id DESC"
    for clause in clauses:
        sql += f" AND {clause}"
    sql += order + " LIMIT :limit"
    rows = store.conn.execute(sql, {**params, "limit": limit}).fetchall()
    # `0.0 - rank`: a listing (rank 0.0) scores 0.0, not -0.0.
    return [(r, 0.0 - float(r["rank"])) for r in rows]


def search(store: Store, query: str, *, project: str | None, types: Sequence[str] = (),
           file: str | None = None, since: str | None = None,
           limit: int = 20) -> list[SearchResult]:
    """Search a project's memory (all projects when ``project`` is None).

    ``types``: observation types (``bugfix``, ``decision`` ...) and/or
    ``summary`` / ``prompt``; empty means everything. ``file``: only
    observations that read or modified that file (any path suffix matches).
    ``since``: a date, ISO time or age (``7d``). ``query`` may be empty when a
    filter is given: then the newest matching rows are listed.

    Raises InvalidInput (a clear message, nothing changed) for an empty query
    without filters, a query without a single word, or a bad filter; never an
    SQLite error for what the user typed.
    """
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise InvalidInput(f"bad limit {limit!r}: give a number from 1 to {MAX_LIMIT}",
                           reason="bad-limit")
    limit = min(limit, MAX_LIMIT)
    wanted_types = [t.strip().lower() for t in types if t and t.strip()]
    for t in wanted_types:
        if t not in SEARCH_TYPES:
            raise InvalidInput(f"bad type {t[:40]!r}: give an observation type (bugfix, "
                               "feature, refactor, change, discovery, decision), summary or "
                               "prompt", reason="bad-type")
    parsed: _Query | None = None
    if query.strip():
        parsed = parse_query(query[: MAX_QUERY_WORDS * 200])
        if parsed is None:
            raise InvalidInput(f"nothing to search for in {query[:60]!r}: give words "
                               "(letters or digits)", reason="bad-query")
    elif not (wanted_types or file or since):
        raise InvalidInput("empty query: give words to search for, or a type, file or "
                           "since filter to list what matches", reason="bad-query")

    params: dict[str, object] = {}
    common: list[str] = []
    if project is not None:
        common.append("s.project = :project")
        params["project"] = project
    if since:
        common.append("o.created_at >= :since")
        params["since"] = parse_since(since)
    obs_types = [t for t in wanted_types if t not in ("summary", "prompt")]
    kinds: list[ResultKind] = [
        k for k in KINDS
        if not wanted_types
        or (k == "observation" and obs_types) or (k != "observation" and k in wanted_types)]
    if file is not None:
        params["file"] = _normalize_file(file)
        kinds = [k for k in kinds if k == "observation"]  # only observations name files

    found: dict[tuple[str, int], tuple[int, SearchResult]] = {}
    tiers = [parsed.strict, parsed.loose] if parsed else [None]
    tokens = parsed.tokens if parsed else ()
    for tier, match in enumerate(tiers):
        if tier > 0 and (len(found) >= limit or match == tiers[0]):
            break
        for kind in kinds:
            where = list(common)
            kind_params = dict(params)
            if kind == "observation":
                if obs_types:
                    marks = ", ".join(f":type{i}" for i in range(len(obs_types)))
                    where.append(f"o.type IN ({marks})")
                    kind_params.update({f"type{i}": t for i, t in enumerate(obs_types)})
                if file is not None:
                    where.append(_file_clause())
            for row, score in _run(store, kind, match, where, kind_params, limit):
                key = (kind, int(row["id"]))
                if key not in found:
                    found[key] = (tier, _result(kind, row, tokens, score))
    # Recency breaks ties: newest first, then a stable sort by (tier, score).
    ranked = sorted(found.values(), key=lambda tr: tr[1].created_at, reverse=True)
    ranked = sorted(ranked, key=lambda tr: (tr[0], -round(tr[1].score, 3)))
    return [r for _, r in ranked[:limit]]
