"""The indexer job: discovery → processing → aggregation → content → complete.

- **discovery** walks the location on a background thread while each batch is
  written to library.db in one transaction (walking, hashing and writing
  overlap; see :class:`phasekit.library.Scan`). Its checkpoint is the walk's
  frontier right after the last batch written: a few KB however big the tree
  (docs/ARCHITECTURE.md, invariant 2), taken at least every :data:`CHECKPOINT_EVERY_S`.
- **processing** finishes what discovery wrote: entries the scan did not see
  and that are gone from disk are deleted (a deleted subtree with them), and
  a moved file keeps its content identity.
- **aggregation** sums directory sizes and file counts, deepest first.
- **content** (content and deep modes) hashes the files that still lack a
  cas_id (or checksum), a page at a time, then links content identities.
- **complete** records when the location was indexed; in deep mode it
  queues the thumbnail job (phasekit.thumbs) as a child.

Every write is idempotent (an entry is keyed by its path), so a resumed run
that redoes the batches after its last checkpoint changes nothing.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from .._defaults import CHECKPOINT_EVERY_S
from .._json import json_ready
from .._pacing import Pager
from ..errors import InvalidInputError, LeaseLostError
from ..jobs import (
    FatalError,
    Phase,
    PhaseContext,
    PhasedJob,
    PhaseResult,
    Phases,
    job,
    transient,
)
from ..library import INDEX_MODES, Library, Location, Scan, ScanStats
from ..library._jobs import check_count, check_id, library_of, location_key, location_of

#: Files hashed in the first content step (one transaction, one checkpoint);
#: later steps are sized to take ~0.2 s each (see phasekit._pacing).
CONTENT_PAGE = 2000
CONTENT_PAGE_MAX = 32_768
#: Non-critical errors kept in the job's record (all are counted).
ERRORS_KEPT = 1000
#: Files left to hash from which their content identities are linked once,
#: at the end of the content step, rather than page by page: measured on a
#: location of 1,000,000 files switched to content mode (benches/scale.py).
DEFER_LINKS_FROM = 50_000


@dataclass
class IndexProgress:
    """The indexer's structured progress (``JobProgress.data``)."""

    phase: str
    current_path: str
    files: int
    dirs: int
    bytes: int
    errors: int
    #: Entries per second in discovery, files per second in content.
    rate: float


@dataclass
class IndexSummary:
    """The indexer's output."""

    location_id: int
    path: str
    mode: str
    files: int
    dirs: int
    symlinks: int
    other: int
    bytes: int
    new: int
    modified: int
    unchanged: int
    moved: int
    deleted: int
    #: Files hashed: while walked (a new location) or in the content phase.
    hashed: int
    errors: int
    total_size: int
    file_count: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready values (``phasekit index --json``)."""
        return json_ready(self)  # type: ignore[no-any-return]


_COUNTS = ("files", "dirs", "symlinks", "other", "bytes", "new", "modified", "unchanged")
#: Scan counts kept under another name in ``shared`` (files hashed while walked).
_WALK_HASHED = "walk_hashed"


@job("phasekit.index")
class IndexJob(PhasedJob[IndexSummary]):
    """Index one location of the job's library (``ctx.library``).

    ``mode`` (None: the location's own) is ``shallow``, ``content`` or
    ``deep``; ``threads`` (None: the walk 8 threads, or one per core where
    there are more, and files read 16 at once, see
    :data:`phasekit.fs.READ_THREADS`; N: N threads walking and N reading),
    ``batch_size`` (entries per walker batch and transaction; a library in
    PostgreSQL writes the batches waiting for it together, up to 10,000
    entries per transaction) and ``checkpoint_every_s`` tune it. Two indexes
    (or an index and a validation) of one location never run at the same
    time, and dispatching an index identical to one already queued
    or running returns that one (see :meth:`conflict_key`).
    """

    progress_type: ClassVar[type[Any] | None] = IndexProgress
    output_type: ClassVar[type[Any] | None] = IndexSummary

    location_id: int
    #: None: the location's own mode.
    mode: str | None = None
    threads: int | None = None
    batch_size: int = 1000
    checkpoint_every_s: float = CHECKPOINT_EVERY_S
    _scan: Scan | None = transient(default=None)
    _library: Library | None = transient(default=None)

    def __post_init__(self) -> None:
        check_id("location_id", self.location_id)
        if self.mode is not None and self.mode not in INDEX_MODES:
            raise InvalidInputError(
                f"mode must be one of {', '.join(INDEX_MODES)} (or None: the location's "
                f"own), not {self.mode!r}"
            )
        check_count("threads", self.threads, optional=True)
        check_count("batch_size", self.batch_size)
        if isinstance(self.checkpoint_every_s, bool) or not (
            isinstance(self.checkpoint_every_s, int | float)
            and math.isfinite(self.checkpoint_every_s)
            and self.checkpoint_every_s > 0
        ):
            raise InvalidInputError(
                f"checkpoint_every_s must be a number of seconds > 0, "
                f"not {self.checkpoint_every_s!r}"
            )

    def conflict_key(self) -> str:
        return location_key(self.location_id)

    # --- helpers ---------------------------------------------------------------

    def _lib(self, ctx: PhaseContext) -> Library:
        self._library = library_of(ctx, "the indexer")
        return self._library

    def _location(self, ctx: PhaseContext) -> Location:
        return location_of(self._lib(ctx), self.location_id)

    def _mode(self, ctx: PhaseContext) -> str:
        return self.mode or self._location(ctx).mode

    def _report(
        self,
        ctx: PhaseContext,
        path: str,
        rate: float,
        done: int | None = None,
        total: int | None = None,
    ) -> None:
        """Progress: where the work is, counts so far, and, when the size of
        the work is known (a re-index expects the entries it had), a count
        with percent and ETA; otherwise it is indeterminate."""
        s = ctx.shared
        ctx.progress(
            done=done,
            total=total,
            message=path,
            data=IndexProgress(
                phase=ctx.phase,
                current_path=path,
                files=s.get("files", 0),
                dirs=s.get("dirs", 0),
                bytes=s.get("bytes", 0),
                errors=s.get("errors", 0),
                rate=rate,
            ),
        )

    # --- phases ----------------------------------------------------------------

    def phases(self) -> Phases:
        # Weights: the share of an index's time each phase takes on the
        # benchmark tree (walking and writing dominate; a new location is
        # hashed while it is walked, a re-index hashes what changed after).
        return [
            Phase("discovery", self.discover, initial_state=lambda: {"walk": None}, weight=10),
            Phase("processing", self.process, weight=0.5),
            Phase("aggregation", self.aggregate, weight=0.5),
            Phase(
                "content",
                self.content,
                when=lambda ctx: self._mode(ctx) != "shallow",
                initial_state=lambda: {"after": 0},
                weight=lambda ctx: 0.0 if self._mode(ctx) == "shallow" else 3.0,
            ),
            Phase("complete", self.complete, weight=0.1),
        ]

    def discover(self, ctx: PhaseContext) -> PhaseResult:
        library, location = self._lib(ctx), self._location(ctx)
        if not os.path.isdir(location.path):
            # Walking a missing root finds nothing, and the sweep would then
            # remove every entry: stop before anything changes.
            raise FatalError(
                f"location {location.id}: {location.path} is missing or not a directory "
                "(renamed, or its drive unmounted?); the index was left as it was"
            )
        mode = self._mode(ctx)
        state = ctx.state
        if "fresh" not in ctx.shared:
            # This job's first run: the scan's start time, and whether the
            # location was empty (a fresh index hashes while walking and
            # skips lookups).
            count = library.entry_count(location)
            ctx.shared.update(
                started=time.time(),
                fresh=count == 0,
                expected=count or None,
                **dict.fromkeys(_COUNTS, 0),
            )
            if count == 0:
                # Saved at once: a kill before the first batch's checkpoint
                # must not make the next run take the rows this one wrote
                # for an earlier index's (their files would count as
                # unchanged, and be hashed afterwards, page by page, not
                # while walked). Not needed otherwise: a location that had
                # entries is found to have them again.
                ctx.checkpoint(state)
            written = count
        else:
            # Resumed. Without a walk state (killed before the first batch's
            # checkpoint) the walk starts over, over what it already wrote.
            written = 0 if state["walk"] is not None else library.entry_count(location)
        fresh = bool(ctx.shared["fresh"])
        hash_now = fresh and mode != "shallow"
        scan = library.scan(
            location,
            fresh=fresh and state["walk"] is None and written == 0,
            batch_size=self.batch_size,
            threads=self.threads,
            cas_ids=hash_now,
            checksums=hash_now and mode == "deep",
            resume=state["walk"],
            # Steps not waiting for the disk: each checkpoint below flushes
            # the steps it names first.
            durable_steps=False,
        )
        self._scan = scan
        # Counts up to the resume point (restored with ``shared``); this
        # run's scan counts from zero.
        base = {name: ctx.shared.get(name, 0) for name in _COUNTS}
        base_hashed = ctx.shared.get(_WALK_HASHED, 0)
        started = last_checkpoint = time.monotonic()
        walked = 0
        for step in scan:
            walked += step.entries
            ctx.file_errors(((e.path, e.errno, e.message) for e in step.errors), keep=ERRORS_KEPT)
            for name in _COUNTS:
                ctx.shared[name] = base[name] + getattr(step.stats, name)
            ctx.shared[_WALK_HASHED] = base_hashed + step.stats.hashed
            state["walk"] = step.state
            ctx.add_items(step.entries)
            now = time.monotonic()
            seen = sum(ctx.shared[n] for n in ("files", "dirs", "symlinks", "other"))
            expected = ctx.shared.get("expected")
            self._report(
                ctx,
                step.last_path,
                walked / max(now - started, 1e-9),
                done=seen,
                total=max(expected, seen) if expected else None,
            )
            # Checkpoint on time, and also when asked to stop, so a pause
            # keeps every batch written so far.
            if now - last_checkpoint >= self.checkpoint_every_s or ctx.stop_requested:
                scan.flush()  # the steps this state names, on disk first
                ctx.checkpoint(state)
                last_checkpoint = now
        scan.flush()  # the phase's end keeps the final state
        ctx.shared["final_walk"] = state["walk"]
        return None

    def process(self, ctx: PhaseContext) -> PhaseResult:
        library, location = self._lib(ctx), self._location(ctx)
        scan = self._scan
        if scan is None:
            # Resumed after discovery: a scan resumed from its final state
            # walks nothing, and its sweep checks every unseen entry on disk.
            saved = ctx.shared.get("final_walk")
            scan = library.scan(location, fresh=False, resume=saved)
            for _ in scan:
                pass
        stats: ScanStats = scan.sweep()
        self._scan = scan  # aggregation uses what it gathered
        ctx.shared["moved"] = ctx.shared.get("moved", 0) + stats.moved
        ctx.shared["new"] = ctx.shared.get("new", 0) - stats.moved  # discovery counted them new
        ctx.shared["deleted"] = ctx.shared.get("deleted", 0) + stats.deleted
        self._report(ctx, location.path, 0.0)
        return None

    def aggregate(self, ctx: PhaseContext) -> PhaseResult:
        # Always: rows written by an earlier, interrupted run (or redone
        # after a resume) count as unchanged here, yet changed the sums.
        location = self._location(ctx)
        scan, self._scan = self._scan, None
        try:
            if scan is not None:
                total, files = scan.aggregate()  # from the sums gathered while writing
            else:
                total, files = self._lib(ctx).aggregate(location)  # resumed here
            ctx.shared.update(total_size=total, file_count=files)
        finally:
            if scan is not None:
                scan.close()
        return None

    def content(self, ctx: PhaseContext) -> PhaseResult:
        library, location = self._lib(ctx), self._location(ctx)
        deep = self._mode(ctx) == "deep"
        pager = Pager(ctx.state.get("page", CONTENT_PAGE), least=256, most=CONTENT_PAGE_MAX)
        deferred = bool(ctx.state.get("deferred"))
        if deferred:
            library.defer_links(location)  # resumed: deferred again
        # Entries hashed in bulk (by the walk, or deferred here) are linked
        # at the end, also when the step stops early (paused, cancelled,
        # failed): a location is not left with links waiting for a pass no
        # one runs. Other changes were linked as they were written.
        try:
            self._hash_pages(ctx, library, location, deep, pager, deferred)
        except LeaseLostError:
            raise  # the run that took the job over links what it hashes
        except BaseException:
            # The stop's own error matters more than the link's (a full
            # disk fails both); the next index links what is left.
            with contextlib.suppress(Exception):
                library.link_identities(location)
            raise
        library.link_identities(location)
        return None

    def _hash_pages(
        self,
        ctx: PhaseContext,
        library: Library,
        location: Location,
        deep: bool,
        pager: Pager,
        deferred: bool,
    ) -> None:
        started = time.monotonic()
        hashed_here = 0
        while True:
            state = ctx.state  # each checkpoint below replaces it
            began = time.monotonic()
            done = library.hash_missing(
                location,
                after_id=state["after"],
                limit=pager.size,
                checksums=deep,
                threads=self.threads,
            )
            if done.looked_at == 0:
                break
            ctx.file_errors(((e.path, e.errno, e.message) for e in done.errors), keep=ERRORS_KEPT)
            hashed_here += done.hashed
            ctx.shared["hashed"] = ctx.shared.get("hashed", 0) + done.hashed
            ctx.add_items(done.hashed, nbytes=done.bytes)
            looked = state.get("looked", 0) + done.looked_at
            total = state.get("total")
            if total is None:
                # What this step has to hash (the total of its progress, with
                # rate and ETA), counted once a first page shows there is more
                # than one page of it: a re-index with nothing new to hash
                # pays for no count. Files that failed stay without a cas_id
                # and would be counted again: leave them out.
                more = done.looked_at >= pager.size
                rest = library.count_missing(location, checksums=deep) if more else 0
                total = looked + max(rest - len(done.errors), 0)
                if rest >= DEFER_LINKS_FROM and not deferred:
                    # Linked in one sorted pass at the end (see content),
                    # not page by page (see Library.defer_links).
                    library.defer_links(location)
                    deferred = True
            self._report(
                ctx,
                location.path,
                hashed_here / max(time.monotonic() - started, 1e-9),
                done=looked,
                total=max(total, looked),
            )
            page = pager.measured(done.looked_at, time.monotonic() - began)
            ctx.checkpoint(
                {
                    "after": done.last_id,
                    "looked": looked,
                    "total": total,
                    "page": page,
                    "deferred": deferred,
                }
            )

    def complete(self, ctx: PhaseContext) -> PhaseResult:
        library, location = self._lib(ctx), self._location(ctx)
        # Any mode: a shallow index's location has nothing to link, and is
        # then marked linked (identities noted lost wait for every location
        # to be; see Library.links_pending). Cheap when linked already.
        library.link_identities(location)
        library.mark_indexed(location, ctx.shared["started"])
        if self._mode(ctx) == "deep":
            # A deep index also makes the thumbnails, as a child job (queued
            # once: a re-run of this phase finds it by its key). A manager
            # runs it; `phasekit index` runs it after the index.
            from ..thumbs import ThumbsJob

            ctx.job_ctx.spawn_child(ThumbsJob(self.location_id, threads=self.threads))
        return None

    def output(self, shared: dict[str, Any]) -> IndexSummary:
        library = self._library
        # A location that was empty when this index began: every entry is
        # new, also those a resumed run found already written by this job
        # before it was interrupted (its scan counted them unchanged).
        redone = shared.get("unchanged", 0) if shared.get("fresh") else 0
        location = None if library is None else library.location(self.location_id)
        return IndexSummary(
            location_id=self.location_id,
            path="" if location is None else location.path,
            mode=self.mode or ("" if location is None else location.mode),
            files=shared.get("files", 0),
            dirs=shared.get("dirs", 0),
            symlinks=shared.get("symlinks", 0),
            other=shared.get("other", 0),
            bytes=shared.get("bytes", 0),
            new=shared.get("new", 0) + redone,
            modified=shared.get("modified", 0),
            unchanged=shared.get("unchanged", 0) - redone,
            moved=shared.get("moved", 0),
            deleted=shared.get("deleted", 0),
            hashed=shared.get("hashed", 0) + shared.get(_WALK_HASHED, 0),
            errors=shared.get("errors", 0),
            total_size=shared.get("total_size", 0),
            file_count=shared.get("file_count", 0),
            seconds=time.time() - shared.get("started", time.time()),
        )
