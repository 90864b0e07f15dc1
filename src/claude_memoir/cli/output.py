"""How commands print: JSON for scripts, and output that survives a closed pipe."""

from __future__ import annotations

import json
from typing import Any


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON (UTF-8 kept readable, unknown types as str)."""
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))
