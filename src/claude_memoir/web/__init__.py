"""The local web viewer (``memoir ui``): Starlette + uvicorn, an optional extra.

``auth`` guards every request (token, loopback Host, same-origin writes),
``app`` holds the pages, the change endpoints and the live stream,
``features`` adapts search, the health verdict and usage, ``server`` runs it.
Nothing here is imported by hooks or the worker.
"""
