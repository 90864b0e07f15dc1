"""Scrub secrets and private sections before anything is stored or sent.

Every prompt, tool input and tool output claude-memoir records passes through
:func:`redact_text` (strings) or :func:`redact_value` (JSON-like data) before it
is written to SQLite or forwarded to the memory agent's model. The rules below
are applied in this order; each replaced piece becomes a marker that no rule
matches again, so redacting twice gives the same text as redacting once.

1. Private sections
   ``<private>…</private>`` is replaced by ``[private]``. The tag name is
   matched in any case (``<PRIVATE>``, ``</ Private >``), a section may span
   lines, and sections may nest (the outermost pair counts). An unclosed
   ``<private>`` hides everything to the end of the text: when in doubt, hide.
   A ``</private>`` with no opening tag is left as it is.

2. PEM private keys, replaced by ``[REDACTED:private-key]``
   ``-----BEGIN … PRIVATE KEY-----`` (RSA, EC, DSA, OPENSSH, ENCRYPTED, PGP …
   BLOCK, or none) through the next ``-----END … PRIVATE KEY-----``: the whole
   block, markers and body. A BEGIN with no END (say, truncated output) hides
   the marker and the key-like text after it, up to the first character that
   cannot be part of a key (base64, whitespace, ``\\n`` escapes and
   ``Proc-Type:``-style headers can); an END with no BEGIN hides the marker
   and the key-like text before it. Certificates and public keys are
   kept.

3. Well-known token shapes, replaced by ``[REDACTED:<kind>]``. A token must
   start a word (``risk-free`` is not an OpenAI key):

   ================================  ===========================================
   kind                              shape
   ================================  ===========================================
   ``anthropic-key``                 ``sk-ant-`` + 20 or more of ``A-Za-z0-9_-``
   ``openai-key``                    ``sk-`` / ``sk-proj-`` / ``sk-svcacct-`` /
                                     ``sk-admin-`` + 20 or more of
                                     ``A-Za-z0-9_-``, at least one a digit
   ``aws-access-key-id``             ``AKIA`` / ``ASIA`` + exactly 16 of ``A-Z0-9``
   ``github-token``                  ``ghp_`` ``gho_`` ``ghu_`` ``ghs_`` ``ghr_`` +
                                     20 or more alphanumerics; ``github_pat_`` + 20
                                     or more of ``A-Za-z0-9_``
   ``gitlab-token``                  ``glpat-`` + 20 or more of ``A-Za-z0-9_-``
   ``slack-token``                   ``xoxa-`` ``xoxb-`` ``xoxp-`` ``xoxr-``
                                     ``xoxs-`` + 10 or more of ``A-Za-z0-9-``
   ``stripe-key``                    ``sk_live_`` ``rk_live_`` ``sk_test_``
                                     ``rk_test_`` + 16 or more alphanumerics
   ``google-api-key``                ``AIza`` + exactly 35 of ``A-Za-z0-9_-``
   ``jwt``                           ``eyJ…`` ``.`` ``…`` ``.`` ``…``: three
                                     base64url segments, the first a JSON header
   ================================  ===========================================

4. Passwords in URLs: ``scheme://user:PASSWORD@host`` →
   ``scheme://user:[REDACTED:url-password]@host`` (user and host are kept; the
   user may be empty, as in ``redis://:PASSWORD@host``).

5. ``aws_secret_access_key`` / ``AWS_SECRET_ACCESS_KEY`` / ``SecretAccessKey``
   followed by ``=`` or ``:`` and a 40-character secret: the secret becomes
   ``[REDACTED:aws-secret-key]``.

6. ``Authorization:`` (also ``Proxy-Authorization``, ``"authorization": "…"``)
   header values: ``Bearer <t>`` → ``Bearer [REDACTED:bearer-token]``,
   ``Basic <t>`` → ``Basic [REDACTED:basic-auth]``, ``token <t>`` →
   ``token [REDACTED:token]``; a value of 8 or more characters without a scheme
   → ``[REDACTED:authorization]``. References such as ``Bearer $TOKEN`` or
   ``Bearer {token}`` are kept.

7. Assignments whose key ends with ``password``, ``passwd``, ``secret``,
   ``secret_key``, ``token``, ``api_key`` / ``apikey``, ``access_key`` or
   ``private_key`` (any case, ``_`` or ``-`` or nothing between the words, any
   prefix: ``DB_PASSWORD``, ``client_secret``, ``accessToken``, ``--password``),
   followed by ``=``, ``:`` or ``:=``: env files, shell, YAML, TOML, INI, JSON
   (``"password": "…"``) and code. Only the value is replaced, by
   ``[REDACTED:password]`` (also for ``passwd``), ``[REDACTED:secret]``,
   ``[REDACTED:secret-key]``, ``[REDACTED:token]``, ``[REDACTED:api-key]``,
   ``[REDACTED:access-key]`` or ``[REDACTED:private-key]``; the key stays, so
   the record still says that a password was set. The value must look like a
   literal:

   * a quoted string (``"…"``, ``'…'``, ```…```, or ``\\"…\\"`` inside
     JSON-encoded text), non-empty; an unterminated quote runs to the end of
     the line. Kept: a quoted bare variable reference (``"$VAR"``,
     ``"${VAR}"``), and, after an unquoted key, a "value" that starts with
     whitespace, ``)``, ``]``, ``}``, ``,`` or ``;``, with ``+``, ``.``,
     ``%``, ``|``, ``&`` or ``*`` and a space, or with ``.name(``: there the
     quote closes a string the key stands in (``input("Password: ")``,
     ``print("token: " + t)``).
   * or a bare word (up to whitespace, a quote or one of ``()[]{}<>,;``) of 8
     or more characters that is not followed by ``(``, ``[``, ``{`` or ``<``
     (a call or subscript), does not start with ``$`` or ``%`` (a variable
     reference), and is not a name: an identifier without digits
     (``new_password``) or a dotted name (``self.token``,
     ``settings.SECRET_KEY``) is taken for code, except in an env-file style
     ``KEY=value`` (no spaces around ``=``, not a keyword argument after ``(``
     or ``,``), where any word counts.

   So ``password = getpass()``, ``token = request.headers["X"]``,
   ``secret_key_path = …``, ``def token(self)``, ``max_tokens = 4096``,
   ``tokenizer = …``, ``if password == x`` and ``{"password": password}`` are
   left alone. Known gap: a YAML value that is a plain word without digits
   (``password: correcthorse``) looks like a type annotation and is kept.

8. Your own patterns: each regular expression in ``MEMOIR_REDACT`` (passed in
   as ``extra_patterns``) replaces its matches with ``[REDACTED:custom]``. An
   invalid expression is logged as a warning and skipped. Such patterns run
   last and are trusted: one that matches its own marker, or backtracks
   catastrophically, is the user's to fix.

:func:`redact_value` applies all of this to every string of a JSON-like value
(dict keys are kept as they are), and in addition replaces the whole value of
a dict entry whose key names a secret by ``"[REDACTED:<key>]"`` when that value
is a non-empty string. A key names a secret when, ignoring case, ``-`` and
``_``, it ends with ``password``, ``passwd``, ``secret``, ``secretkey``,
``token``, ``apikey``, ``accesskey``, ``privatekey``, ``authorization`` or
``cookie`` (so ``Set-Cookie``, ``X-Api-Key``, ``github_token`` too). Containers
nested deeper than 64 levels become ``"[too deep]"``; a container that contains
itself becomes ``"[cycle]"`` where it recurs.

Nothing else is recognised: a secret with no known shape and no telling key
name (say, a bare 40-character hex string) is kept. Add a pattern for it.
"""

from __future__ import annotations

import functools
import re

from .log import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

log = get_logger(__name__)


class _Lazy:
    """A regular expression compiled on first use.

    Compiling this module's ~20 patterns took ~3 ms of every hook's start-up,
    and most tool output never needs most of them: the token rules only run
    when their literal prefix occurs in the text (see ``_TOKEN_RULES``).
    """

    __slots__ = ("source", "flags", "compiled")

    def __init__(self, source: str, flags: int = 0) -> None:
        self.source = source
        self.flags = flags
        self.compiled: re.Pattern[str] | None = None

    def __getattr__(self, name: str) -> object:
        # Only reached for what a compiled pattern has (sub, finditer, ...).
        if self.compiled is None:
            self.compiled = re.compile(self.source, self.flags)
        return getattr(self.compiled, name)


# Type checkers see a compiled pattern: re.Pattern[str] forwards every attribute to one.
if TYPE_CHECKING:
    def _lazy(source: str, flags: int = 0) -> re.Pattern[str]: ...
else:
    _lazy = _Lazy


MAX_DEPTH = 64
TOO_DEEP = "[too deep]"
CYCLE = "[cycle]"
PRIVATE = "[private]"
CUSTOM_KIND = "custom"


def _marker(kind: str) -> str:
    return f"[REDACTED:{kind}]"


# A value that is exactly one of our own markers was redacted by an earlier
# rule or pass; matching it again would break idempotence ("[REDACTED:x]" ->
# "[REDACTED:password]").
_MARKER = _lazy(r"\[REDACTED:[^\]\n]*\]|\[private\]")

# ---------------------------------------------------------------------------
# Performance notes, for every pattern below. Python's re engine backtracks and
# only skips ahead quickly when a pattern starts with a literal; a pattern that
# starts with a lookbehind or \b is tried at every position (20-40 ms per MB
# each). So each pattern starts with its literal and checks the word boundary
# with a fixed-width lookbehind placed after it. Every repeated class is
# followed by something it cannot match, so a failed attempt costs at most one
# scan of the run it started on, and runs never overlap: linear time.
# ---------------------------------------------------------------------------

_PRIVATE_TAG = _lazy(r"<(/?)\s*private\s*>", re.IGNORECASE)

_PEM_MARKER = _lazy(r"-----(BEGIN|END) (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
# What may stand between the markers of a real key: base64, whitespace, "\n"
# escapes of JSON-encoded text, and RFC 1421 headers ("Proc-Type: 4,ENCRYPTED",
# "Version: GnuPG v2.0.22"). Anything else between two markers (code, prose)
# means they are not one block.
_PEM_BODY = _lazy(r"[A-Za-z0-9+/=\s\\:,.-]*")

# (kind, triggers, pattern, check). The pattern runs only if one of the
# triggers (its literal prefixes) occurs in the text: a substring test is ~100x
# cheaper than a regex scan and spares compiling the pattern at all. check,
# when given, vetoes a match the pattern alone cannot rule out.
if TYPE_CHECKING:
    _Rule = tuple[str, tuple[str, ...], re.Pattern[str], Callable[[re.Match[str]], bool] | None]


def _has_digit_after_prefix(m: re.Match[str]) -> bool:
    # Real OpenAI keys are random base62 and all but never lack a digit; CSS
    # class names such as "sk-folding-cube-container" (SpinKit) always do.
    return any(c.isdigit() for c in m.group(0)[3:])


_TOKEN_RULES: tuple[_Rule, ...] = (
    ("anthropic-key", ("sk-ant-",), _lazy(
        r"sk-ant-(?<![A-Za-z0-9]sk-ant-)[A-Za-z0-9_-]{20,}"), None),
    ("openai-key", ("sk-",), _lazy(
        r"sk-(?<![A-Za-z0-9]sk-)(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"),
     _has_digit_after_prefix),
    ("aws-access-key-id", ("AKIA", "ASIA"), _lazy(
        r"A(?:KIA|SIA)(?<![A-Za-z0-9]A[KS]IA)[A-Z0-9]{16}(?![A-Za-z0-9])"), None),
    ("github-token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"), _lazy(
        r"gh[pousr]_(?<![A-Za-z0-9_]gh[pousr]_)[A-Za-z0-9]{20,}"), None),
    ("github-token", ("github_pat_",), _lazy(
        r"github_pat_(?<![A-Za-z0-9_]github_pat_)[A-Za-z0-9_]{20,}"), None),
    ("gitlab-token", ("glpat-",), _lazy(
        r"glpat-(?<![A-Za-z0-9_]glpat-)[A-Za-z0-9_-]{20,}"), None),
    ("slack-token", ("xox",), _lazy(
        r"xox[abprs]-(?<![A-Za-z0-9]xox[abprs]-)[A-Za-z0-9-]{10,}"), None),
    # Two patterns rather than "[sr]k_": a leading class is tried at every "s"
    # and "r" in the text, 10x slower than a literal prefix.
    ("stripe-key", ("sk_",), _lazy(
        r"sk_(?<![A-Za-z0-9_]sk_)(?:live|test)_[A-Za-z0-9]{16,}"), None),
    ("stripe-key", ("rk_",), _lazy(
        r"rk_(?<![A-Za-z0-9_]rk_)(?:live|test)_[A-Za-z0-9]{16,}"), None),
    ("google-api-key", ("AIza",), _lazy(
        r"AIza(?<![A-Za-z0-9_-]AIza)[A-Za-z0-9_-]{35}(?![A-Za-z0-9_-])"), None),
    ("jwt", ("eyJ",), _lazy(
        r"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), None),
)

# Keyed rules run on an ASCII-lowercased copy of the text (same length, so
# spans carry over): re.IGNORECASE would disable the literal-prefix search and
# cost ~100 ms per MB for the assignment rule alone.
_QUOTE_OPEN = r"""(?:\\?["'])?"""  # closing quote of a JSON/dict key, maybe escaped

_AWS_SECRET = _lazy(
    r"secret[_-]?access[_-]?key(?![a-z0-9_-])" + _QUOTE_OPEN
    + r"[ \t]*(?::=|[:=])[ \t]*" + _QUOTE_OPEN
    + r"(?P<val>[a-z0-9/+=]{40})(?![a-z0-9/+=])"
)

_AUTHORIZATION = _lazy(
    r"authorization(?![a-z0-9_-])" + _QUOTE_OPEN + r"[ \t]*[:=][ \t]*" + _QUOTE_OPEN
    + r"(?:(?P<scheme>bearer|basic|token)[ \t]+)?(?P<val>[a-z0-9._~+/-]+=*)"
)
_AUTH_KINDS = {"bearer": "bearer-token", "basic": "basic-auth", "token": "token"}

# Anchored on "://" (a literal) rather than on the scheme; the scheme is kept
# anyway. The password run is greedy, so "user:p@ss@host" loses "p@ss".
_URL_PASSWORD = _lazy(r"://(?P<user>[^\s:/?#@\"'<>\[\]]*):(?P<pw>[^\s/?#\"'<>]+)@")

_ASSIGN = _lazy(
    r"(?P<key>passw(?:or)?d|secret(?:[_-]?key)?|token|api[_-]?key|access[_-]?key"
    r"|private[_-]?key)"
    # The keyword must end the key: not "tokenizer", "secret_key_path", "max_tokens".
    r"(?![a-z0-9_-])"
    r"""(?P<kq>\\?["'])?"""
    # "==", "=>", "=~", "::" are comparisons, arrows, matches and paths, not
    # assignments.
    r"(?P<sep>[ \t]*(?::=|=(?![=>~])|:(?!:))[ \t]*)"
    # Each value form ends at its closing quote or the end of the line, and the
    # last one matches the empty string: once key and separator matched, the
    # match never fails and never backtracks, and the scan resumes after it.
    r"(?P<val>"
    # (Escapes unrolled as "plain* (escape plain*)*": the same language as
    # "(plain|escape)*", but each run of plain characters is one fast step.)
    r"""\\"(?P<q1>[^"\\\n]*(?:\\[^"\n][^"\\\n]*)*)(?:\\")?"""
    r"""|"(?P<q2>[^"\\\n]*(?:\\.[^"\\\n]*)*)"?"""
    r"""|'(?P<q3>[^'\\\n]*(?:\\.[^'\\\n]*)*)'?"""
    r"|`(?P<q4>[^`\n]*)`?"
    r"""|(?P<bare>[^\s"'`()\[\]{}<>,;]*))"""
)
_QUOTED_GROUPS = ("q1", "q2", "q3", "q4")
# What a "value" starts with when its opening quote in fact closes a string the
# key stood in: input("Password: ") -> ')', print("token: " + t) -> ' + t)',
# "token: ".join(x) -> '.join('. A secret never starts like that. (Decided on
# the value alone, not by counting quotes on the line: redacting an earlier
# value on the line would change the count, and a second pass would then
# decide differently.)
_CODE_AFTER_QUOTE = _lazy(r"[\s)\]},;]|[+.%|&*]\s|\.[A-Za-z_][A-Za-z0-9_]*\(")
# Substrings one of which every _ASSIGN key contains: a cheap skip for the
# common text that mentions none.
_ASSIGN_WORDS = ("passw", "secret", "token", "key")
_ASSIGN_KINDS = {
    "password": "password", "passwd": "password", "secret": "secret",
    "secretkey": "secret-key", "token": "token", "apikey": "api-key",
    "accesskey": "access-key", "privatekey": "private-key",
}
# Bare values that are names in code: a digit-free identifier, or a dotted name.
_CODE_NAME = _lazy(r"[A-Za-z_]+|[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_VAR_REFERENCE = _lazy(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?")
_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_MIN_BARE = 8
# How far back the env-file check looks for the start of a key; keys are short
# and a bound keeps a megabyte-long line from making each check O(n).
_LOOKBACK = 256

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _ascii_lower(text: str) -> str:
    # str.lower() may change the length ("İ" -> "i̇"), which would shift every
    # span taken from the copy; on ASCII text it is the fast equivalent.
    if text.isascii():
        return text.lower()
    return text.translate(_ASCII_LOWER)


def _strip_private(text: str) -> str:
    """Replace each outermost ``<private>`` section by ``[private]``."""
    parts: list[str] = []
    depth = 0
    kept_from = 0
    for m in _PRIVATE_TAG.finditer(text):
        if m.group(1):
            if depth == 0:
                continue  # a closer with no opener hides nothing
            depth -= 1
            if depth == 0:
                parts.append(PRIVATE)
                kept_from = m.end()
        else:
            if depth == 0:
                parts.append(text[kept_from:m.start()])
            depth += 1
    if depth:
        parts.append(PRIVATE)  # unclosed: fail closed, hide to the end
        return "".join(parts)
    if not parts:
        return text
    parts.append(text[kept_from:])
    return "".join(parts)


def _redact_pem(text: str) -> str:
    """Replace PEM private-key blocks, and key-like text around lone markers."""
    markers = list(_PEM_MARKER.finditer(text))
    if not markers:
        return text
    # next_end[i]: index of the first END marker at or after markers[i]. Found
    # up front so that many BEGINs without an END cost one pass, not one
    # search to the end of the text each.
    next_end: list[int | None] = [None] * len(markers)
    upcoming: int | None = None
    for i in range(len(markers) - 1, -1, -1):
        if markers[i].group(1) == "END":
            upcoming = i
        next_end[i] = upcoming
    spans: list[tuple[int, int]] = []
    covered = 0  # text before this offset is already inside a span
    reversed_text: str | None = None
    i = 0
    while i < len(markers):
        m = markers[i]
        if m.start() < covered:
            i += 1
            continue
        j = next_end[i] if m.group(1) == "BEGIN" else None
        if j is not None and _PEM_BODY.fullmatch(text, m.end(), markers[j].start()):
            end = markers[j].end()
            spans.append((m.start(), end))
            covered = end
            i = j + 1
            continue
        if m.group(1) == "BEGIN":
            # No END, or not a key between: hide what looks like key material.
            body = _PEM_BODY.match(text, m.end())
            end = body.end() if body else m.end()
            spans.append((m.start(), end))
            covered = end
        else:
            # A lone END (the tail of truncated output): hide the key-like text
            # before it, scanning backwards on a reversed copy, never into a
            # span already hidden (so many lone ENDs stay linear).
            if reversed_text is None:
                reversed_text = text[::-1]
            size = len(text)
            back = _PEM_BODY.match(reversed_text, size - m.start(), size - covered)
            length = back.end() - back.start() if back else 0
            spans.append((m.start() - length, m.end()))
            covered = m.end()
        i += 1
    marker = _marker("private-key")
    parts: list[str] = []
    last = 0
    for start, end in spans:
        parts.append(text[last:start])
        parts.append(marker)
        last = end
    parts.append(text[last:])
    return "".join(parts)


def _apply_rule(text: str, kind: str, pattern: re.Pattern[str],
                check: Callable[[re.Match[str]], bool] | None) -> str:
    marker = _marker(kind)
    if check is None:
        return pattern.sub(marker, text)
    return pattern.sub(lambda m: marker if check(m) else m.group(0), text)


def _replace_spans(text: str, spans: list[tuple[int, int, str]]) -> str:
    if not spans:
        return text
    parts: list[str] = []
    last = 0
    for start, end, replacement in spans:
        parts.append(text[last:start])
        parts.append(replacement)
        last = end
    parts.append(text[last:])
    return "".join(parts)


def _redact_aws_secret(text: str, low: str) -> str:
    marker = _marker("aws-secret-key")
    return _replace_spans(text, [(m.start("val"), m.end("val"), marker)
                                 for m in _AWS_SECRET.finditer(low)])


def _redact_authorization(text: str, low: str) -> str:
    spans = []
    for m in _AUTHORIZATION.finditer(low):
        scheme = m.group("scheme")
        value = m.group("val")
        if scheme:
            kind = _AUTH_KINDS[scheme]
        elif len(value) >= _MIN_BARE and value not in _AUTH_KINDS:
            kind = "authorization"
        else:
            continue
        spans.append((m.start("val"), m.end("val"), _marker(kind)))
    return _replace_spans(text, spans)


def _redact_url_password(text: str) -> str:
    marker = _marker("url-password")

    def replace(m: re.Match[str]) -> str:
        if _MARKER.fullmatch(m.group("pw")):
            return m.group(0)  # already redacted (second pass)
        return f"://{m.group('user')}:{marker}@"

    return _URL_PASSWORD.sub(replace, text)


def _keyword_arg(text: str, key_end: int) -> bool:
    """True if the key ending at ``key_end`` follows ``(`` or ``,``: a call's argument."""
    floor = max(0, key_end - _LOOKBACK)
    i = key_end
    while i > floor and text[i - 1] in _KEY_CHARS:
        i -= 1
    while i > floor and text[i - 1].isspace():
        i -= 1
    return i > 0 and text[i - 1] in "(,"


def _literal_span(text: str, m: re.Match[str]) -> tuple[int, int] | None:
    """The span of an assignment's value to redact, or None when it looks like code."""
    for group in _QUOTED_GROUPS:
        start, end = m.span(group)
        if start >= 0:
            inner = text[start:end]
            if not inner or _MARKER.fullmatch(inner) or _VAR_REFERENCE.fullmatch(inner):
                return None
            return start, end  # the quotes stay, so the record still shows a string
    start, end = m.span("bare")
    value = text[start:end]
    if len(value) < _MIN_BARE or value[0] in "$%":
        return None  # too short to be a secret, or $VAR / %VAR% references
    after = text[end:end + 1]
    if after and after in "([{<":
        return None  # getpass(), request.headers[...]: code, not a literal
    if _CODE_NAME.fullmatch(value):
        env_style = m.group("sep") == "=" and not _keyword_arg(text, m.end("key"))
        if not env_style:
            return None  # new_password, self.token: a name in code
    return start, end


def _redact_assignments(text: str, low: str) -> str:
    spans = []
    pos = 0
    while True:
        m = _ASSIGN.search(low, pos)
        if m is None:
            break
        pos = m.end()
        quoted = next((g for g in _QUOTED_GROUPS if m.start(g) >= 0), None)
        # A quoted key ("password": "…") is JSON or a dict: its value's quote
        # opens. Otherwise the quote may close a prompt string, and then the
        # scan resumes right after it: what the match took for the value is
        # code that may hold a real assignment ('print("token: " + t); token =
        # "…"'). Linear still: such a rescan runs to the next quote only.
        if (quoted is not None and m.start("kq") < 0
                and _CODE_AFTER_QUOTE.match(text, m.start(quoted))):
            pos = m.start(quoted)
            continue
        span = _literal_span(text, m)
        if span is not None:
            key = m.group("key").replace("_", "").replace("-", "")
            spans.append((span[0], span[1], _marker(_ASSIGN_KINDS[key])))
    return _replace_spans(text, spans)


def _redact_keyed(text: str) -> str:
    """Rules keyed on a case-insensitive name: AWS secret, Authorization, assignments."""
    low = _ascii_lower(text)
    if "secret" in low and "access" in low:
        redacted = _redact_aws_secret(text, low)
        if redacted is not text:
            text, low = redacted, _ascii_lower(redacted)
    if "authorization" in low:
        redacted = _redact_authorization(text, low)
        if redacted is not text:
            text, low = redacted, _ascii_lower(redacted)
    if any(word in low for word in _ASSIGN_WORDS):
        return _redact_assignments(text, low)
    return text


@functools.lru_cache(maxsize=64)
def _compile_cached(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    compiled = []
    for pattern in patterns:
        if not pattern.strip():
            # An empty entry (from "a,,b" or a trailing separator) would match
            # between every two characters.
            continue
        try:
            compiled.append(re.compile(pattern))
        except Exception as exc:  # noqa: BLE001
            # re.error, but also OverflowError / RecursionError on pathological
            # input: a typo in MEMOIR_REDACT must never break a hook.
            log.warning("ignoring invalid MEMOIR_REDACT pattern %r: %s", pattern, exc)
    return tuple(compiled)


def compile_patterns(patterns: Sequence[str]) -> list[re.Pattern[str]]:
    """Compile user patterns (from ``MEMOIR_REDACT``), skipping invalid ones.

    An invalid regular expression is logged as a warning naming it and left
    out; this never raises. Results are cached per tuple of patterns, so a hook
    process that redacts many fields compiles them once.
    """
    if isinstance(patterns, str):
        # A lone string is a Sequence[str] too; without this, "abc" would
        # become the three patterns "a", "b", "c".
        patterns = (patterns,)
    return list(_compile_cached(tuple(patterns)))


def _redact(text: str, extra: Sequence[re.Pattern[str]]) -> str:
    if "<" in text:
        text = _strip_private(text)
    if "PRIVATE KEY" in text:
        text = _redact_pem(text)
    for kind, triggers, pattern, check in _TOKEN_RULES:
        if any(trigger in text for trigger in triggers):
            text = _apply_rule(text, kind, pattern, check)
    if "://" in text:
        # Before the assignments: in "https://token:abc@host" the URL rule
        # keeps the host, the "token:" assignment would take it with the value.
        text = _redact_url_password(text)
    text = _redact_keyed(text)
    if extra:
        custom = _marker(CUSTOM_KIND)
        for pattern in extra:
            # An empty match ("a*" at a non-"a") must insert nothing.
            text = pattern.sub(lambda m: custom if m.group(0) else "", text)
    return text


def redact_text(text: str, extra_patterns: Sequence[str] = ()) -> str:
    """Return ``text`` with private sections and secrets replaced by markers.

    See the module docstring for exactly what is replaced. ``extra_patterns``
    are additional regular expressions (``MEMOIR_REDACT``); invalid ones are
    logged and skipped. Linear in the length of the text for the built-in
    rules; idempotent.
    """
    if not text:
        return text
    return _redact(text, compile_patterns(extra_patterns) if extra_patterns else ())


_SECRET_KEY_NAMES = (
    "password", "passwd", "secret", "secretkey", "token", "apikey", "accesskey",
    "privatekey", "authorization", "cookie",
)


def _secret_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    name = key.lower().replace("-", "").replace("_", "")
    return name.endswith(_SECRET_KEY_NAMES)


class _Walker:
    """One redact_value call: the compiled patterns and the cycle/sharing state."""

    def __init__(self, extra: Sequence[re.Pattern[str]]) -> None:
        self.extra = extra
        self.active: set[int] = set()  # ids of containers on the current path
        # Results by container id: a structure that shares one sub-object many
        # times (a DAG) is walked once per object, not once per path, which
        # could be exponential.
        self.done: dict[int, object] = {}

    def walk(self, value: object, depth: int) -> object:
        if isinstance(value, str):
            return _redact(value, self.extra) if value else value
        if not isinstance(value, (dict, list, tuple)):
            return value
        if depth >= MAX_DEPTH:
            return TOO_DEEP
        ident = id(value)
        if ident in self.active:
            return CYCLE
        if ident in self.done:
            return self.done[ident]
        self.active.add(ident)
        try:
            result: object
            if isinstance(value, dict):
                result = {key: self.entry(key, item, depth) for key, item in value.items()}
            elif isinstance(value, list):
                result = [self.walk(item, depth + 1) for item in value]
            else:
                result = tuple(self.walk(item, depth + 1) for item in value)
        finally:
            self.active.discard(ident)
        self.done[ident] = result
        return result

    def entry(self, key: object, item: object, depth: int) -> object:
        if isinstance(item, str) and item and _secret_key(key):
            return _marker(str(key))
        return self.walk(item, depth + 1)


def redact_value(value: object, extra_patterns: Sequence[str] = ()) -> object:
    """Return a copy of JSON-like ``value`` with every string redacted.

    Dicts, lists and tuples are rebuilt (dict keys kept as they are); strings
    go through :func:`redact_text`; other scalars are returned unchanged. The
    non-empty string value of a key that names a secret (``password``,
    ``api_key``, ``Authorization``, ``Set-Cookie`` …) becomes
    ``"[REDACTED:<key>]"`` whatever it looks like. Containers nested deeper
    than 64 levels become ``"[too deep]"``, and a container met again inside
    itself ``"[cycle]"``, so no input can exhaust the stack.
    """
    extra = compile_patterns(extra_patterns) if extra_patterns else []
    return _Walker(extra).walk(value, 0)
