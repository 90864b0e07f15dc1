"""The memory agent: the SDK client (``client``), what it is told (``prompts``),
what it answers (``models``, parsed by ``parser``), and the summary built
without it when it is unavailable (``digest``).

Only the worker and the CLI import this package; never a hook.
"""
