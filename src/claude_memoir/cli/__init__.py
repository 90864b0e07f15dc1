"""The ``memoir`` command (``main``): one module per group of commands.

``main`` parses and dispatches; ``install`` wires the hooks into Claude Code's
settings; ``doctor`` checks an installation; ``sweep`` is the by-hand cleanup
behind ``memoir cleanup-sessions``.
"""
