"""The phasekit command line: resumable file jobs over a library of indexed folders.

phasekit index PATH indexes a tree into the library (resumable: Ctrl-C
pauses, phasekit resume goes on); phasekit ls PATH lists what was indexed;
phasekit dupes PATH finds duplicate files; phasekit validate PATH checks an
indexed tree against the disk; phasekit copy, move and delete handle files
as resumable jobs; phasekit jobs lists and steers the library's
jobs. phasekit scan PATH [--hash] walks a tree without a library and prints
counts (with --hash, cas_ids and a duplicate summary). --json prints
machine-readable output.
"""

from __future__ import annotations

import argparse
import os
import sys

from .._layout import (
    JOBS_ENV,
    LIBRARY_ENV,
    LIBRARY_FILES_ENV,
    READ_THREADS_ENV,
    is_database_url,
)
from . import (
    copy,
    delete,
    dupes,
    events,
    index,
    jobs,
    ls,
    maintenance,
    move,
    resume,
    scan,
    serve,
    tasks,
    thumbs,
    validate,
    worker,
)
from ._exits import EXIT_INTERRUPTED, EXIT_STOPPED, EXIT_USAGE

# typing.TYPE_CHECKING without importing typing: `phasekit --version` and
# `--help` load only argparse and this package's parsers, so they start in
# about twice the interpreter's own start-up (benches/startup.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn

#: Every command, in the order ``--help`` lists them. Each is a module with
#: the same parts: ``NAME``, ``HELP`` (its line in ``phasekit --help``),
#: ``DESCRIPTION`` and ``EPILOG`` (of its own ``--help``), ``arguments(parser)``
#: and ``run(args)``. A module's top level imports only what its parser needs;
#: ``run`` imports the rest, so a command loads only what it uses.
COMMANDS = (
    index,
    ls,
    jobs,
    resume,
    worker,
    tasks,
    events,
    dupes,
    validate,
    copy,
    move,
    delete,
    thumbs,
    maintenance,
    scan,
    serve,
)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line's parser. With ``command``, only that command's
    arguments are added (the others are listed by name, which is all that
    parsing a command line for ``command`` or ``--help`` needs): each
    command's arguments cost a little start-up time."""
    parser = argparse.ArgumentParser(
        prog="phasekit", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--version", action=_Version, help="show the version and exit")
    parser.add_argument(
        "--library",
        metavar="DIR|URL",
        default=None,
        help=f"the library: a folder, or a postgresql:// URL shared by workers on several hosts"
        f" (default: ${LIBRARY_ENV}, else a per-user data folder)",
    )
    parser.add_argument(
        "--files",
        metavar="DIR",
        default=None,
        help=f"where a library in PostgreSQL keeps its files (thumbnails, scratch files;"
        f" default: ${LIBRARY_FILES_ENV}, else a per-user folder named after the database)",
    )
    parser.add_argument(
        "--jobs",
        metavar="URL",
        default=None,
        help=f"a postgresql:// URL keeping the library's jobs, shared by workers on several"
        f" hosts (default: ${JOBS_ENV}, else the library's jobs.db)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        sub = commands.add_parser(
            module.NAME, help=module.HELP, description=module.DESCRIPTION, epilog=module.EPILOG
        )
        sub.set_defaults(run=module.run)
        if command is None or command == module.NAME:
            module.arguments(sub)
    return parser


#: Commands that never open a job store (`ls` reads the index only, `scan`
#: no library at all).
_NO_JOB_STORE = frozenset({ls.NAME, scan.NAME})


def _jobs_in_postgres(args: argparse.Namespace) -> bool:
    """Whether the command's jobs are kept in PostgreSQL: ``--jobs`` or
    ``$PHASEKIT_JOBS``, else the library's own database when ``--library``
    (or ``$PHASEKIT_LIBRARY``) is a ``postgresql://`` URL."""
    jobs = os.environ.get(JOBS_ENV)
    if jobs:
        return is_database_url(jobs)
    library: str | None = args.library or os.environ.get(LIBRARY_ENV)
    return library is not None and is_database_url(library)


def _command_in(argv: Sequence[str]) -> str | None:
    """The command word of a command line: its first word that is neither an
    option nor the value of ``--library`` (or of an abbreviation of it, which
    argparse accepts: ``--lib DIR``); "" if there is none, None (build every
    command) if that word is not a command."""
    words = iter(argv)
    for word in words:
        if (
            len(word) > 2
            and "=" not in word
            and any(option.startswith(word) for option in ("--library", "--jobs", "--files"))
        ):
            next(words, None)
        elif not word.startswith("-"):
            return word if word in {module.NAME for module in COMMANDS} else None
    return ""


class _Version(argparse.Action):
    """``--version``: the version is read from the Rust core only when asked
    for (loading the extension is most of a bare start-up)."""

    def __init__(self, option_strings: Sequence[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from .. import __version__

        sys.stdout.write(f"phasekit {__version__}\n")
        parser.exit()


def main(argv: Sequence[str] | None = None) -> int:
    _paths_as_bytes()
    # The command line multiplies no matrices, but numpy (the walk's batches
    # are arrays) starts one OpenBLAS thread per core on import, and those
    # spin for a while: CPU taken from the reads (a profile of a cold
    # `phasekit scan --hash` showed 2.5% of it in blas_thread_server).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if READ_THREADS_ENV in os.environ:
        # Said before any job starts, not as a failed job's error.
        from .._core import read_threads

        try:
            read_threads()
        except ValueError as exc:
            print(f"phasekit: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_in(words))
    args = parser.parse_args(words)
    if args.files:
        # As $PHASEKIT_LIBRARY_FILES: for every library this command opens.
        os.environ[LIBRARY_FILES_ENV] = args.files
    if args.jobs:
        # Every library this command opens (and every process it starts)
        # keeps its jobs there, as with $PHASEKIT_JOBS.
        os.environ[JOBS_ENV] = args.jobs
    if args.command not in _NO_JOB_STORE and _jobs_in_postgres(args):
        # Loads while the command imports its own modules and opens the
        # library: a `phasekit index` into PostgreSQL began its walk ~20 ms
        # sooner than with the import started by the library's open.
        from .._preload import import_psycopg_meanwhile

        import_psycopg_meanwhile()
    # The errors a command raises, imported here: --version and --help
    # never load them (phasekit.errors imports nothing heavy, but every
    # module counts at start-up).
    from ..errors import (
        JobStoreUnavailable,
        LibraryUnavailable,
        PhasekitError,
        StorageFullError,
    )

    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        print("phasekit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`phasekit ls ... | head`): not an error. Point
        # stdout at /dev/null so the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except StorageFullError as exc:
        # The job (if one ran) is left interrupted; the message says what to do.
        print(f"phasekit: error: {exc}", file=sys.stderr)
        return EXIT_STOPPED
    except (JobStoreUnavailable, LibraryUnavailable) as exc:
        # A server away for now (restarting): a job it cut is left to resume.
        print(f"phasekit: error: {exc}", file=sys.stderr)
        print("phasekit: if a job was running, it resumes from its last checkpoint with:"
              " phasekit resume (once the server answers)", file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    except (ValueError, OSError, PhasekitError) as exc:
        print(f"phasekit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyError as exc:
        print(f"phasekit: error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return EXIT_USAGE
    return code


def run() -> NoReturn:
    """The command line's entry point (``phasekit``, ``python -m phasekit``):
    :func:`main`, then exit with its status.

    Before exiting, every object the command made is frozen out of the
    garbage collector (``gc.freeze``): the interpreter's last collections,
    as it finalises, would otherwise walk all of them (psycopg's modules
    alone: ~20 ms of a command's ~1 s). Nothing left needs them: the command
    closed its libraries and job stores, and the interpreter flushes the
    standard streams itself. Not done by :func:`main`, which a caller may
    run in a process that goes on (the tests do)."""
    code = main()
    import gc

    gc.freeze()
    sys.exit(code)


def _paths_as_bytes() -> None:
    """Print paths as their exact bytes: a name that is not UTF-8 reaches
    Python with surrogate escapes (os.fsdecode), which a strict stdout would
    refuse; written back with the same handler, it comes out as it is on disk
    (as ls and find print it). JSON output escapes such characters itself."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", None) == "strict":
            reconfigure(errors="surrogateescape")


if __name__ == "__main__":
    run()
