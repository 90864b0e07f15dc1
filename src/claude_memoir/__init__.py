"""claude-memoir: persistent memory for Claude Code.

Hooks record every session into one SQLite file, a per-session worker feeds the
events to a small Agent SDK agent that writes observations and summaries, and the
next session of the same project starts with those summaries as context.

This package's top level stays import-light: hook processes import it on every
tool call, so nothing here may pull in the Agent SDK, psutil or asyncio.
"""

__version__ = "0.1.0"
