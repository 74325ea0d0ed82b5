"""``phasekit serve``: the library's jobs, live, in a browser.

Serves a dashboard (jobs, their phases, progress, checkpoints and timing,
history, tasks, workers, locations with their thumbnails, duplicates; pause,
resume, cancel, retry, one job or many, index) and the JSON API it uses,
under /api/ (the shapes of ``--json``; described at /api/openapi.json). It
reads and writes the library's job store only: the jobs run in ``phasekit
worker`` processes (or any command that runs them).
"""

from __future__ import annotations

import argparse
import os
import sys

from ._common import positive_int
from ._exits import EXIT_OK, EXIT_USAGE

#: The environment variable holding the server's tokens (``TOKEN`` or
#: ``TENANT=TOKEN``, either after ``ro:`` to read only; several separated by
#: commas or spaces).
TOKEN_ENV = "PHASEKIT_SERVE_TOKEN"

#: The command's name, its line in ``phasekit --help``, and its ``--help``
#: text (see phasekit/cli/__init__.py).
NAME = "serve"
HELP = "a live web dashboard of the library's jobs"
DESCRIPTION = __doc__.splitlines()[0] if __doc__ else None
EPILOG = (
    "Binds to 127.0.0.1 by default. Any other address needs a token (--token or "
    f"${TOKEN_ENV}): TOKEN sees every tenant's jobs, TENANT=TOKEN one tenant's; "
    "ro:TOKEN or ro:TENANT=TOKEN sees the same but may only read (every action is refused "
    "with 403; the page shows no action buttons). Locations and their thumbnails are the "
    "library's: every token sees them. A browser logs in with a token at /login; a script "
    "sends 'Authorization: Bearer TOKEN'. Needs the serve extra: pip install "
    "'phasekit[serve]'."
)


def _port(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535, not {value}")
    return value


def arguments(p: argparse.ArgumentParser) -> None:
    # Also after the command word (phasekit serve --library DIR); the
    # suppressed default leaves the one given before it alone.
    p.add_argument("--library", metavar="DIR|URL", default=argparse.SUPPRESS,
                   help="the library (as phasekit --library)")  # fmt: skip
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")  # fmt: skip
    p.add_argument("--port", type=_port, default=8765, help="port (default 8765)")
    p.add_argument("--token", action="append", default=[], metavar="[ro:][TENANT=]TOKEN",
                   help=f"a token the server accepts (repeatable; default ${TOKEN_ENV}); "
                   "TENANT=TOKEN sees and acts on that tenant's jobs only; with ro: it "
                   "only reads")  # fmt: skip


def token_specs(args: argparse.Namespace) -> list[str]:
    """The token specs of ``--token``, else of ``$PHASEKIT_SERVE_TOKEN``."""
    if args.token:
        return list(args.token)
    return os.environ.get(TOKEN_ENV, "").replace(",", " ").split()


def run(args: argparse.Namespace) -> int:
    from ..errors import InvalidInputError

    try:
        from ..serve import create_app, parse_tokens
        from ..serve._auth import is_loopback
        from ..serve._server import Server
    except ImportError as exc:
        print(f"phasekit: error: phasekit serve needs the serve extra ({exc}): "
              "pip install 'phasekit[serve]'", file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    tokens = parse_tokens(token_specs(args))
    if not tokens and not is_loopback(args.host):
        raise InvalidInputError(
            f"--host {args.host} is reachable from other machines: give a token "
            f"(--token, or ${TOKEN_ENV}), or bind to 127.0.0.1"
        )
    app = create_app(args.library, tokens=tokens, host=args.host)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"phasekit: serving {args.library or 'the default library'} at "
          f"http://{shown}:{args.port}/ (Ctrl-C stops)", file=sys.stderr)  # fmt: skip
    Server(app, args.host, args.port).run()
    return EXIT_OK
