"""``memoir doctor``: is claude-memoir installed, private, healthy and able to reach its agent?

Each check returns a Finding: ``ok``, ``warn`` (works, but look) or ``fail``
(something the user loses memory over), with what was seen and, for anything
not ok, the command or step that fixes it. ``--fix`` applies the safe fixes:
tightening permissions and moving a damaged database aside.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sqlite3
import stat
import subprocess
from pathlib import Path
from typing import Any, Literal

from ..config import Settings
from ..paths import agent_dir, db_path, log_dir, run_dir
from ..values import Record

Level = Literal["ok", "warn", "fail"]


class Finding(Record):
    """One check's result."""

    check: str
    level: Level
    detail: str
    fix: str = ""


def _hooks_in(path: Path) -> dict[str, list[str]]:
    """Our hook commands per event in a settings.json ({} if none or unreadable)."""
    from .install import EVENTS, is_ours

    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return {}
    found: dict[str, list[str]] = {}
    hooks = data.get("hooks") if isinstance(data, dict) else None
    if not isinstance(hooks, dict):
        return {}
    for event in EVENTS:
        for group in hooks.get(event) or []:
            for hook in (group.get("hooks") or []) if isinstance(group, dict) else []:
                if isinstance(hook, dict) and is_ours(hook):
                    found.setdefault(event, []).append(str(hook.get("command", "")))
    return found


def check_install(project_dir: Path) -> list[Finding]:
    """Hooks present for every event, each pointing at an interpreter that works."""
    from .install import EVENTS, settings_path

    findings = []
    scopes = {"user": settings_path("user"), "project": settings_path("project", project_dir)}
    if scopes["project"].resolve() == scopes["user"].resolve():
        # Run from the home directory: the project's settings file is the
        # user's own, not a second copy of the hooks.
        del scopes["project"]
    installed = {scope: _hooks_in(path) for scope, path in scopes.items()}
    present = {scope: hooks for scope, hooks in installed.items() if hooks}
    plugin = enabled_plugin(project_dir)
    if plugin is not None:
        findings += _check_plugin(*plugin)
        if present:
            # `memoir install` on top of the plugin: every event runs twice.
            findings.append(Finding(
                "install", "warn",
                f"the plugin {plugin[0]} is enabled and claude-memoir hooks are also in "
                + ", ".join(str(scopes[s]) for s in present) + ": every event runs twice",
                "keep one: `memoir uninstall"
                + (" --scope project" if "project" in present else "")
                + f"` (the plugin keeps recording), or `/plugin disable {plugin[0]}`"))
        else:
            return findings
    if not present:
        return [Finding("install", "fail",
                        f"no claude-memoir hooks in {' or '.join(map(str, scopes.values()))}, "
                        f"and the {PLUGIN_NAME} plugin is not enabled there",
                        "run `memoir install`, or install the plugin: `/plugin marketplace add "
                        f"OWNER/claude-memoir` then `/plugin install {PLUGIN_NAME}@claude-memoir`"
                        " (see README)")]
    for scope, hooks in present.items():
        missing = sorted(set(EVENTS) - set(hooks))
        if missing:
            findings.append(Finding("install", "fail",
                                    f"{scopes[scope]}: no hook for {', '.join(missing)}",
                                    f"run `memoir install --scope {scope}`"))
        doubled = sorted(e for e, cmds in hooks.items() if len(cmds) > 1)
        if doubled:
            findings.append(Finding("install", "warn",
                                    f"{scopes[scope]}: several claude-memoir hooks for "
                                    f"{', '.join(doubled)}",
                                    f"run `memoir install --scope {scope}` to keep one"))
        interpreters = set()
        prefixes: set[tuple[str, ...]] = set()
        for command in (c for cmds in hooks.values() for c in cmds):
            try:
                argv = shlex.split(command)
                interpreters.add(argv[0])
                prefixes.add(tuple(argv[:-1]))
            except (ValueError, IndexError):
                findings.append(Finding("install", "fail", f"{scopes[scope]}: hook command "
                                        f"cannot be parsed: {command[:120]!r}",
                                        f"run `memoir install --scope {scope}`"))
        working = set()
        for python in sorted(interpreters):
            finding = _check_interpreter(scopes[scope], python, scope)
            findings.append(finding)
            if finding.level == "ok":
                working.add(python)
        for prefix in sorted(p for p in prefixes if p and p[0] in working):
            findings += _probe_command(scopes[scope], list(prefix), scope)
    if len(present) == 2:
        findings.append(Finding("install", "warn",
                                "hooks installed in both user and project settings: every "
                                "event runs twice", "run `memoir uninstall --scope project`"))
    if not [f for f in findings if f.level != "ok"]:
        findings.append(Finding("install", "ok", "hooks installed for every event in "
                                + ", ".join(str(scopes[s]) for s in present)))
    return findings


def check_mcp(project_dir: Path) -> list[Finding]:
    """The MCP server registered where Claude Code reads it, with an interpreter that serves it.

    Without it Claude cannot search the memory (``search``, ``timeline``,
    ``get_observations``); the hooks alone still record and inject context.
    Reported under ``install``; silent when no hooks are installed either
    (check_install says so, and the plugin form declares its own server).
    """
    from .install import (
        MCP_SERVER_NAME,
        is_our_mcp_server,
        mcp_config_path,
        settings_path,
    )

    registered: dict[str, tuple[Path, dict[str, object]]] = {}
    for scope in ("user", "project"):
        path = mcp_config_path(scope, project_dir)
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, ValueError):
            continue
        servers = data.get("mcpServers") if isinstance(data, dict) else None
        entry = servers.get(MCP_SERVER_NAME) if isinstance(servers, dict) else None
        if is_our_mcp_server(entry):
            assert isinstance(entry, dict)
            if "${CLAUDE_PLUGIN_ROOT}" in str(entry.get("command", "")):
                continue  # a plugin checkout's own declaration, not a registration
            registered[scope] = (path, entry)
    if not registered:
        if not (_hooks_in(settings_path("user")) or _hooks_in(settings_path("project",
                                                                          project_dir))):
            return []
        return [Finding("install", "warn",
                        f"the MCP server is not registered in {mcp_config_path('user')}: "
                        "Claude cannot search the memory (search, timeline, get_observations)",
                        "run `memoir install` again")]
    findings = []
    for scope, (path, entry) in registered.items():
        command = str(entry.get("command", ""))
        try:
            done = subprocess.run([command, "-c", "import claude_memoir.recall.mcp_server"],
                                  capture_output=True, text=True, timeout=30,
                                  stdin=subprocess.DEVNULL)
            ok, reason = done.returncode == 0, (done.stderr.strip().splitlines() or ["?"])[-1]
        except (OSError, subprocess.TimeoutExpired) as e:
            ok, reason = False, str(e)
        if ok:
            findings.append(Finding("install", "ok", f"MCP server `{MCP_SERVER_NAME}` "
                                    f"registered in {path}"))
        else:
            findings.append(Finding("install", "fail", f"{path}: the MCP server's interpreter "
                                    f"{command!r} cannot serve it ({reason[:200]})",
                                    f"run `memoir install --scope {scope}` with a working "
                                    "Python"))
    return findings


#: The plugin's name in .claude-plugin/plugin.json (Claude Code reserves "claude-*").
PLUGIN_NAME = "memoir"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        return None


def enabled_plugin(project_dir: Path) -> tuple[str, Path] | None:
    """(plugin id, settings file) if claude-memoir's plugin is enabled, else None.

    Claude Code keeps ``enabledPlugins`` ({"memoir@MARKETPLACE": true}) in the
    user, project and local settings; a later scope overrides an earlier one.
    """
    from ..agent.auth import settings_files

    state: dict[str, tuple[bool, Path]] = {}
    for path in settings_files(project_dir):
        data = _read_json(path)
        plugins = data.get("enabledPlugins") if isinstance(data, dict) else None
        if not isinstance(plugins, dict):
            continue
        for plugin_id, enabled in plugins.items():
            if str(plugin_id).split("@", 1)[0] == PLUGIN_NAME:
                state[str(plugin_id)] = (enabled is True, path)
    on = [(pid, path) for pid, (enabled, path) in state.items() if enabled]
    return on[0] if on else None


def plugin_install_path(plugin_id: str) -> Path | None:
    """Where Claude Code unpacked the plugin (``plugins/installed_plugins.json``)."""
    from ..agent.auth import claude_config_dir

    data = _read_json(claude_config_dir() / "plugins" / "installed_plugins.json")
    entries = data.get("plugins", {}).get(plugin_id) if isinstance(data, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("installPath"), str):
            return Path(entry["installPath"])
    return None


def _check_plugin(plugin_id: str, settings: Path) -> list[Finding]:
    """The enabled plugin's hooks are where Claude Code will run them from."""
    root = plugin_install_path(plugin_id)
    if root is None:
        return [Finding("install", "warn", f"the plugin {plugin_id} is enabled in {settings} "
                        "but not in Claude Code's installed plugins",
                        f"`/plugin install {plugin_id}` in Claude Code")]
    runner = root / "hooks" / "memoir-hook"
    if not os.access(runner, os.X_OK):
        return [Finding("install", "fail", f"the plugin {plugin_id} is enabled but its hook "
                        f"runner {runner} is missing or not executable",
                        f"reinstall it: `/plugin uninstall {plugin_id}` then "
                        f"`/plugin install {plugin_id}`")]
    findings = [Finding("install", "ok", f"hooks come from the enabled plugin {plugin_id} "
                        f"({root})")]
    python = os.environ.get("MEMOIR_PYTHON") or shutil.which("python3")
    if python is None:
        return findings + [Finding("install", "fail", "the plugin's hooks need a `python3` on "
                                   "PATH and there is none (they answer {} and record nothing)",
                                   "install Python 3.11 or later, or set MEMOIR_PYTHON")]
    try:
        done = subprocess.run([python, "-I", "-S", "-c",
                               "import sys; print(sys.version_info >= (3, 11))"],
                              capture_output=True, text=True, timeout=20)
        modern = done.stdout.strip() == "True"
    except (OSError, subprocess.TimeoutExpired):
        modern = False
    if not modern:
        findings.append(Finding("install", "fail", f"the plugin's hooks run with {python}, which "
                                "is not a working Python 3.11 or later (they record nothing)",
                                "put a Python >= 3.11 first on PATH as python3, or set "
                                "MEMOIR_PYTHON to one"))
    return findings


def _probe_command(settings: Path, prefix: list[str], scope: str) -> list[Finding]:
    """Run an installed hook command exactly as written, with ``--probe`` as its event.

    The hook runs with -I -S and finds the package through the directory its
    command names; a package moved since ``memoir install`` (another Python,
    a recreated venv) breaks that even when the interpreter imports it fine.
    """
    try:
        done = subprocess.run([*prefix, "--probe"], capture_output=True, text=True,
                              timeout=20, stdin=subprocess.DEVNULL)
        ok = done.returncode == 0 and json.loads(done.stdout or "null") == {"probe": "ok"}
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
    except (OSError, subprocess.TimeoutExpired, ValueError) as e:
        ok, reason = False, str(e)
    if ok:
        return []
    return [Finding("install", "fail", f"{settings}: the installed hook command does not run "
                    f"({reason[:200]})", f"run `memoir install --scope {scope}` again")]


def _check_interpreter(settings: Path, python: str, scope: str) -> Finding:
    if not os.path.isabs(python):
        return Finding("install", "warn", f"{settings}: hook interpreter {python!r} is not an "
                       "absolute path (a shim may cost ~160 ms per hook)",
                       f"run `memoir install --scope {scope}` from the environment to use")
    try:
        done = subprocess.run([python, "-c", "import claude_memoir.hook"], capture_output=True,
                              text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return Finding("install", "fail", f"{settings}: hook interpreter {python} cannot run: "
                       f"{e}", f"run `memoir install --scope {scope}` with a working Python")
    if done.returncode != 0:
        return Finding("install", "fail", f"{settings}: {python} cannot import claude_memoir "
                       f"({done.stderr.strip().splitlines()[-1:] or ['?']})",
                       f"`{python} -m pip install claude-memoir`, or rerun `memoir install`")
    return Finding("install", "ok", f"{python} runs the hooks")


_PRIVATE_DIRS = ("home", "run", "logs", "agent", "spool")


def check_permissions(home: Path, fix: bool = False) -> list[Finding]:
    """Data directory and run/ 0700, database, logs, sockets, pid files 0600, all ours."""
    findings = []
    home = Path(home)
    targets: list[tuple[Path, int]] = [(home, 0o700)]
    targets += [(d, 0o700) for d in (Path(run_dir(home)), Path(log_dir(home)),
                                     Path(agent_dir(home)), home / "spool") if d.exists()]
    for pattern in ("memoir.db", "memoir.db-wal", "memoir.db-shm", "memoir.db.corrupt-*"):
        targets += [(p, 0o600) for p in home.glob(pattern)]
    for directory in (Path(run_dir(home)), Path(log_dir(home)), home / "spool"):
        if directory.exists():
            targets += [(p, 0o600) for p in directory.iterdir()
                        if p.is_file() or p.is_socket()]
    if not home.exists():
        return [Finding("permissions", "ok", f"{home} does not exist yet (created private "
                        "on first use)")]
    loose = []
    for path, wanted in targets:
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if info.st_uid != os.getuid():
            findings.append(Finding("permissions", "fail", f"{path} belongs to uid "
                                    f"{info.st_uid}, not you", f"chown {os.getuid()} {path}"))
            continue
        mode = stat.S_IMODE(info.st_mode)
        if mode & ~wanted & 0o777:
            if fix and not stat.S_ISLNK(info.st_mode):
                os.chmod(path, wanted)
            loose.append(f"{path} ({oct(mode)})")
    if loose:
        findings.append(Finding("permissions", "ok" if fix else "fail",
                                ("tightened: " if fix else "readable by others: ")
                                + "; ".join(loose[:10]) + (" …" if len(loose) > 10 else ""),
                                "" if fix else f"run `memoir doctor --fix` (or chmod -R go= "
                                f"{home})"))
    if not findings:
        findings.append(Finding("permissions", "ok", f"{home} and its files are private"))
    return findings


def check_database(home: Path, fix: bool = False) -> list[Finding]:
    """Full integrity check of memoir.db; reports quarantined copies."""
    from ..store import quarantine, store_error

    path = Path(db_path(home))
    findings = []
    aside = sorted(home.glob("memoir.db.corrupt-*[0-9]"))
    if aside:
        findings.append(Finding("database", "warn",
                                f"{len(aside)} damaged database(s) were moved aside earlier: "
                                + ", ".join(p.name for p in aside[:5]),
                                "their content can be salvaged with `sqlite3 FILE .recover`; "
                                "they are deleted after MEMOIR_KEEP_REJECTED_DAYS"))
    if not path.exists():
        return findings + [Finding("database", "ok", f"{path} does not exist yet")]
    # Read-only, straight through sqlite3: without --fix the doctor must change
    # nothing (Store.open would migrate and tighten permissions on its way in).
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=3)
        try:
            rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check").fetchall()]
            problems = [] if rows == ["ok"] else rows
            sessions = conn.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] \
                if not problems else 0
            backlog = _search_backlog(conn) if not problems else 0
        finally:
            conn.close()
    except sqlite3.Error as e:
        error = store_error(e, str(path), "checking")
        if error.reason != "corrupt":
            # Locked by another process, or unreadable: not evidence of damage,
            # and never a reason to move the user's memory aside.
            return findings + [Finding("database", "warn", f"could not check {path}: {e}",
                                       "retry when Claude Code sessions are idle; if it "
                                       f"persists, find what holds it (`fuser {path}`)")]
        problems = [str(e)]
        sessions = 0
    if problems:
        if fix:
            moved = quarantine(path)
            return findings + [Finding("database", "ok", f"damaged database moved aside to "
                                       f"{moved}; a fresh one is created on next use")]
        return findings + [Finding("database", "fail",
                                   f"{path} is damaged: {'; '.join(problems[:3])}",
                                   "run `memoir doctor --fix` to move it aside and start fresh "
                                   "(nothing is deleted)")]
    if backlog:
        findings.append(Finding("database", "warn",
                                f"{backlog} records from before the search index are not "
                                "searchable yet (they are indexed in the background)",
                                "run `memoir install` (or `memoir search`) to finish indexing"))
    return findings + [Finding("database", "ok", f"{path}: integrity ok, {sessions} session(s)")]


def _search_backlog(conn: sqlite3.Connection) -> int:
    """Rows older than the search index (migration 0004) not indexed yet; read-only."""
    try:
        marks = conn.execute("SELECT tbl, indexed_from FROM search_backfill").fetchall()
    except sqlite3.Error:
        return 0  # a store not migrated yet: its first use migrates it
    total = 0
    for table, indexed_from in marks:
        if table in ("observations", "summaries", "prompts") and indexed_from > 1:
            total += conn.execute(f"SELECT COUNT(*) FROM {table} WHERE id < ?",
                                  (indexed_from,)).fetchone()[0]
    return int(total)


def check_runtime(home: Path) -> list[Finding]:
    """Stale sockets, spooled payloads, orphaned agent processes."""
    from .. import procs, spool

    findings = []
    from ..ipc import listening

    run = Path(run_dir(home))
    sockets = sorted(run.glob("*.sock")) if run.exists() else []
    stale = [sock.name for sock in sockets if not listening(sock)]
    if stale:
        findings.append(Finding("runtime", "warn", f"{len(stale)} stale socket(s): "
                                + ", ".join(stale[:5]), "run `memoir cleanup-sessions`"))
    queued = spool.pending(home)
    if queued:
        findings.append(Finding("runtime", "warn", f"{len(queued)} payload(s) spooled while "
                                "the database was locked, not yet replayed",
                                "they are replayed by the next worker; if this persists, find "
                                f"what holds {db_path(home)} open (`fuser` or `lsof`)"))
    rejected = spool.rejected(home)
    if rejected:
        findings.append(Finding("runtime", "warn", f"{len(rejected)} spooled payload(s) could "
                                "not be replayed and were set aside: "
                                + ", ".join(p.name for p in rejected[:5]),
                                "see logs/memoir.log for why; they are deleted after "
                                "MEMOIR_KEEP_REJECTED_DAYS (`memoir cleanup-sessions` applies it)"))
    orphans = procs.orphaned_agents(home)
    if orphans:
        findings.append(Finding("runtime", "warn", f"{len(orphans)} agent process(es) without "
                                "a worker: " + ", ".join(str(p.pid) for p in orphans[:5]),
                                "run `memoir cleanup-sessions`"))
    return findings or [Finding("runtime", "ok", "no stale sockets, spool or orphans")]


def check_health(settings: Settings) -> list[Finding]:
    """What ``memoir status`` reports: agent failures, fallbacks, parked events, workers.

    Read-only, like the rest of the doctor without --fix: the database is not
    migrated or otherwise touched here.
    """
    from ..health import check_health as verdict
    from ..store import Store

    path = Path(db_path(settings.home))
    if not path.exists():
        return [Finding("health", "ok", "nothing recorded yet")]
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=3)
    except sqlite3.Error as e:
        return [Finding("health", "warn", f"cannot read {path}: {e}", "see the database check")]
    try:
        health = verdict(Store(conn, str(path)), settings)
    except sqlite3.Error as e:
        return [Finding("health", "warn", f"cannot read the health records: {e}",
                        "run any `memoir` command (it migrates the database), then retry")]
    finally:
        conn.close()
    if health.level == "healthy":
        return [Finding("health", "ok", health.headline())]
    found = []
    for reason in health.reasons:
        detail, _, fix = reason.partition("; fix: ")
        found.append(Finding("health", "fail", detail, fix))
    return found


def check_agent(settings: Settings, live: bool = False,
                project_dir: Path | None = None) -> list[Finding]:
    """The Agent SDK and its Claude Code CLI are there, runnable, and have credentials."""
    import importlib.util

    from ..agent.client import real_cli

    spec = importlib.util.find_spec("claude_agent_sdk")
    if spec is None or not spec.origin:
        return [Finding("agent", "fail", "claude-agent-sdk is not installed in "
                        "this interpreter", "`pip install claude-agent-sdk`")]
    cli = real_cli(spec.origin)
    if cli is None:
        return [Finding("agent", "fail", "no Claude Code CLI: not bundled with the SDK and "
                        "no `claude` on PATH", "reinstall claude-agent-sdk for this platform")]
    try:
        done = subprocess.run([cli, "--version"], capture_output=True, text=True, timeout=30)
        version = done.stdout.strip() or done.stderr.strip()
        ok = done.returncode == 0
    except (OSError, subprocess.TimeoutExpired) as e:
        ok, version = False, str(e)
    if not ok:
        return [Finding("agent", "fail", f"{cli} does not run: {version[:200]}",
                        "reinstall claude-agent-sdk")]
    findings = [Finding("agent", "ok", f"Claude Code CLI {version} at {cli}")]
    from ..agent.auth import find_credential

    credential = find_credential(project_dir)
    if credential.kind == "none":
        findings.append(Finding("agent", "warn", "no API key, apiKeyHelper or Claude login "
                                "found in this environment or your Claude Code settings (the "
                                "worker inherits the hook's environment, which may differ)",
                                "log in with `claude` once, export ANTHROPIC_API_KEY where "
                                "Claude Code runs, or set apiKeyHelper in "
                                "~/.claude/settings.json"))
    else:
        how = {"environment": "the environment variable", "api-key-helper": "apiKeyHelper in",
               "settings-env": "an env key in", "login": "your Claude login in"}[credential.kind]
        findings.append(Finding("agent", "ok", f"credentials: {how} {credential.source}"))
    if live:
        findings.append(_live_agent(settings))
    return findings


def _live_agent(settings: Settings) -> Finding:
    """One real round trip through the memory agent (costs a few tokens)."""
    import asyncio

    from ..agent.client import SdkAgent
    from ..errors import AgentError

    async def ask() -> str:
        agent = SdkAgent(model=settings.model, cwd=Path(agent_dir(settings.home)))
        await agent.start()
        try:
            answer = await agent.ask("Reply with the single word: ready", timeout=60)
            return answer.text
        finally:
            await agent.close()

    try:
        reply = asyncio.run(ask())
    except AgentError as e:
        from ..agent.failures import EXPLAIN, classify

        what, fix = EXPLAIN[classify(e)]
        return Finding("agent", "fail", f"the agent ({settings.model}) did not answer: {what} "
                       f"({e})", fix)
    return Finding("agent", "ok", f"the agent ({settings.model}) answered: {reply[:60]!r}")


def check_budget(settings: Settings) -> list[Finding]:
    """Today's agent spending against MEMOIR_DAILY_BUDGET_USD / _TOKENS.

    Read-only like check_health: Store.open would migrate the database and
    tighten the home's mode, which only ``--fix`` may do.
    """
    from ..budget import budget_status
    from ..store import Store

    path = Path(db_path(settings.home))
    if not path.exists():
        return [Finding("budget", "ok", "no agent usage recorded yet")]
    # Read-only like check_database: the doctor changes nothing without --fix.
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=3)
        try:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                            " AND name = 'agent_requests'").fetchone() is None:
                return [Finding("budget", "ok", "no agent usage recorded yet")]
            status = budget_status(Store(conn, str(path)), settings)
        finally:
            conn.close()
    except sqlite3.Error as e:
        return [Finding("budget", "warn", f"cannot read today's agent usage: {e}",
                        "see the database finding; the budget is checked again once the "
                        "store is readable")]
    if status.reached:
        return [Finding("budget", "warn", status.reason,
                        "raise MEMOIR_DAILY_BUDGET_USD / MEMOIR_DAILY_BUDGET_TOKENS, or wait "
                        "for tomorrow; then `memoir reprocess SESSION` replaces the fallback "
                        "summaries")]
    return [Finding("budget", "ok", status.reason)]


def run_checks(settings: Settings, project_dir: Path, *, fix: bool = False,
               live: bool = False) -> list[Finding]:
    """Every check, in the order a user would fix things."""
    home = Path(settings.home)
    return (check_install(project_dir) + check_mcp(project_dir) + check_permissions(home, fix)
            + check_database(home, fix) + check_runtime(home) + check_health(settings)
            + check_agent(settings, live, project_dir) + check_budget(settings))


def as_json(findings: list[Finding]) -> list[dict[str, str]]:
    """Findings as plain dicts for ``--json``."""
    return [{k: str(v) for k, v in f._asdict().items()} for f in findings]
