"""The hook command's stable name: ``claude_memoir.hook``.

Installed ``settings.json`` files run ``python -I -S -c "...from claude_memoir.hook
import entry; entry()" EVENT`` (``python -m claude_memoir.hook EVENT`` works too),
so this name must keep working whatever the package's layout; the hot path
itself lives in :mod:`claude_memoir.hooks`.
"""

from __future__ import annotations

from .hooks.entry import entry, main

__all__ = ["entry", "main"]

if __name__ == "__main__":
    entry()
