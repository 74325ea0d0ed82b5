"""The library: a folder holding library.db, and the pipelined scan into it.

library.db is opened only through the Rust core (``phasekit._core.LibraryDb``),
never through Python's ``sqlite3``: two SQLite copies in one process do not
share locks (docs/ARCHITECTURE.md, invariant 7).
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .. import _core
from .._closing import Closing
from .._defaults import INDEX_MODES, IndexMode
from .._layout import (
    DB_NAME,
    JOBS_DB_NAME,
    JOBS_ENV,
    LIBRARY_ENV,
    default_library_path,
    is_database_url,
    library_files_folder,
)
from .._preload import import_psycopg_meanwhile
from .._private import create_private_file, make_private_dir

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..jobs import DirectRun, Job, JobControl, JobManager, JobProgress, JobStore
    from ..jobs._definition import OutputT
    from ..jobs._model import TaskRecord
    from ..jobs._tasks import Submission, TaskDefinition
    from ..jobs.postgres import PostgresJobStore
    from ..maintenance import MaintenanceJob
from .._core import CancelToken
from .._types import FsError, Kind, StrPath
from ..errors import (
    InvalidInputError,
    LibraryClosed,
    LibraryError,
    LibraryFullError,
    LocationNotFound,
    LocationOverlapError,
    TaskNotFound,
)
from ._settings import Settings
from ._steps import JobSteps
from ._types import (
    ContentIdentity,
    Entry,
    Location,
    ScanStats,
    ScanStep,
    _mode,
)

#: The Kind members by value, for entries made in the core.
_KINDS = tuple(Kind)


class Scan(Closing):
    """One scan of a location: the walk runs on a background thread while
    :meth:`step` writes batches, so walking and writing overlap.

    Call :meth:`step` until it returns None (checkpoint each step's ``state``
    to resume right after that batch), then :meth:`sweep`. Use it as a
    context manager, or :meth:`close` it, to stop the walker thread early.
    """

    __slots__ = ("_inner",)

    def __init__(self, inner: _core.Scan) -> None:
        self._inner = inner

    def step(self) -> ScanStep | None:
        """Write the next batch; None once the walk is complete."""
        raw = self._inner.step()
        if raw is None:
            return None
        entries, state, errors, stats, last_path = raw
        return ScanStep(
            entries=entries,
            state=state,
            errors=[FsError(p, e, m) for p, e, m in errors],
            stats=ScanStats(*stats),
            last_path=last_path,
        )

    def __iter__(self) -> Iterator[ScanStep]:
        while (step := self.step()) is not None:
            yield step

    def flush(self) -> None:
        """Make every step returned so far durable: call it before keeping
        a step's ``state`` when the scan was started with
        ``durable_steps=False`` (for any other scan it does nothing).
        Raises :class:`~phasekit.errors.LibraryUnavailable` when the
        library's PostgreSQL server was restarted since those steps: they
        may be lost, and the scan must be resumed from the last state
        kept."""
        self._inner.flush()

    def sweep(self) -> ScanStats:
        """After the last step: remove entries that are gone from disk."""
        return ScanStats(*self._inner.sweep())

    def aggregate(self) -> tuple[int, int]:
        """After :meth:`sweep`: set directory sizes and file counts (from what
        this scan wrote, when it saw the whole location); returns the
        location's total bytes and regular files."""
        return self._inner.aggregate()

    @property
    def stats(self) -> ScanStats:
        return ScanStats(*self._inner.stats)

    @property
    def started(self) -> float:
        """When the scan started (unix seconds)."""
        return self._inner.started

    @property
    def finished(self) -> bool:
        """True once every batch of the walk was written."""
        return self._inner.finished

    def close(self) -> None:
        """Stop the walker thread (waits a fraction of a second at most)."""
        self._inner.close()


class Library(JobSteps, Settings, Closing):
    """A library folder: ``library.db`` (locations, entries, content
    identities) and, later, ``jobs.db`` and ``sidecars/``.

    Open it with :meth:`open`; use it as a context manager or call
    :meth:`close`. Safe to share between threads.
    """

    __slots__ = (
        "_database",
        "_db",
        "_job_store",
        "_job_store_lock",
        "_jobs_location",
        "_path",
        "_roots",
        "_scratch",
    )

    def __init__(self, path: Path, db: _core.LibraryDb, jobs: str | None = None) -> None:
        self._path = path
        self._db = db
        #: Where its jobs are: a PostgreSQL URL, or None for the folder's jobs.db.
        self._jobs_location = jobs
        #: The database of a library kept in PostgreSQL (None: library.db).
        self._database: str | None = None
        self._roots: dict[int, bytes] = {}
        self._scratch = False
        #: The job store for :meth:`run`, opened on its first use, closed with the library.
        self._job_store: JobStore | PostgresJobStore | None = None
        # Guards opening it: threads sharing this library may run jobs at once.
        self._job_store_lock = threading.Lock()

    @classmethod
    def in_memory(cls) -> Library:
        """A library that lives in memory only: ephemeral indexing, nothing
        written to disk (its jobs.db goes to a temporary folder)."""
        import tempfile  # here: only an ephemeral library needs it

        folder = Path(tempfile.mkdtemp(prefix="phasekit-ephemeral-"))
        library = cls(folder, _core.LibraryDb.in_memory())
        library._scratch = True  # its folder (jobs.db) goes when it closes
        return library

    def jobs(self, **options: Any) -> JobManager:
        """A :class:`~phasekit.jobs.JobManager` on this library's jobs.db; its
        jobs get this library as ``ctx.library``. ``options`` go to JobManager
        (``max_concurrency``, ``limits``, ...). Use ``async with``."""
        from ..jobs import JobManager

        if self.closed:
            raise LibraryClosed("this library is closed: open it again to run its jobs")
        return JobManager(self.jobs_location, library=self, **options)

    def run(
        self,
        job: Job[OutputT],
        *,
        control: JobControl | None = None,
        on_progress: Callable[[JobProgress], None] | None = None,
        priority: int = 0,
        tenant: str = "default",
    ) -> DirectRun[OutputT]:
        """Run ``job`` now, in this thread, to its stop (completed, failed,
        paused or cancelled), without a manager or an event loop: for a
        script or a command that runs one job (see
        :func:`~phasekit.jobs.run_direct` for the rules, which are the
        manager's: kill the process and the next manager, or the next run of
        a job with a conflict key, resumes the job). ``control`` pauses or
        cancels it from another thread or a signal handler; ``on_progress``
        hears the progress as it is stored and the end's (see run_direct). The
        job is ``tenant``'s. The returned run reads jobs.db while this library
        is open."""
        from .._defaults import HISTORY_RETENTION_S
        from ..jobs import run_direct

        return run_direct(
            self._jobs_db("run its jobs"),
            job,
            library=self,
            control=control,
            on_progress=on_progress,
            priority=priority,
            history_retention_s=HISTORY_RETENTION_S,
            tenant=tenant,
        )

    def enqueue(self, job: Job[Any], *, priority: int = 0, tenant: str = "default") -> str:
        """Queue ``job`` for the library's workers (``phasekit worker``, or
        any manager open on it) without running it here: what a server's
        request handler does. The job is ``tenant``'s. A job with a conflict
        key joins an identical unfinished one (resumed if it was paused).
        Returns the job's id; follow it with ``phasekit jobs show``,
        :func:`~phasekit.jobs.follow_events` or a manager's
        :meth:`~phasekit.jobs.JobManager.handle`. A job holding more items
        than its type's limit is refused: :meth:`submit` splits it."""
        from ..jobs._direct import check_runnable, create_or_join
        from ..jobs._scope import split_items

        store = self._jobs_db("queue jobs")
        check_runnable(job, "Library.enqueue()")
        if len(split_items(job)) > 1:
            raise InvalidInputError(
                f"this {job.job_name} job holds more than {type(job).item_limit} items: "
                "submit() splits it into several jobs under one task"
            )
        return create_or_join(store, job, priority, tenant)

    def submit(self, job: Job[Any], *, priority: int = 0, tenant: str = "default") -> Submission:
        """:meth:`enqueue`, splitting a job that holds more items than its
        type's :attr:`~phasekit.jobs.Job.item_limit` (2,000 unless the type
        says) into several jobs under one task; the result says how many
        jobs, and whether it split."""
        from ..jobs._direct import check_runnable, create_or_join
        from ..jobs._scope import check_tenant
        from ..jobs._tasks import Submission, plan_split, split_definition, store_task

        store = self._jobs_db("queue jobs")
        check_runnable(job, "Library.submit()")
        check_tenant(tenant)
        parts = plan_split(job, None)
        if parts is None:
            return Submission([create_or_join(store, job, priority, tenant)], None, False)
        definition = split_definition(job, len(parts))
        return store_task(
            store,
            job.job_name,
            definition,
            [parts],
            tenant=tenant,
            scope=job.scope(),
            priority=priority,
        )

    def start_task(
        self,
        definition: TaskDefinition,
        *,
        location: int | StrPath | Location | None = None,
        items: list[Any] | None = None,
        priority: int = 0,
        tenant: str = "default",
    ) -> Submission:
        """Queue a task for the library's workers: its steps run one after
        the other, each once every job of the one before completed, with
        ``tenant`` and a scope: ``location`` (each step's ``location_id``),
        ``items`` (each step's items field: the ``entries`` scope) or, with
        neither, what the steps' jobs say. See
        :meth:`~phasekit.jobs.JobManager.start_task`."""
        from ..jobs._definition import default_registry
        from ..jobs._scope import check_tenant, location_scope
        from ..jobs._tasks import TaskDefinition, plan_task, store_task

        store = self._jobs_db("queue jobs")
        check_tenant(tenant)
        if not isinstance(definition, TaskDefinition):
            raise InvalidInputError(f"start_task() takes a TaskDefinition, not {definition!r}")
        scope = None if location is None else location_scope(self.location(location).id)
        task_scope, steps = plan_task(definition, default_registry, scope=scope, items=items)
        return store_task(
            store,
            definition.name,
            definition.to_dict(),
            steps,
            tenant=tenant,
            scope=task_scope,
            priority=priority,
        )

    def task(self, task_id: str, *, tenant: str = "default") -> TaskRecord:
        """A task of ``tenant``: its status, step, progress and jobs
        (:class:`~phasekit.errors.TaskNotFound` if there is none)."""
        record = self._jobs_db("read its tasks").task(task_id)
        if record.tenant != tenant:
            raise TaskNotFound(f"no task with id {task_id!r}")
        return record

    def schedule_maintenance(
        self,
        every_s: float = 86400.0,
        *,
        first_at: float | None = None,
        job: MaintenanceJob | None = None,
        priority: int = 0,
    ) -> str:
        """Make sure the library's maintenance runs every ``every_s`` seconds
        (default daily): optimize its databases, prune job history, remove
        orphaned sidecars and leftover temporary files, re-validate its
        stalest entries (see :class:`~phasekit.maintenance.MaintenanceJob`;
        ``job`` gives other settings). Queued as an interval schedule for
        the library's workers, first at ``first_at`` (unix time; default one
        interval from now), unless the library has one already: however
        many processes call this at once (every ``phasekit worker`` does as
        it starts), one schedule exists afterwards, and the one there is
        kept whatever its interval and settings (cancel it to change them).
        Returns the id of its unfinished occurrence."""
        import time

        from ..jobs._schedule import check_every
        from ..maintenance import MaintenanceJob

        check_every(every_s)
        job = MaintenanceJob() if job is None else job
        if not isinstance(job, MaintenanceJob):
            raise InvalidInputError(f"job must be a MaintenanceJob, not {job!r}")
        store = self._jobs_db("schedule its maintenance")
        first = time.time() + every_s if first_at is None else first_at
        job_id, _created = store.create_schedule_once(
            job.job_name,
            job.to_state(),
            job.conflict_key(),
            every_s,
            first_at=first,
            priority=priority,
            scope=job.scope(),
        )
        return job_id

    @property
    def jobs_location(self) -> str | Path:
        """Where the library's jobs are kept: its folder's jobs.db, or the
        PostgreSQL database given to :meth:`open` (``jobs=``, or
        ``$PHASEKIT_JOBS``), which workers on several hosts share."""
        return self._jobs_location or self.path / JOBS_DB_NAME

    def _jobs_db(self, to: str) -> JobStore | PostgresJobStore:
        """The library's job store, opened once (LibraryClosed once closed:
        ``to`` says for what)."""
        from ..jobs import open_backend

        with self._job_store_lock:
            # Under the lock: a close() in between would leave a store open.
            if self.closed:
                raise LibraryClosed(f"this library is closed: open it again to {to}")
            if self._job_store is None:
                self._job_store = open_backend(self.jobs_location)
            return self._job_store

    @classmethod
    def open(
        cls,
        path: StrPath | None = None,
        *,
        jobs: str | None = None,
        files: StrPath | None = None,
    ) -> Library:
        """Open (creating it if needed) the library at ``path``: a folder
        (``~`` is expanded) holding library.db, jobs.db and the library's
        files, or a ``postgresql://`` URL: a library whose index and jobs are
        in that database, shared by workers on several hosts, its files
        (thumbnails, scratch files) in ``files`` (default
        ``$PHASEKIT_LIBRARY_FILES``, else a per-user folder named after the
        database: give shared storage when several hosts make thumbnails).
        None means ``$PHASEKIT_LIBRARY`` or the per-user data folder.
        ``jobs``: a ``postgresql://`` URL keeping the library's jobs
        (default ``$PHASEKIT_JOBS``, else the library's own: its jobs.db, or
        its database). Raises :class:`~phasekit.errors.LibraryError` for an
        index that cannot be opened, e.g. one written by a newer phasekit or
        a database that cannot be reached
        (:class:`~phasekit.errors.LibraryFullError` if its disk is full),
        InvalidInputError for a ``jobs`` that is not a PostgreSQL URL."""
        return cls._open(path, jobs=jobs, files=files, run_jobs=True)

    @classmethod
    def _open(
        cls,
        path: StrPath | None,
        *,
        jobs: str | None = None,
        files: StrPath | None = None,
        run_jobs: bool,
    ) -> Library:
        """:meth:`open`; ``run_jobs=False`` for a caller that only reads the
        index (``phasekit ls``): a library in PostgreSQL then does not load
        the job store's client ahead (psycopg's import, ~90 ms of CPU)."""
        from ..jobs._open import is_postgres_url

        jobs = jobs or os.environ.get(JOBS_ENV) or None
        if jobs is not None and not is_postgres_url(jobs):
            raise InvalidInputError(
                f"jobs must be a postgresql:// URL (${JOBS_ENV} too), got {jobs!r}"
            )
        location = os.fsdecode(path) if path is not None else os.environ.get(LIBRARY_ENV)
        if location and is_database_url(location):
            return cls._open_database(location, jobs, files, run_jobs)
        if files is not None:
            raise InvalidInputError(
                "files= is for a library in PostgreSQL: a folder library keeps its files in"
                " its folder"
            )
        folder = Path(location).expanduser() if location else None
        folder = Path(os.path.abspath(folder or default_library_path()))
        db_path = folder / DB_NAME
        try:
            # An index of every name, size and hash on a disk is private:
            # folders made here are 0700, library.db 0600 (SQLite gives its
            # -wal and -shm files the same mode).
            make_private_dir(folder)
            create_private_file(db_path)
        except OSError as exc:
            raise LibraryError(f"cannot create {db_path}: {exc.strerror or exc}") from exc
        try:
            db = _core.LibraryDb(db_path)
        except LibraryFullError:
            raise  # names the file already, and says what to do
        except LibraryError as e:
            raise LibraryError(f"cannot open {db_path}: {e}") from e
        return cls(folder, db, jobs)

    @classmethod
    def _open_database(
        cls, url: str, jobs: str | None, files: StrPath | None, run_jobs: bool
    ) -> Library:
        """A library in the PostgreSQL database at ``url`` (see :meth:`_open`)."""
        if files is not None:
            folder = Path(os.fsdecode(files)).expanduser()
        else:
            folder = library_files_folder(url)
        folder = Path(os.path.abspath(folder))
        try:
            make_private_dir(folder)
        except OSError as exc:
            raise LibraryError(f"cannot create {folder}: {exc.strerror or exc}") from exc
        if run_jobs and (jobs is None or is_database_url(jobs)):
            import_psycopg_meanwhile()
        # Jobs in the same database: their tables are made (if new) by the
        # library's connection while psycopg loads (see the core's
        # neighbour.rs); the job store, opened later, finds them current.
        jobs_schema = _jobs_schema() if jobs is None or jobs == url else None
        # LibraryError naming the database, not the password.
        db = _core.LibraryDb.postgres(url, jobs_schema=jobs_schema)
        library = cls(folder, db, jobs or url)
        library._database = url
        return library

    @property
    def path(self) -> Path:
        """The library folder."""
        return self._path

    @property
    def closed(self) -> bool:
        return self._db.closed

    def close(self) -> None:
        """Close library.db (idempotent); an in-memory library's scratch
        folder is removed. Later calls raise
        :class:`~phasekit.errors.LibraryClosed`."""
        # Under the lock, so a run() starting meanwhile sees it closed.
        with self._job_store_lock:
            store, self._job_store = self._job_store, None
            try:
                if store is not None:
                    store.close()
            finally:
                self._db.close()
        if self._scratch:
            import shutil  # here: only an ephemeral library needs it

            shutil.rmtree(self._path, ignore_errors=True)

    def __repr__(self) -> str:
        if self._database is not None:
            from ..jobs.postgres._connect import redact

            return f"Library({redact(self._database)!r}, files={os.fspath(self._path)!r})"
        return f"Library({os.fspath(self._path)!r})"

    @property
    def database(self) -> str | None:
        """The PostgreSQL URL of a library kept in a database (None for a
        folder library)."""
        return self._database

    # locations

    def add_location(
        self,
        path: StrPath,
        *,
        mode: IndexMode = "content",
        recursive: bool = True,
        allow_nested: bool = False,
    ) -> Location:
        """Add the existing directory ``path`` (made absolute) as a location.

        A directory inside another location (or containing one) would have
        its files indexed twice, and two jobs of the two locations could run
        at once over the same files: it is refused with
        :class:`~phasekit.errors.LocationOverlapError` unless
        ``allow_nested``. Raises FileNotFoundError or NotADirectoryError for a
        bad path, :class:`~phasekit.errors.InvalidInputError` (a ValueError)
        for a bad mode or a directory that already is a location.
        """
        _mode(mode)
        root = _root_of(path, "path")
        if not os.path.exists(root):
            raise FileNotFoundError(errno.ENOENT, "no such directory", os.fsdecode(root))
        if not os.path.isdir(root):
            raise NotADirectoryError(
                errno.ENOTDIR, "a location must be a directory", os.fsdecode(root)
            )
        if not allow_nested:
            self._refuse_overlap(root)
        return Location._from_row(self._db.add_location(root, mode, recursive))

    def _refuse_overlap(self, root: bytes) -> None:
        """LocationOverlapError if ``root`` lies inside a location or holds
        one (compared by real path: a symlink does not hide an overlap)."""
        real = os.path.realpath(root)
        for location in self.locations():
            other = os.fsencode(location.path)
            other_real = os.path.realpath(other)
            if real == other_real:
                if root != other:
                    raise LocationOverlapError(
                        f"{os.fsdecode(root)} is location {location.id} ({location.path}) "
                        "under another name"
                    )
                continue  # the same path: the core says it is a location already
            if _inside(real, other_real):
                raise LocationOverlapError(
                    f"{os.fsdecode(root)} is inside location {location.id} "
                    f"({location.path}): index that location, or allow nested locations "
                    "(allow_nested=True; phasekit index --nested)"
                )
            if _inside(other_real, real):
                raise LocationOverlapError(
                    f"{os.fsdecode(root)} contains location {location.id} "
                    f"({location.path}): remove that location first, or allow nested "
                    "locations (allow_nested=True; phasekit index --nested)"
                )

    def locations(self) -> list[Location]:
        """Every location, in the order they were added."""
        return [Location._from_row(row) for row in self._db.locations()]

    def location(self, location: int | StrPath | Location) -> Location:
        """A location by id, by its root path, or afresh;
        :class:`~phasekit.errors.LocationNotFound` (a KeyError) if unknown."""
        if isinstance(location, Location):
            location = location.id
        if isinstance(location, int) and not isinstance(location, bool):
            return Location._from_row(self._db.location(location))
        root = _root_of(location, "location")
        row = self._db.location_by_path(root)
        if row is None:
            # Added under another name for the same folder (a symlink)?
            real = os.path.realpath(root)
            for known in self.locations():
                if os.path.realpath(os.fsencode(known.path)) == real:
                    return known
            raise LocationNotFound(f"no location at {os.fsdecode(root)}")
        return Location._from_row(row)

    def set_mode(self, location: int | StrPath | Location, mode: IndexMode) -> Location:
        """Change how much a location's index holds (from its next index on)."""
        loc = self.location(location)
        self._db.set_location_mode(loc.id, _mode(mode))
        return self.location(loc.id)

    def remove_location(self, location: int | StrPath | Location) -> int:
        """Forget a location and its entries; returns the number of entries removed."""
        loc = self.location(location)
        self._roots.pop(loc.id, None)
        return self._db.remove_location(loc.id)

    # entries

    def _root(self, location_id: int) -> bytes:
        root = self._roots.get(location_id)
        if root is None:
            root = self._db.location(location_id)[1]
            self._roots[location_id] = root
        return root

    def entries(
        self, location: int | StrPath | Location, *, page: int = 1000, after: int = 0
    ) -> Iterator[Entry]:
        """Every entry of a location, in id order (parents before children on
        a first index), read ``page`` rows at a time; with ``after``, those
        whose id is greater (where a listing paged by entry id goes on)."""
        if page < 1:
            raise InvalidInputError(f"page must be at least 1, got {page}")
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise InvalidInputError(f"after must be an entry id (0 or more), got {after!r}")
        loc = self.location(location)
        # Made in the Rust core (rust/py/src/entries.rs): the dataclass's
        # own __init__, per row, cost more than reading the row.
        while entries := self._db.entry_objects(loc.id, after, page, Entry, _KINDS):
            yield from entries
            after = entries[-1].id

    def entries_lines(
        self,
        location: int | StrPath | Location,
        fmt: Literal["json", "text"] = "json",
        *,
        page: int = 10_000,
    ) -> Iterator[bytes]:
        """Every entry of a location as lines of bytes, ``page`` entries per
        chunk, made in the Rust core without a Python object per entry
        (``phasekit ls``). ``json``: each line is what
        ``json.dumps(entry.to_dict())`` writes for the entry :meth:`entries`
        gives. ``text``: kind, size (a directory's total) and the path's own
        bytes, as ``phasekit ls`` prints them."""
        if fmt not in ("json", "text"):
            raise InvalidInputError(f"fmt must be 'json' or 'text', not {fmt!r}")
        if page < 1:
            raise InvalidInputError(f"page must be at least 1, got {page}")
        loc = self.location(location)
        after = 0
        while True:
            lines, after, count = self._db.entries_lines(loc.id, after, page, fmt == "json")
            if not count:
                return
            yield lines

    def entry_count(self, location: int | StrPath | Location) -> int:
        return self._db.entry_count(self.location(location).id)

    def entry(self, location: int | StrPath | Location, path: StrPath) -> Entry | None:
        """The entry at ``path`` (absolute, or relative to the location's root),
        or None if it is not indexed. :class:`~phasekit.errors.InvalidInputError`
        (a ValueError) for a path outside the root."""
        loc = self.location(location)
        root = os.fsencode(loc.path)
        raw = os.fsencode(os.fspath(path))
        if os.path.isabs(raw):
            raw = os.path.normpath(raw)
            prefix = root if root.endswith(b"/") else root + b"/"
            if not raw.startswith(prefix):
                raise InvalidInputError(f"{os.fsdecode(raw)} is not inside location {loc.path}")
            raw = raw[len(prefix) :]
        row = self._db.entry_at(loc.id, raw)
        return None if row is None else Entry._from_row(root, row)

    def entries_by_cas_id(self, cas_id: str) -> list[Entry]:
        """Entries, in every location, whose content has this cas_id (linked
        by an index in content or deep mode)."""
        return [
            Entry._from_row(self._root(row[1]), row) for row in self._db.entries_by_cas_id(cas_id)
        ]

    def content_identity(self, cas_id: str) -> ContentIdentity | None:
        row = self._db.content_identity(cas_id)
        return None if row is None else ContentIdentity(*row)

    def thumbnail(self, entry_or_cas_id: Entry | str, variant: str = "grid") -> Path | None:
        """The path of a thumbnail variant of an entry's content (or of a
        cas_id), if the thumbnail job made it and it is whole; None
        otherwise (not made yet, not an image, no content identity)."""
        from ..thumbs import thumbnail

        cas_id = entry_or_cas_id if isinstance(entry_or_cas_id, str) else entry_or_cas_id.cas_id
        return None if cas_id is None else thumbnail(self, cas_id, variant)

    # indexing

    def scan(
        self,
        location: int | StrPath | Location,
        *,
        fresh: bool | None = None,
        batch_size: int = 1000,
        threads: int | None = None,
        cas_ids: bool = False,
        checksums: bool = False,
        hidden: bool = True,
        skip: list[str] | None = None,
        resume: bytes | None = None,
        cancel: CancelToken | None = None,
        durable_steps: bool = True,
    ) -> Scan:
        """Start (or, with ``resume``, continue) a scan of a location; see :class:`Scan`.

        ``fresh`` (default: the location has no entries yet) skips the lookup
        of existing entries. A location that is not recursive is scanned one
        level deep. ``cas_ids``/``checksums`` hash files while walking.
        ``batch_size`` entries are walked per batch, each batch written in one
        transaction; a library in PostgreSQL writes the batches waiting for
        its writer together (up to 10,000 entries), one step each.

        ``durable_steps=False`` lets a library in PostgreSQL commit each step
        without waiting for the server's disk: the server writes its log
        while the next step is walked. A crash of the server (not of this
        process) may then lose the last steps written, so call
        :meth:`Scan.flush` before keeping a step's ``state`` (a checkpoint):
        it makes every step before it durable, or raises
        :class:`~phasekit.errors.LibraryUnavailable` if the server lost some
        (as does a step written after such a loss). A folder library
        ignores it.
        """
        loc = self.location(location)
        if fresh is None:
            fresh = resume is None and self._db.entry_count(loc.id) == 0
        inner = _core.Scan(
            self._db,
            loc.id,
            fresh=fresh,
            max_depth=None if loc.recursive else 1,
            hidden=hidden,
            skip=list(skip or []),
            batch_size=batch_size,
            threads=threads,
            cas_ids=cas_ids,
            checksums=checksums,
            resume=resume,
            cancel=cancel,
            durable_steps=durable_steps,
        )
        return Scan(inner)

    def index(
        self,
        location: int | StrPath | Location,
        *,
        threads: int | None = None,
        cancel: CancelToken | None = None,
    ) -> tuple[ScanStats, list[FsError]]:
        """Index a location in one go: scan, sweep, aggregate directory sizes
        and, in content or deep mode, hash what lacks a cas_id (or checksum)
        and link content identities. Returns the scan's counts and the
        problems met. Not resumable; jobs use :meth:`scan` and checkpoints."""
        loc = self.location(location)
        errors: list[FsError] = []
        # A new location is hashed while it is walked (then linked in bulk).
        fresh = self._db.entry_count(loc.id) == 0
        hash_now = fresh and loc.mode != "shallow"
        with self.scan(
            loc,
            fresh=fresh,
            threads=threads,
            cancel=cancel,
            cas_ids=hash_now,
            checksums=hash_now and loc.mode == "deep",
            # Not resumable: no step's state is kept (flushed once, below).
            durable_steps=False,
        ) as scan:
            for step in scan:
                errors.extend(step.errors)
            # Every step on disk (or LibraryUnavailable if the server lost
            # some) before the sweep and the sums build on them.
            scan.flush()
            stats = scan.sweep()
            started = scan.started
        self._db.aggregate(loc.id)
        if loc.mode != "shallow":
            after = 0
            while True:
                done = self.hash_missing(
                    loc,
                    after_id=after,
                    checksums=loc.mode == "deep",
                    threads=threads,
                    cancel=cancel,
                )
                errors.extend(done.errors)
                if done.looked_at == 0:
                    break
                after = done.last_id
        # Any mode (see IndexJob.complete): cheap when linked already.
        self._db.link_identities(loc.id, False)
        self._db.mark_indexed(loc.id, started)
        return stats, errors


def _root_of(path: object, what: str) -> bytes:
    """``path`` (str, bytes or os.PathLike) made absolute, as bytes;
    InvalidInputError for anything else (an id where a path is wanted)."""
    if not isinstance(path, str | bytes | os.PathLike):
        raise InvalidInputError(
            f"{what} must be a path (str, bytes or os.PathLike) or a location id, not {path!r}"
        )
    return os.fsencode(os.path.abspath(os.fspath(path)))


def _inside(path: bytes, folder: bytes) -> bool:
    """True if ``path`` lies strictly beneath ``folder`` (both absolute)."""
    prefix = folder if folder.endswith(b"/") else folder + b"/"
    return path.startswith(prefix)


__all__ = ["DB_NAME", "INDEX_MODES", "LIBRARY_ENV", "Library", "Scan", "default_library_path"]


def _jobs_schema() -> tuple[tuple[int, int], str, list[tuple[int, str]]]:
    """The PostgreSQL job store's migrations, as its ``migrate_tables`` runs them."""
    from ..jobs.postgres._schema import (
        LOCK_NAMESPACE,
        MIGRATE_LOCK,
        MIGRATIONS,
        VERSION_TABLE,
    )

    return (LOCK_NAMESPACE, MIGRATE_LOCK), VERSION_TABLE, sorted(MIGRATIONS.items())
