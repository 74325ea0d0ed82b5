"""The operations the built-in jobs run on a library, as methods of
:class:`~phasekit.library.Library`: the steps of an index after its scan, the
pages of a validation, and a duplicate search's files. They take and return
the library's own types; library.db's SQL stays in the Rust core
(``rust/core/src/library/``), and the jobs never touch the connection.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from .. import _core
from .._types import FsError
from ..errors import LibraryError
from ._types import HashPass, Location

if TYPE_CHECKING:
    from pathlib import Path

    from .._core import CancelToken
    from .._defaults import ValidationMode
    from .._types import StrPath


class _Library(Protocol):
    """What these methods use of the Library they are part of."""

    _db: _core.LibraryDb

    @property
    def path(self) -> Path: ...

    def location(self, location: int | StrPath | Location) -> Location: ...


class ValidationPage(NamedTuple):
    """What one :meth:`Library.validate_page` call did."""

    #: The highest entry id checked: the next call's ``after_id``.
    last_id: int
    checked: int
    hashed: int
    bytes: int
    #: Checksums stored (complete mode, where the index had none).
    stored: int
    #: Files whose content could not be compared (no cas_id in the index).
    unverified: int
    #: Issues found, by category.
    found: dict[str, int]


class IssueRow(NamedTuple):
    """One recorded validation issue (see :meth:`Library.validation_issues`)."""

    entry_id: int
    category: str
    #: The entry's path relative to its location's root, as bytes.
    path: bytes
    detail: str


class JobSteps:
    """Library's methods for its jobs (see the module's docstring)."""

    __slots__ = ()

    # the steps of an index after the scan (what the indexer job runs)

    def aggregate(self: _Library, location: int | StrPath | Location) -> tuple[int, int]:
        """Set directory sizes and file counts, deepest first; returns the
        location's total bytes and regular files."""
        return self._db.aggregate(self.location(location).id)

    def hash_missing(
        self: _Library,
        location: int | StrPath | Location,
        *,
        after_id: int = 0,
        limit: int = 1000,
        checksums: bool = False,
        threads: int | None = None,
        cancel: CancelToken | None = None,
    ) -> HashPass:
        """Hash up to ``limit`` files (ids above ``after_id``) that have no
        cas_id (or no checksum, with ``checksums``), in parallel, and store
        the results. Continue from the returned ``last_id`` until a pass
        looks at nothing.

        New cas_ids are linked to their content identities as they are
        stored."""
        last, looked, hashed, nbytes, errors = self._db.hash_missing(
            self.location(location).id,
            after_id=after_id,
            limit=limit,
            checksums=checksums,
            threads=threads,
            cancel=cancel,
        )
        return HashPass(last, looked, hashed, nbytes, [FsError(p, e, m) for p, e, m in errors])

    def count_missing(
        self: _Library, location: int | StrPath | Location, *, checksums: bool = False
    ) -> int:
        """How many files :meth:`hash_missing` has yet to hash: non-empty
        regular files without a cas_id (or, with ``checksums``, without a
        checksum)."""
        return self._db.count_missing(self.location(location).id, checksums)

    def link_identities(
        self: _Library, location: int | StrPath | Location, *, prune: bool = False
    ) -> int:
        """Link the entries that were inserted with their cas_ids (a fresh
        content index, hashing as it walks)
        to content identities, creating new ones, and drop identities that
        lost their last entry; returns how many were created. Other changes
        are linked by the library as they are written, so after a re-index
        that found little this has almost nothing to do. ``prune`` also looks
        through the whole library for links to entries that changed or went,
        and identities nothing uses: a repair, not needed in normal use."""
        return self._db.link_identities(self.location(location).id, prune)

    def links_pending(self: _Library) -> bool:
        """Whether some location has cas_ids not linked to their content
        identities yet (a content step, or a fresh index, before its link
        pass): until then an identity without linked entries may still be in
        use, and identities noted lost are kept."""
        return self._db.links_pending()

    def defer_links(self: _Library, location: int | StrPath | Location) -> None:
        """Leave the cas_ids the location's entries get from now on to the
        next :meth:`link_identities`, which links them in one sorted pass
        (a cas_id replacing another is still linked at once): for hashing
        most of a large location, where linking each page as it is stored
        rewrites most of the lookup's pages every time."""
        self._db.defer_links(self.location(location).id)

    def carry_content(
        self: _Library,
        to: tuple[int | StrPath | Location, bytes],
        from_: tuple[int | StrPath | Location, bytes],
        placed_since: float,
    ) -> int:
        """After a copy or a move: each file under ``to`` (a location, and a
        path relative to its root; ``b""``: all of it) without a cas_id,
        placed (its ctime) at or after ``placed_since`` (unix seconds), takes
        the cas_id and checksum of the file at the same place under
        ``from_``, where size and mtime agree. Returns how many did."""
        return self._db.carry_content(
            self.location(to[0]).id,
            to[1],
            self.location(from_[0]).id,
            from_[1],
            int(placed_since * 1e9),
        )

    def mark_indexed(self: _Library, location: int | StrPath | Location, at: float) -> None:
        """Record that an index of the location finished (started at ``at``)."""
        self._db.mark_indexed(self.location(location).id, at)

    # validation (what ValidateJob runs)

    def clear_validation(self: _Library, location: int | StrPath | Location) -> int:
        """Forget the issues earlier validations of the location recorded;
        returns how many were dropped."""
        return _core.clear_validation(self._db, self.location(location).id)

    def validate_page(
        self: _Library,
        location: int | StrPath | Location,
        run_id: str,
        *,
        after_id: int = 0,
        limit: int = 2000,
        mode: ValidationMode = "basic",
        threads: int | None = None,
    ) -> ValidationPage:
        """Check up to ``limit`` entries (ids above ``after_id``) against the
        disk, in parallel, and record the issues found under ``run_id`` (a
        page checked again replaces its rows: nothing is counted twice).
        Continue from the returned ``last_id`` until a page checks nothing."""
        last, checked, hashed, nbytes, stored, unverified, found = _core.validate_page(
            self._db, self.location(location).id, run_id, after_id, limit, mode, threads
        )
        return ValidationPage(last, checked, hashed, nbytes, stored, unverified, found)

    def validation_counts(self: _Library, run_id: str) -> dict[str, int]:
        """The issues validation run ``run_id`` recorded, by category."""
        return dict(_core.validation_counts(self._db, run_id))

    def validation_issues(
        self: _Library, run_id: str, *, after: tuple[int, str] = (0, ""), limit: int = 1000
    ) -> list[IssueRow]:
        """Up to ``limit`` issues of run ``run_id`` after ``after`` (an
        ``(entry_id, category)`` pair: the last row of the page before), in
        entry order."""
        rows = _core.validation_issues(self._db, run_id, after[0], after[1], limit)
        return [IssueRow(*row) for row in rows]

    # upkeep (what MaintenanceJob runs)

    def tune_db(
        self: _Library, *, free_fraction: float, max_bytes: int, timeout_s: float = 900.0
    ) -> dict[str, Any] | None:
        """``PRAGMA optimize`` on library.db, and a VACUUM when at least
        ``free_fraction`` of its pages are free and it is at most
        ``max_bytes`` (phasekit/_sqlite_tune.py says why those bounds): what
        was found and done; None for a library in memory. It runs in a
        child process: library.db belongs to the Rust core here, and a
        second SQLite in this process would not share its locks
        (docs/ARCHITECTURE.md, invariant 7). :class:`LibraryError` if it
        could not be done (the message says why)."""
        import json
        import subprocess
        import sys

        from .. import _sqlite_tune
        from .._layout import DB_NAME

        db = self.path / DB_NAME
        if not db.exists():
            return None  # in memory: nothing on disk to tune
        options = json.dumps({"free_fraction": free_fraction, "max_bytes": max_bytes})
        # -I: the child imports nothing but the standard library, whatever
        # the environment says (PYTHONPATH, user site).
        argv: list[str | bytes] = [sys.executable, "-I", _sqlite_tune.__file__, bytes(db), options]
        try:
            done = subprocess.run(argv, capture_output=True, timeout=timeout_s, check=False)
            result = json.loads(done.stdout) if done.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
            raise LibraryError(f"cannot optimize {db}: {exc}") from exc
        if not isinstance(result, dict) or "error" in result:
            why = result["error"] if isinstance(result, dict) else _last_line(done.stderr)
            raise LibraryError(f"cannot optimize {db}: {why}")
        return result

    # duplicate search (what DupesJob runs)

    def add_to_finder(
        self: _Library,
        finder: _core.DupeFinder,
        location: int | StrPath | Location,
        *,
        hidden: bool = True,
    ) -> int:
        """Give a duplicate finder the location's regular files, with the
        sizes and digests stored for them; returns how many."""
        return finder.add_location(self._db, self.location(location).id, hidden=hidden)


def _last_line(stderr: bytes) -> str:
    """What a failed child process said last (its error, after a traceback)."""
    lines = os.fsdecode(stderr).strip().splitlines()
    return lines[-1] if lines else "the child process failed"
