"""The maintenance job: optimize → prune → sidecars → temps → revalidate →
complete, for the whole library (one at a time: conflict key
``global:maintenance``).

- **optimize** runs ``PRAGMA optimize`` on library.db and jobs.db, and a
  VACUUM where many pages are free and the file is small enough for it to be
  short (phasekit/_sqlite_tune.py); a checkpoint after each database.
- **prune** drops the job history older than ``keep_history_s`` (finished
  jobs and their checkpoints too) and all but the newest ``keep_events``
  events.
- **sidecars** removes the thumbnail sets of contents the library no longer
  has, and thumbnails' temporary files older than ``temp_grace_s``; a
  checkpoint after each shard folder (by name).
- **temps** removes the scratch files (plans, digest caches) of jobs that
  are finished or forgotten, with the temporary files an interrupted copy
  left in its destinations, once untouched for ``temp_grace_s`` (see
  ``_files.py`` for why that is safe); a checkpoint after each file.
- **revalidate** checks the ``revalidate`` stalest entries against the disk
  with the validation code (``Library.validate_page``, as ValidateJob):
  library.db keeps no validation time per entry, so the library keeps a
  cursor (setting ``maintenance.revalidate_cursor``) that each run moves on
  from where the last one stopped, through every indexed location in turn
  and round again: the entries it reaches are those no maintenance has
  checked for longest. Issues are recorded under a run id per location
  (``<job id>.<location id>``); a checkpoint after each page.
- **complete** keeps the most severe issues as samples.

Every step is idempotent, and the phase processor records each one's end,
so a run killed anywhere resumes at the step (and the position in it) it
had reached and never redoes a finished step.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

from .._defaults import HISTORY_RETENTION_S, VALIDATION_MODES
from .._sqlite_tune import VACUUM_FREE_FRACTION, VACUUM_MAX_BYTES
from ..errors import InvalidInputError, JobNotFound, JobStoreError, LibraryError
from ..jobs import Phase, PhaseContext, PhasedJob, PhaseResult, Phases, job
from ..library._jobs import check_count, library_of
from ..thumbs._sidecars import shards, sweep_shard
from ._files import PLAN_NAME, copy_temps, job_of, older_than, scratch_files
from ._revalidate import revalidate_step, samples_of
from ._types import DatabaseReport, MaintenanceProgress, MaintenanceSummary

if TYPE_CHECKING:
    from .._defaults import ValidationMode

#: The job's name, and its conflict key: one maintenance at a time.
JOB_NAME = "phasekit.maintenance"
CONFLICT_KEY = "global:maintenance"
#: Events kept by default (as many as the job store keeps).
KEEP_EVENTS = 100_000
#: Temporary files younger than this are left (seconds; see _files.py).
TEMP_GRACE_S = 24 * 3600.0
#: Entries re-validated per run, and per page (one checkpoint each).
REVALIDATE = 1000
REVALIDATE_PAGE = 2048
#: The databases optimized, in order.
DATABASES = ("library.db", "jobs.db")
#: How often, at most, the file steps checkpoint (seconds).
CHECKPOINT_EVERY_S = 1.0


def _seconds(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise InvalidInputError(f"{field} must be a number of seconds >= 0, not {value!r}")


@job(JOB_NAME)
class MaintenanceJob(PhasedJob[MaintenanceSummary]):
    """Keep a library in shape: optimize its databases, prune old job
    history and events, remove orphaned thumbnails and leftover temporary
    files, and re-validate its stalest entries (see the module's docstring).
    Schedule it with :meth:`Library.schedule_maintenance` (every worker does,
    daily), or run it now with ``library.run(MaintenanceJob())``.

    ``keep_history_s``: finished jobs kept (default 30 days); ``keep_events``:
    events kept; ``vacuum_free_fraction`` and ``vacuum_max_bytes``: when a
    database is vacuumed; ``temp_grace_s``: how long a temporary file must
    have been left untouched before it goes; ``revalidate``: entries checked
    again per run (0: none), ``validate_mode`` how (``integrity`` recomputes
    cas_ids: rot is found), ``page`` entries per checkpoint, ``threads`` files
    read at once."""

    progress_type: ClassVar[type[Any] | None] = MaintenanceProgress
    output_type: ClassVar[type[Any] | None] = MaintenanceSummary

    keep_history_s: float = HISTORY_RETENTION_S
    keep_events: int = KEEP_EVENTS
    vacuum_free_fraction: float = VACUUM_FREE_FRACTION
    vacuum_max_bytes: int = VACUUM_MAX_BYTES
    temp_grace_s: float = TEMP_GRACE_S
    revalidate: int = REVALIDATE
    validate_mode: ValidationMode = "integrity"
    page: int = REVALIDATE_PAGE
    threads: int | None = None

    def __post_init__(self) -> None:
        _seconds("keep_history_s", self.keep_history_s)
        _seconds("temp_grace_s", self.temp_grace_s)
        for name in ("keep_events", "vacuum_max_bytes", "revalidate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInputError(f"{name} must be an int >= 0, not {value!r}")
        fraction = self.vacuum_free_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            raise InvalidInputError(f"vacuum_free_fraction must be a number, not {fraction!r}")
        if not 0 < fraction <= 1:
            raise InvalidInputError(f"vacuum_free_fraction must be in (0, 1], not {fraction!r}")
        if self.validate_mode not in VALIDATION_MODES:
            raise InvalidInputError(
                f"validate_mode must be one of {', '.join(VALIDATION_MODES)}, "
                f"not {self.validate_mode!r}"
            )
        check_count("page", self.page)
        check_count("threads", self.threads, optional=True)

    def conflict_key(self) -> str:
        """One maintenance of a library at a time, whoever started it."""
        return CONFLICT_KEY

    def phases(self) -> Phases:
        return [
            Phase("optimize", self.optimize, initial_state=lambda: {"next": 0}, weight=1),
            Phase("prune", self.prune, weight=0.5),
            Phase("sidecars", self.sidecars, initial_state=lambda: {"after": ""}, weight=1),
            Phase("temps", self.temps, initial_state=lambda: {"after": ""}, weight=0.5),
            Phase("revalidate", self.revalidate_entries, weight=5),
            Phase("complete", self.complete, weight=0.1),
        ]

    # --- helpers ---------------------------------------------------------------

    @staticmethod
    def _report(ctx: PhaseContext, done: int, total: int | None, message: str) -> None:
        """The step's progress: its units, and what it is at."""
        ctx.units(done, total)
        ctx.progress(
            done=done,
            total=total,
            message=message,
            data=MaintenanceProgress(step=ctx.phase, done=done, total=total, message=message),
        )

    @staticmethod
    def _add(ctx: PhaseContext, **counts: int) -> None:
        for name, n in counts.items():
            ctx.shared[name] = ctx.shared.get(name, 0) + n

    # --- phases ----------------------------------------------------------------

    def optimize(self, ctx: PhaseContext) -> PhaseResult:
        from ..jobs import JobStore

        library = library_of(ctx, "maintenance")
        ctx.shared.setdefault("started", time.time())
        ctx.shared.setdefault("databases", [])
        backend = ctx.job_ctx.backend
        fraction, most = self.vacuum_free_fraction, self.vacuum_max_bytes
        for i in range(ctx.state["next"], len(DATABASES)):
            name = DATABASES[i]
            self._report(ctx, i, len(DATABASES), name)
            found: dict[str, Any] | None = None
            try:
                if name == "library.db":
                    found = library.tune_db(free_fraction=fraction, max_bytes=most)
                elif isinstance(backend, JobStore):
                    found = backend.optimize(free_fraction=fraction, max_bytes=most)
                # Another job storage (not SQLite) looks after itself.
            except (LibraryError, JobStoreError) as exc:
                ctx.error(f"{name} not optimized: {exc}")
            if found is not None:
                ctx.shared["databases"].append(
                    DatabaseReport(
                        name=name,
                        bytes_before=int(found["bytes_before"]),
                        bytes_after=int(found["bytes_after"]),
                        pages=int(found["pages"]),
                        free_pages=int(found["free_pages"]),
                        vacuum=str(found["vacuum"]),
                        seconds=float(found["seconds"]),
                    )
                )
            ctx.checkpoint({"next": i + 1})
        self._report(ctx, len(DATABASES), len(DATABASES), "databases optimized")
        return None

    def prune(self, ctx: PhaseContext) -> PhaseResult:
        backend = ctx.job_ctx.backend
        self._report(ctx, 0, 2, "events")
        # Events first: pruning history prunes events too, and their count
        # would be lost in it.
        events = backend.prune_events(self.keep_events)
        self._report(ctx, 1, 2, "job history")
        history, jobs = backend.prune_history(self.keep_history_s)
        self._add(ctx, events_pruned=events, history_pruned=history, jobs_pruned=jobs)
        self._report(ctx, 2, 2, "history pruned")
        return None

    def sidecars(self, ctx: PhaseContext) -> PhaseResult:
        library = library_of(ctx, "maintenance")
        stale = older_than(self.temp_grace_s)
        # While some location's cas_ids wait for their link pass, an
        # identity not found may still be in use: only temporary files go.
        gone = None
        if library.links_pending():
            ctx.warn(
                "orphaned thumbnails were not looked for: a location's content identities "
                "are not all linked yet (an index is under way or was stopped)"
            )
        else:

            def gone(cas_id: str) -> bool:
                return library.content_identity(cas_id) is None

        todo = [s for s in shards(library.path) if s.name > ctx.state["after"]]
        saved = time.monotonic()
        for i, shard in enumerate(todo):
            self._report(ctx, i, len(todo), shard.name)
            removed, _dropped, temps = sweep_shard(shard, gone=gone, keep=None, stale=stale)
            self._add(ctx, sidecars_removed=removed, sidecar_temps_removed=temps)
            ctx.state = {"after": shard.name}
            if time.monotonic() - saved >= CHECKPOINT_EVERY_S:
                ctx.checkpoint()
                saved = time.monotonic()
        self._report(ctx, len(todo), len(todo), "sidecars tidied")
        return None

    def temps(self, ctx: PhaseContext) -> PhaseResult:
        library = library_of(ctx, "maintenance")
        backend = ctx.job_ctx.backend
        stale = older_than(self.temp_grace_s)
        todo = scratch_files(library.path, ctx.state["after"])
        for i, path in enumerate(todo):
            self._report(ctx, i, len(todo), path.name)
            job_id = job_of(path)
            try:
                unfinished = not backend.status(job_id).finished
            except JobNotFound:
                unfinished = False  # forgotten (pruned): no run of it will come
            if unfinished or not stale(path):
                # Its job may still need it, or something wrote it lately.
                self._add(ctx, temps_kept=1)
            else:
                if PLAN_NAME.match(path.name):
                    removed, kept = copy_temps(path, job_id, stale)
                    self._add(ctx, copy_temps_removed=removed, temps_kept=kept)
                path.unlink(missing_ok=True)
                self._add(ctx, scratch_removed=1)
            ctx.checkpoint({"after": path.name})
        self._report(ctx, len(todo), len(todo), "temporary files tidied")
        return None

    def revalidate_entries(self, ctx: PhaseContext) -> PhaseResult:
        library = library_of(ctx, "maintenance")
        revalidate_step(
            ctx,
            library,
            want=self.revalidate,
            mode=self.validate_mode,
            page=self.page,
            threads=self.threads,
            report=self._report,
        )
        return None

    def complete(self, ctx: PhaseContext) -> PhaseResult:
        library = library_of(ctx, "maintenance")
        runs = [(int(loc), str(run)) for loc, run in ctx.shared.get("runs") or []]
        ctx.shared["sample_rows"] = samples_of(library, runs)
        ctx.shared["seconds"] = time.time() - ctx.shared.get("started", time.time())
        return None

    def output(self, shared: dict[str, Any]) -> MaintenanceSummary:
        from ..validation import severity_counts

        by_category: dict[str, int] = dict(shared.get("by_category") or {})
        counts = (
            "history_pruned",
            "jobs_pruned",
            "events_pruned",
            "sidecars_removed",
            "sidecar_temps_removed",
            "scratch_removed",
            "copy_temps_removed",
            "temps_kept",
            "revalidated",
        )
        return MaintenanceSummary.from_mapping(
            {
                **{name: int(shared.get(name, 0)) for name in counts},
                "databases": list(shared.get("databases") or []),
                "issues": sum(by_category.values()),
                "by_severity": severity_counts(by_category),
                "by_category": by_category,
                "sample_rows": list(shared.get("sample_rows") or []),
                "runs": list(shared.get("runs") or []),
                "seconds": float(shared.get("seconds", 0.0)),
            }
        )
