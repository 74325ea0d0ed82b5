"""The web dashboard (``phasekit serve``): a library's jobs, live, in a
browser, over a JSON API under ``/api/`` whose shapes are the command
line's ``--json`` ones (described at ``/api/openapi.json``) and an event
stream (``/api/events``) fed by the library's cross-process event log.

Tokens (``--token`` / ``$PHASEKIT_SERVE_TOKEN``): ``TOKEN`` for every
tenant, ``TENANT=TOKEN`` for one; ``ro:TOKEN`` / ``ro:TENANT=TOKEN`` may
only read (its actions get 403; the page offers none). See ``_auth.py``.

Needs the ``serve`` extra: ``pip install 'phasekit[serve]'`` (Starlette and
uvicorn). :func:`create_app` builds the ASGI app for any ASGI server.
"""

from __future__ import annotations

from ._app import create_app
from ._auth import parse_tokens

__all__ = ["create_app", "parse_tokens"]
