"""The dupes job: collect → group_by_size → analyse → complete.

- **collect** takes the regular files of a library location (with the sizes
  and digests stored by indexing) or walks the given paths.
- **group_by_size** groups them by size (or by name and size) and drops
  sizes seen once; ``size`` and ``name_size`` modes are then done.
- **analyse** (``content`` and ``full``) hashes, one bounded page at a time,
  the cas_ids missing inside size groups and, in ``full`` mode, the full
  checksums inside cas_id groups. Each page's digests are kept before the
  page's checkpoint: in the library's entries for a location (so the next
  search or validation reuses them), in a digest file next to the library's
  jobs.db for walked paths. A resumed search reads no file it already hashed.
- **complete** builds the groups (the job's output, :class:`DupesSummary`).

Checkpoints hold only the digest file's length: the collected file list is
rebuilt on resume (walking is fast next to hashing), never stored.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, ClassVar

from .. import _core
from .._defaults import DUPLICATE_MODES, PAGE_BYTES, PAGE_FILES, DuplicateMode
from .._native import duplicate_report
from .._pacing import Pager
from .._private import create_private_file, make_private_dir
from ..errors import InvalidInputError, LeaseLostError
from ..jobs import (
    FatalError,
    JobContext,
    JobPaused,
    Phase,
    PhaseContext,
    PhasedJob,
    PhaseResult,
    Phases,
    job,
    transient,
)
from ..library import Library
from ..library._jobs import check_count, check_id, library_of, location_key, location_of
from ._types import DupesProgress, DupesSummary

#: Where each hashing stage's progress lies within the analyse phase, by
#: mode: the first 4 KiB of larger files (walked trees), then cas_ids of
#: what still shares a size, then (``full``) whole-file checksums of the
#: larger files whose cas_ids agree. A stage that has nothing to do is
#: skipped, so percent only ever jumps forward.
STAGE_SPANS: dict[str, dict[str, tuple[float, float]]] = {
    "full": {"prefix": (0.0, 0.3), "partial": (0.3, 0.75), "full": (0.75, 1.0)},
    "content": {"prefix": (0.0, 0.4), "partial": (0.4, 1.0)},
}
STAGE_LABELS = {"prefix": "first 4 KiB", "partial": "cas_ids", "full": "full checksums"}
#: Entries walked per collect step (progress and pause between steps).
WALK_STEP = 20_000
#: Non-critical errors kept in the job's record (all are counted).
ERRORS_KEPT = 1000
#: Where walked searches keep their digests, under the library folder.
SCRATCH_DIR = "scratch"


@job("phasekit.dupes")
class DupesJob(PhasedJob[DupesSummary]):
    """Find duplicate files in a library location or in any paths.

    Give either ``location_id`` (a location of the job's library: its stored
    sizes and cas_ids are used, missing digests are computed and stored) or
    ``paths`` (walked on the spot). ``mode``: ``size``, ``name_size``,
    ``content`` (same cas_id) or ``full`` (byte-exact). Filters: ``min_size``
    (default 1: empty files skipped), ``max_size``, ``extensions`` (without
    the dot, any case), ``hidden`` (False skips names starting with a dot).
    ``threads``: None walks with 8 threads (one per core where there are
    more) and reads files 16 at once (see :data:`phasekit.fs.READ_THREADS`);
    N: N threads walking and N reading.
    """

    progress_type: ClassVar[type[Any] | None] = DupesProgress
    output_type: ClassVar[type[Any] | None] = DupesSummary

    location_id: int | None = None
    paths: list[str] | None = None
    mode: DuplicateMode = "full"
    min_size: int = 1
    max_size: int | None = None
    extensions: list[str] | None = None
    hidden: bool = True
    follow_symlinks: bool = False
    threads: int | None = None
    page_files: int = PAGE_FILES
    page_bytes: int = PAGE_BYTES
    _finder: _core.DupeFinder | None = transient(default=None)
    _library: Library | None = transient(default=None)
    _job_ctx: JobContext | None = transient(default=None)
    _summary: DupesSummary | None = transient(default=None)

    def __post_init__(self) -> None:
        if (self.location_id is None) == (not self.paths):
            raise InvalidInputError("give either location_id or paths (a non-empty list), not both")
        if self.location_id is not None:
            check_id("location_id", self.location_id)
        for name in ("paths", "extensions"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, str | bytes)
                or not isinstance(value, list | tuple)
                or not all(isinstance(v, str | bytes | os.PathLike) for v in value)
            ):
                raise InvalidInputError(f"{name} must be a list of strings, not {value!r}")
        if self.mode not in DUPLICATE_MODES:
            raise InvalidInputError(
                f"mode must be one of {', '.join(DUPLICATE_MODES)}, not {self.mode!r}"
            )
        for name in ("min_size", "max_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidInputError(f"{name} must be an int, not {value!r}")
        if self.min_size < 0 or (self.max_size is not None and self.max_size < self.min_size):
            raise InvalidInputError(
                f"sizes: need 0 <= min_size <= max_size, got {self.min_size}, {self.max_size}"
            )
        check_count("threads", self.threads, optional=True)
        check_count("page_files", self.page_files)
        check_count("page_bytes", self.page_bytes)
        if self.paths:
            self.paths = [os.path.abspath(os.fsdecode(p)) for p in self.paths]

    def conflict_key(self) -> str | None:
        """A search of a location stores the digests it computes on the
        location's entries: it never runs beside an index of it. A search of
        paths is keyed by its roots, so the same search asked again (the
        command run again after Ctrl-C or a kill) joins the one left
        interrupted and reuses the digests it computed, and two identical
        searches never hash the same files side by side."""
        if self.location_id is not None:
            return location_key(self.location_id)
        import hashlib  # here: most commands never need it

        roots = b"\0".join(sorted(os.fsencode(p) for p in self.paths or ()))
        return f"paths:{hashlib.blake2b(roots, digest_size=16).hexdigest()}"

    # --- helpers ---------------------------------------------------------------

    def _lib(self, ctx: PhaseContext) -> Library:
        self._library = library_of(ctx, "the dupes job")
        return self._library

    def _hashes(self) -> bool:
        return self.mode in ("content", "full")

    @property
    def _job_id(self) -> str:
        if self._job_ctx is None:
            raise FatalError("the dupes job is not running")
        return self._job_ctx.id

    @staticmethod
    def _cache_path(library: Library, job_id: str) -> Path:
        folder = library.path / SCRATCH_DIR
        make_private_dir(folder)
        return folder / f"dupes-{job_id}.digests"

    def _report(
        self, ctx: PhaseContext, message: str, rate: float, percent: float | None = None
    ) -> None:
        s = ctx.shared
        ctx.progress(
            message=message,
            percent=percent,
            data=DupesProgress(
                phase=ctx.phase,
                files=s.get("files", 0),
                candidates=s.get("candidates", 0),
                hashed=s.get("hashed", 0),
                bytes_hashed=s.get("bytes_hashed", 0),
                errors=s.get("errors", 0),
                rate=rate,
            ),
        )

    def _new_finder(self, library: Library) -> _core.DupeFinder:
        """A finder holding a location's files, or started on a walk."""
        finder = _core.DupeFinder(
            self.mode,
            min_size=self.min_size,
            max_size=self.max_size,
            extensions=list(self.extensions or []),
            threads=self.threads,
            # A library keeps 64-bit cas_ids; a walk has the whole digest.
            exact_cas=self.location_id is None,
        )
        if self.location_id is not None:
            location_of(library, self.location_id)  # it must still exist
            library.add_to_finder(finder, self.location_id, hidden=self.hidden)
            return finder
        roots = list(self.paths or [])
        for root in roots:
            if not os.path.lexists(root):
                raise FatalError(f"{root} does not exist")
        finder.walk(
            roots, follow_symlinks=self.follow_symlinks, hidden=self.hidden, threads=self.threads
        )
        return finder

    def _collect(self, ctx: PhaseContext) -> _core.DupeFinder:
        """Collect the files to search, with progress; a pause here starts
        the walk over (nothing is kept yet)."""
        finder = self._new_finder(self._lib(ctx))
        if self.location_id is not None:
            return finder
        started = time.monotonic()
        walked = 0
        while True:
            finished, entries, files, errors = finder.walk_step(WALK_STEP)
            walked += entries
            ctx.file_errors(errors, keep=ERRORS_KEPT)
            ctx.shared["files"] = files
            self._report(ctx, f"{files:,} files", walked / max(time.monotonic() - started, 1e-9))
            if finished:
                return finder
            ctx.check_interrupt()

    def _grouped(self, library: Library, committed: int) -> _core.DupeFinder:
        """The finder after grouping. After a resume this run did not collect
        the files: collect them again (quietly: their walk errors were
        recorded the first time) and apply the digests kept so far."""
        finder = self._finder
        if finder is None:
            finder = self._new_finder(library)
            if self.location_id is None:
                while not finder.walk_step(WALK_STEP)[0]:
                    pass
        if finder.stage == "collected":
            if self.location_id is None and self._hashes():
                digests = self._cache_path(library, self._job_id)
                create_private_file(digests)  # the names and digests of a user's files
                finder.use_cache(digests, committed)
            finder.group()
        self._finder = finder
        return finder

    # --- phases ----------------------------------------------------------------

    def phases(self) -> Phases:
        return [
            # Weights: hashing dominates a search that hashes; a walk is the
            # next cost (a location's files are read from the library).
            Phase("collect", self.collect, weight=2 if self.paths else 0.5),
            Phase("group_by_size", self.group_by_size, weight=0.5),
            Phase(
                "analyse",
                self.analyse,
                when=lambda ctx: self._hashes(),
                weight=6 if self._hashes() else 0,
            ),
            Phase("complete", self.complete, weight=0.5),
        ]

    def run(self, ctx: JobContext) -> Any:
        # The output may have to be rebuilt from the library after a resume
        # that finds every phase done (see :meth:`output`).
        self._job_ctx = ctx
        try:
            return super().run(ctx)
        except (JobPaused, LeaseLostError):
            # The digest file is what the resume (or the run that took the
            # job over, which writes the same file) starts from.
            raise
        except BaseException:
            # Cancelled or failed: nothing will resume from the digest file.
            library = ctx.library
            if self.location_id is None and isinstance(library, Library):
                self._cache_path(library, ctx.id).unlink(missing_ok=True)
            raise

    def collect(self, ctx: PhaseContext) -> PhaseResult:
        ctx.shared.setdefault("started", time.time())
        self._finder = self._collect(ctx)
        return None

    def group_by_size(self, ctx: PhaseContext) -> PhaseResult:
        # Committed length 0: a new digest file (any leftover is cut off).
        finder = self._grouped(self._lib(ctx), 0)
        files, candidates, *_ = finder.stats()
        ctx.shared.update(files=files, candidates=candidates, committed=0)
        self._report(ctx, f"{candidates:,} files share a size", 0.0)
        return None

    def analyse(self, ctx: PhaseContext) -> PhaseResult:
        finder = self._grouped(self._lib(ctx), ctx.shared.get("committed", 0))
        started = time.monotonic()
        stage, done = finder.stage, 0
        total = finder.remaining()[0]
        # Pages of ~0.2 s (a cold disk reads far fewer files in that time than
        # a warm cache), at most page_files.
        pager = Pager(min(self.page_files, 1024), least=1, most=self.page_files)
        while finder.stage != "done":
            if finder.stage != stage:  # the next stage (see STAGE_SPANS)
                stage, done, total = finder.stage, 0, finder.remaining()[0]
                started = time.monotonic()  # the rate is the stage's own
            began = time.monotonic()
            hashed, nbytes, errors, stored = finder.hash_page(pager.size, self.page_bytes)
            pager.measured(hashed + len(errors), time.monotonic() - began)
            ctx.file_errors(errors, keep=ERRORS_KEPT)
            done += hashed + len(errors)
            s = ctx.shared
            s["hashed"] = s.get("hashed", 0) + hashed
            s["bytes_hashed"] = s.get("bytes_hashed", 0) + nbytes
            if self.location_id is None:
                s["committed"] = stored  # the digest file's length
            ctx.add_items(hashed, nbytes=nbytes)
            ctx.units(done, total)
            label = STAGE_LABELS.get(stage, stage)
            rate = done / max(time.monotonic() - started, 1e-9)
            share = done / total if total else 1.0
            low, high = STAGE_SPANS.get(self.mode, {}).get(stage, (0.0, 1.0))
            within = low + (high - low) * share
            self._report(ctx, f"{label}: {done:,} of {total:,}", rate, percent=100 * within)
            # After every page: its digests are kept already, so a resume
            # from here hashes none of them again.
            ctx.checkpoint()
        return None

    def complete(self, ctx: PhaseContext) -> PhaseResult:
        library = self._lib(ctx)
        self._summary = self._summarise(library, ctx.shared)
        if self.location_id is not None and self._hashes():
            # The cas_ids this search stored are linked as they were written,
            # unless the location waits for a link pass (a content step
            # stopped before its own): run it (cheap when nothing waits).
            library.link_identities(self.location_id)
        return None

    def _summarise(self, library: Library, shared: dict[str, Any]) -> DupesSummary:
        finder = self._grouped(library, shared.get("committed", 0))
        while finder.stage != "done":
            # Resumed after the analyse phase: the finder was rebuilt, and
            # its pages take every digest from the library or the digest
            # file (nothing is read again).
            finder.hash_page(self.page_files, self.page_bytes)
        files, candidates, _, _, reused = finder.stats()
        report = duplicate_report(self.mode, finder.report())
        self._finder = None
        if self.location_id is None and self._hashes():
            self._cache_path(library, self._job_id).unlink(missing_ok=True)
        roots = list(self.paths or [])
        if self.location_id is not None:
            roots = [library.location(self.location_id).path]
        return DupesSummary(
            mode=self.mode,
            roots=roots,
            location_id=self.location_id,
            groups=report.groups,
            links=report.links,
            wasted=report.wasted,
            files=files,
            size_candidates=candidates,
            hashed=shared.get("hashed", 0),
            reused=reused,
            errors=shared.get("errors", 0),
            seconds=time.time() - shared.get("started", time.time()),
        )

    def output(self, shared: dict[str, Any]) -> DupesSummary:
        summary = self._summary
        if summary is None:
            # Resumed after its last phase, before the job's end was stored.
            ctx = self._job_ctx
            if ctx is None or not isinstance(ctx.library, Library):
                raise FatalError("the dupes job needs a library: run it through Library.jobs()")
            summary = self._summarise(ctx.library, shared)
        self._summary = None
        return summary
