"""What the memory agent produces, as values: observations and prompt summaries.

One definition for every producer (the reply parser, the fallback digest, the
tests) and every consumer (the store), in the format of DESIGN.md ("The agent's
output format").
"""

from __future__ import annotations

from typing import Literal, get_args

from ..values import Record

ObservationType = Literal["bugfix", "feature", "refactor", "change", "discovery", "decision"]

#: The accepted values of ``ObservationType``, for validation.
OBSERVATION_TYPES: frozenset[str] = frozenset(get_args(ObservationType))
#: What an unknown or missing type becomes: the most neutral kind.
DEFAULT_OBSERVATION_TYPE: ObservationType = "change"


class Observation(Record):
    """One observation: what the agent learned from a batch of tool events."""

    type: ObservationType = DEFAULT_OBSERVATION_TYPE
    title: str = ""
    subtitle: str = ""
    facts: list[str] = []
    narrative: str = ""
    concepts: list[str] = []
    files_read: list[str] = []
    files_modified: list[str] = []


class Summary(Record):
    """The summary of one prompt's turn (the agent's, or a fallback from raw events)."""

    request: str = ""
    investigated: str = ""
    learned: str = ""
    completed: str = ""
    next_steps: str = ""
    notes: str = ""
