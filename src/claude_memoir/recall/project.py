"""Project identity: the key that groups sessions into one project's memory.

Recording (every hook), SessionStart context and the CLI all call
:func:`project_key`, so a session is filed and found under the same key.
"""

from __future__ import annotations

import os


def project_key(path: str | os.PathLike[str]) -> str:
    """The key sessions are grouped by: the project's absolute, resolved path."""
    return os.path.realpath(os.fspath(path))
