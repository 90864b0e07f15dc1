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


class Usage(Record):
    """One agent request's usage as the Agent SDK reported it (its ResultMessage).

    The SDK splits input tokens as the Messages API does: uncached
    (``input_tokens``), read from the prompt cache and written to it.
    ``cost_total_usd`` is the CLI's running total for the agent's SDK session
    (None if it reported none); the store turns it into the request's cost.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_total_usd: float | None = None

    @classmethod
    def from_sdk(cls, usage: object, total_cost_usd: object) -> Usage:
        """Build from a ResultMessage's ``usage`` dict and ``total_cost_usd``;
        missing or malformed numbers count 0 (None for the cost)."""
        raw = usage if isinstance(usage, dict) else {}

        def count(key: str) -> int:
            value = raw.get(key)
            return int(value) if isinstance(value, (int, float)) and value > 0 else 0

        cost = (float(total_cost_usd) if isinstance(total_cost_usd, (int, float))
                and not isinstance(total_cost_usd, bool) else None)
        return cls(input_tokens=count("input_tokens"), output_tokens=count("output_tokens"),
                   cache_read_tokens=count("cache_read_input_tokens"),
                   cache_write_tokens=count("cache_creation_input_tokens"),
                   cost_total_usd=cost)


class AgentReply(Record):
    """The agent's answer to one message: its text and what the request used."""

    text: str
    usage: Usage | None = None
