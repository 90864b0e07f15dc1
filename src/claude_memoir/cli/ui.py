"""``memoir ui``: the local web viewer."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys

from ..errors import InvalidInput

#: What the viewer needs beyond the core install.
UI_MODULES = ("starlette", "uvicorn", "jinja2")
INSTALL_HINT = "pip install 'claude-memoir[ui]'"


def missing_modules() -> list[str]:
    """The viewer's dependencies that are not installed."""
    return [m for m in UI_MODULES if importlib.util.find_spec(m) is None]


def cmd_ui(args: argparse.Namespace) -> int:
    """Serve the viewer on 127.0.0.1 and print its URL (with the token) first."""
    missing = missing_modules()
    if missing:
        print(f"memoir ui needs {', '.join(missing)}, which the viewer's optional extra "
              f"installs: {INSTALL_HINT}", file=sys.stderr)
        return 1
    if not 0 <= args.port <= 65535:
        raise InvalidInput(f"--port must be 0-65535, not {args.port}", reason="bad-port")
    from ..config import load_settings
    from ..store import Store
    from ..web.server import HOST, bind, new_token, serve

    home = load_settings().home
    Store.open(home).close()  # create/migrate now: a broken store fails here, not per page
    try:
        sock = bind(args.port)
    except OSError as e:
        print(f"memoir: cannot listen on {HOST}:{args.port}: {e.strerror}", file=sys.stderr)
        return 1
    token = new_token()
    url = f"http://{HOST}:{sock.getsockname()[1]}/?token={token}"
    print(url, flush=True)
    print("serving the viewer on 127.0.0.1 only; Ctrl-C stops it", flush=True)
    if not args.no_open:
        import webbrowser

        webbrowser.open(url)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it stops
        serve(home, sock, token)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ui``."""
    text = "serve the local web viewer on 127.0.0.1"
    p = sub.add_parser("ui", help=text, description=text + f" (needs: {INSTALL_HINT})")
    p.add_argument("--port", type=int, default=0,
                   help="port to listen on (default: any free port)")
    p.add_argument("--no-open", action="store_true", help="do not open a browser")
    p.set_defaults(func=cmd_ui)
