"""The per-session worker: ``python -m claude_memoir.worker --session ID``.

Light modules first, so a worker listens ~30 ms after it is spawned: ``entry``
(process entry), ``lock`` (one worker per session), ``listener`` (the socket).
Then, once it listens: ``service`` (the loop and its watchdogs), ``server``
(requests on the socket), ``conversation`` (the memory agent's conversation),
``pipeline`` (events → observations, prompts → summaries), ``reaper`` (ends a
worker that stopped answering).

This file stays empty of imports: ``python -m claude_memoir.worker`` and the
hooks' reaper import it first.
"""
