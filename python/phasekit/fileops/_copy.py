"""The copy and move jobs: validate → plan → transfer → complete.

- **validate** refuses, before anything is written: a missing source, a
  source that is the destination or contains it, several sources into
  something that is not a folder. It decides where each source goes, as
  ``cp -r`` does: into the destination folder under its own name, or (one
  source, destination not yet there) to the destination path itself.
- **plan** walks the sources (a move within one filesystem to a free name
  is one atomic rename instead, and needs no plan) and applies the conflict
  policy; under ``abort`` (the default) a taken name fails the job before the
  first byte. The plan is saved next to the library's jobs.db: a walk's order
  is not repeatable, and the checkpoints hold only the index reached.
- **transfer** carries out the plan a bounded page at a time, in Rust with
  the GIL released (``rust/core/src/fileops/transfer.rs``): every file is
  written to a temporary name in its folder and renamed when complete, so a
  file under its final name is always whole. ``verify`` reads each copy back
  after syncing it and compares BLAKE3 digests. A move removes each source
  file once its copy is in place (synced when ``durable``, the default for
  moves).
- **finish** gives folders their mode and mtime (and a move removes the
  source folders).
- **library** (when a source or a target lies in a location of the job's
  library) brings its entries in step: copies take their sources' content
  identities, a moved entry keeps its identity and first-seen time, the
  entries of moved sources go (``_follow.py``).
- **complete** removes the plan and gives the summary.
"""

from __future__ import annotations

import errno
import functools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .. import _core
from .._defaults import PAGE_BYTES, PAGE_FILES
from .._pacing import Pager
from .._private import make_private_dir
from ..errors import DestinationFullError, InvalidInputError
from ..jobs import (
    FatalError,
    JobContext,
    Phase,
    PhaseContext,
    PhasedJob,
    PhaseResult,
    Phases,
    job,
    transient,
)
from ..library._jobs import check_count, library_of
from ._follow import follow, holds_location
from ._paths import check_root_length, inside
from ._stoppable import run_stoppable
from ._types import TransferProgress, TransferSummary

T = TypeVar("T")

CONFLICT_POLICIES = ("abort", "skip", "overwrite", "rename")
#: Non-critical errors kept in the job's record (all are counted).
ERRORS_KEPT = 1000
#: Taken names listed in the error of an ``abort``.
CONFLICTS_SHOWN = 10
SCRATCH_DIR = "scratch"


def _with_token(call: Callable[..., T], token: _core.CancelToken) -> T:
    """``call(cancel=token)``: a page of the transfer, stoppable."""
    return call(cancel=token)


@job("phasekit.copy")
class CopyJob(PhasedJob[TransferSummary]):
    """Copy files and folders: ``sources`` into (or to) ``dest``.

    ``conflict``: ``abort`` (default: a taken name fails the job before
    anything is written), ``skip``, ``overwrite`` (files only: a folder
    never replaces a file nor a file a folder) or ``rename`` ("name (1).ext").
    ``verify`` reads every copy back and compares BLAKE3 digests, and
    ``durable`` syncs each file and folder (both default to off for a copy,
    on for a move). Modes and mtimes are kept (``atime``: files' access
    times too), symlinks are copied as links (never
    followed), hard links inside the copied set stay hard links, FIFOs and
    devices are skipped with a non-critical error.
    """

    operation: ClassVar[str] = "copy"
    #: Submitted with more than Job.item_limit sources, the work is split
    #: into several jobs under one task (see JobManager.submit).
    items_field: ClassVar[str | None] = "sources"
    progress_type: ClassVar[type[Any] | None] = TransferProgress
    output_type: ClassVar[type[Any] | None] = TransferSummary

    sources: list[str] | None = None
    dest: str = ""
    conflict: str = "abort"
    verify: bool | None = None
    durable: bool | None = None
    atime: bool = False
    threads: int | None = None
    page_files: int = PAGE_FILES
    page_bytes: int = PAGE_BYTES
    _plan: _core.CopyPlan | None = transient(default=None)
    _job_ctx: JobContext | None = transient(default=None)
    _summary: TransferSummary | None = transient(default=None)

    def __post_init__(self) -> None:
        if (
            not self.sources
            or isinstance(self.sources, str | bytes)
            or not all(isinstance(s, str | bytes | os.PathLike) for s in self.sources)
        ):
            raise InvalidInputError(
                f"sources must be a non-empty list of paths, not {self.sources!r}"
            )
        if not isinstance(self.dest, str | bytes | os.PathLike) or not os.fsdecode(self.dest):
            raise InvalidInputError(f"dest must be a path, not {self.dest!r}")
        if self.conflict not in CONFLICT_POLICIES:
            raise InvalidInputError(
                f"conflict must be one of {', '.join(CONFLICT_POLICIES)}, not {self.conflict!r}"
            )
        for name, value, optional in (
            ("verify", self.verify, True), ("durable", self.durable, True),
            ("atime", self.atime, False),
        ):  # fmt: skip
            if not (isinstance(value, bool) or (optional and value is None)):
                raise InvalidInputError(f"{name} must be True or False, not {value!r}")
        check_count("threads", self.threads, optional=True)
        check_count("page_files", self.page_files)
        check_count("page_bytes", self.page_bytes)
        self.sources = [os.path.abspath(os.fsdecode(s)) for s in self.sources]
        self.dest = os.path.abspath(os.fsdecode(self.dest))

    @property
    def moving(self) -> bool:
        return self.operation == "move"

    @property
    def _durable(self) -> bool:
        return self.moving if self.durable is None else self.durable

    @property
    def _verify(self) -> bool:
        # A move across filesystems removes each source once its copy is
        # in place: by default it first proves the copy is right.
        return self.moving if self.verify is None else self.verify

    def conflict_key(self) -> str | None:
        """Two runs of one copy never write the same files side by side;
        the same command run again joins the one left interrupted."""
        import hashlib

        key = b"\0".join(
            [os.fsencode(self.dest), *sorted(os.fsencode(s) for s in self.sources or ())]
        )
        return f"{self.operation}:{hashlib.blake2b(key, digest_size=16).hexdigest()}"

    # --- helpers ---------------------------------------------------------------

    @property
    def _tag(self) -> str:
        if self._job_ctx is None:
            raise FatalError(f"the {self.operation} job is not running")
        # The whole id: its first digits are a timestamp, shared by jobs
        # created in the same millisecond, and two jobs must never share a
        # temporary name in one folder.
        return "pk" + self._job_ctx.id.replace("-", "")

    def _plan_path(self, ctx: PhaseContext) -> Path:
        library = library_of(ctx, f"the {self.operation} job")
        folder = library.path / SCRATCH_DIR
        make_private_dir(folder)
        return folder / f"{self.operation}-{ctx.id}.plan"

    def _loaded(self, ctx: PhaseContext) -> _core.CopyPlan:
        if self._plan is None:
            path = self._plan_path(ctx)
            if not path.exists():
                raise FatalError(f"the plan of this {self.operation} is missing ({path})")
            self._plan = _core.CopyPlan.load(path)
        return self._plan

    def _report(self, ctx: PhaseContext, message: str, rate: float, percent: float | None) -> None:
        s = ctx.shared
        ctx.progress(
            message=message,
            percent=percent,
            data=TransferProgress(
                phase=ctx.phase,
                entries=s.get("entries", 0),
                entries_done=s.get("next", 0),
                bytes=s.get("bytes", 0),
                bytes_done=s.get("bytes_done", 0),
                errors=s.get("errors", 0),
                rate=rate,
            ),
        )

    # --- phases ----------------------------------------------------------------

    def phases(self) -> Phases:
        return [
            Phase("validate", self.validate, weight=0.1),
            Phase("plan", self.plan, weight=1),
            Phase("transfer", self.transfer, weight=8),
            Phase("finish", self.finish, weight=0.5),
            Phase("library", self.follow, when=self._follows, weight=0.5),
            Phase("complete", self.complete, weight=0.1),
        ]

    def run(self, ctx: JobContext) -> Any:
        self._job_ctx = ctx
        return super().run(ctx)

    def validate(self, ctx: PhaseContext) -> PhaseResult:
        sources = list(self.sources or [])
        dest = self.dest
        dest_is_dir = os.path.isdir(dest) and not os.path.islink(dest)
        if len(sources) > 1 and not dest_is_dir:
            raise FatalError(f"{dest} is not a folder: several sources go into a folder")
        targets = []
        check_root_length(dest, "the destination")
        for source in sources:
            check_root_length(source, "the source")
            if not os.path.lexists(source):
                raise FatalError(f"{source} does not exist")
            if source == "/":
                raise FatalError("refusing to copy or move / itself")
            target = os.path.join(dest, os.path.basename(source)) if dest_is_dir else dest
            real_source = os.path.realpath(source)
            if inside(os.path.realpath(target), real_source) and os.path.isdir(real_source):
                raise FatalError(f"{target} is inside {source}: a folder cannot go into itself")
            if os.path.realpath(target) == real_source:
                raise FatalError(f"{source} and {target} are the same")
            if not os.path.isdir(os.path.dirname(target)):
                raise FatalError(f"{os.path.dirname(target)} is not a folder")
            targets.append(target)
        if len(set(targets)) != len(targets):
            raise FatalError("two sources have the same name: they would go to one place")
        library = ctx.job_ctx.library
        locations = [] if library is None else library.locations()
        if self.moving:
            for source in sources:
                held = holds_location(locations, source)
                if held is not None:
                    raise FatalError(
                        f"refusing to move {source}: it is or holds the root of location "
                        f"{held.id} ({held.path}); move what is inside it, or remove the "
                        "location first"
                    )
        ctx.shared["targets"] = targets
        ctx.shared.setdefault("started_at", time.time())
        return None

    def plan(self, ctx: PhaseContext) -> PhaseResult:
        sources = list(self.sources or [])
        targets = list(ctx.shared["targets"])
        # Under ``abort``, a move renames nothing while any target is taken:
        # the plan below lists the taken names before anything is touched.
        taken = self.conflict == "abort" and any(os.path.lexists(t) for t in targets)
        if self.moving and not taken:
            sources, targets = self._rename_whole(ctx, sources, targets)
        plan, errors = run_stoppable(
            ctx, lambda token: _core.CopyPlan.make(sources, targets, self.conflict, token)
        )
        ctx.file_errors(errors, keep=ERRORS_KEPT)
        conflicts = plan.conflicts()
        if conflicts and self.conflict == "abort":
            shown = "\n  ".join(conflicts[:CONFLICTS_SHOWN])
            more = len(conflicts) - CONFLICTS_SHOWN
            raise FatalError(
                f"{len(conflicts):,} destination names are taken; nothing was written:\n  {shown}"
                + (f"\n  ... and {more:,} more" if more > 0 else "")
                + "\nchoose what to do with --conflict skip, overwrite or rename"
            )
        entries, files, _dirs, _symlinks, _others, _links, nbytes, skipped = plan.totals()
        plan.save(self._plan_path(ctx))
        self._plan = plan
        ctx.shared.update(
            entries=entries, bytes=nbytes, next=0, bytes_done=0, skipped=skipped,
            conflicts=len(conflicts), planned_sources=sources, planned_targets=plan.targets(),
        )  # fmt: skip
        self._report(ctx, f"{files:,} files, {nbytes:,} bytes to {self.operation}", 0.0, 0.0)
        return None

    def _rename_whole(
        self, ctx: PhaseContext, sources: list[str], targets: list[str]
    ) -> tuple[list[str], list[str]]:
        """A move within one filesystem to a free name: one rename each.
        Returns the sources left to copy."""
        left_sources, left_targets = [], []
        renamed = ctx.shared.get("renamed_targets", [])
        for source, target in zip(sources, targets, strict=True):
            if target in renamed:
                continue  # renamed by this job before a pause or a kill
            try:
                _core.rename_no_replace(source, target)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EEXIST, errno.ENOTEMPTY):
                    raise FatalError(f"cannot move {source}: {exc.strerror}") from exc
                left_sources.append(source)
                left_targets.append(target)
                continue
            renamed.append(target)
            # Kept at once: a resume must not look for this source again.
            ctx.shared["renamed_targets"] = renamed
            ctx.shared["renamed_sources"] = [*ctx.shared.get("renamed_sources", []), source]
            ctx.checkpoint()
        return left_sources, left_targets

    def transfer(self, ctx: PhaseContext) -> PhaseResult:
        plan = self._loaded(ctx)
        s = ctx.shared
        total_entries, total_bytes = s.get("entries", 0), s.get("bytes", 0)
        start = s.get("next", 0)
        # A run killed mid-page may have finished entries past its last
        # checkpoint: the pages of a resumed run that cover them look for
        # complete copies before writing (pages are at most page_files long).
        resumed_until = start + self.page_files if start > 0 or s.get("transferring") else 0
        if not s.get("transferring"):
            # Kept before the first page: a kill inside it must make the
            # next run look for the copies it placed.
            s["transferring"] = True
            ctx.checkpoint()
        pager = Pager(min(self.page_files, 256), least=1, most=self.page_files)
        began = time.monotonic()
        copied_now = 0
        while start < total_entries:
            t0 = time.monotonic()
            page = functools.partial(
                plan.transfer_page, start, pager.size, self.page_bytes, tag=self._tag,
                verify=self._verify, durable=self._durable, atime=self.atime,
                remove_sources=self.moving,
                resumed=start < resumed_until, threads=self.threads,
            )  # fmt: skip
            # A pause lands inside the page (even inside one large file):
            # the page is then redone on resume, from its start.
            next_index, files, nbytes, dirs, symlinks, links, reflinked, already, errors = (
                run_stoppable(ctx, functools.partial(_with_token, page))
            )
            pager.measured(next_index - start, time.monotonic() - t0)
            full = [e for e in errors if e[1] in (errno.ENOSPC, errno.EDQUOT)]
            if full:
                # Not this file's problem but the disk's: stop resumable,
                # before the page counts as done (it is redone on resume;
                # what it placed is found in place then).
                path = full[0][0]
                kept = "; its source is intact" if self.moving else ""
                raise DestinationFullError(
                    f"{path}: no space left on the destination's disk; nothing is "
                    f"half-written under a final name{kept}. Free some space, then "
                    f"go on with: phasekit resume {ctx.id}"
                )
            ctx.file_errors(errors, keep=ERRORS_KEPT)
            for key, value in (
                ("files", files), ("dirs", dirs), ("symlinks", symlinks), ("links", links),
                ("reflinked", reflinked), ("already", already),
            ):  # fmt: skip
                s[key] = s.get(key, 0) + value
            s["bytes_done"] = s.get("bytes_done", 0) + nbytes
            s["next"] = start = next_index
            copied_now += nbytes
            ctx.add_items(files + symlinks + links, nbytes=nbytes)
            ctx.units(start, total_entries)
            rate = copied_now / max(time.monotonic() - began, 1e-9)
            share = s["bytes_done"] / total_bytes if total_bytes else start / max(total_entries, 1)
            done_bytes = s["bytes_done"]
            self._report(
                ctx,
                f"{done_bytes:,} of {total_bytes:,} bytes, {start:,} of {total_entries:,} entries",
                rate,
                100 * min(share, 1.0),
            )
            ctx.checkpoint()
        return None

    def finish(self, ctx: PhaseContext) -> PhaseResult:
        s = ctx.shared
        if s.get("entries", 0) and not s.get("finished"):
            plan = self._loaded(ctx)
            errors = run_stoppable(
                ctx, lambda token: plan.finish(remove_sources=self.moving, cancel=token)
            )
            ctx.file_errors(errors, keep=ERRORS_KEPT)
            s["finished"] = True
        return None

    def _follows(self, ctx: PhaseContext) -> bool:
        library = ctx.job_ctx.library
        return library is not None and bool(library.locations())

    def follow(self, ctx: PhaseContext) -> PhaseResult:
        s = ctx.shared
        library = library_of(ctx, f"the {self.operation} job")
        moved = list(zip(s.get("planned_sources", []), s.get("planned_targets", []), strict=True))
        renamed = list(zip(s.get("renamed_sources", []), s.get("renamed_targets", []), strict=True))
        s["carried"] = follow(
            library,
            moved,
            removed=list(self.sources or []) if self.moving else [],
            renamed=renamed,
            since=s.get("started_at", time.time()),
            report=lambda message: self._report(ctx, message, 0.0, 100.0),
            warn=ctx.warn,
        )
        return None

    def complete(self, ctx: PhaseContext) -> PhaseResult:
        s = ctx.shared
        self._plan_path(ctx).unlink(missing_ok=True)
        self._summary = self._summarise(s)
        return None

    def _summarise(self, s: dict[str, Any]) -> TransferSummary:
        renamed = list(s.get("renamed_targets", []))
        return TransferSummary(
            operation=self.operation,
            sources=list(self.sources or []),
            # Where each source went: renamed whole, or as planned (a root
            # renamed by the conflict policy has its new name there).
            targets=list(s.get("renamed_targets", [])) + list(s.get("planned_targets", [])),
            files=s.get("files", 0),
            dirs=s.get("dirs", 0),
            symlinks=s.get("symlinks", 0),
            links=s.get("links", 0),
            bytes=s.get("bytes_done", 0),
            reflinked=s.get("reflinked", 0),
            renamed=len(renamed),
            skipped=s.get("skipped", 0),
            conflicts=s.get("conflicts", 0),
            verified=self._verify,
            errors=s.get("errors", 0),
            seconds=time.time() - s.get("started_at", time.time()),
            already=s.get("already", 0),
            carried=s.get("carried", 0),
        )

    def output(self, shared: dict[str, Any]) -> TransferSummary:
        # Resumed after its last phase: the summary comes from ``shared``.
        summary = self._summary or self._summarise(shared)
        self._summary = None
        return summary


@job("phasekit.move")
class MoveJob(CopyJob):
    """Move files and folders: one rename each within a filesystem (when
    the destination name is free), else copy, sync, then remove the source,
    file by file, so an interruption never leaves a file in neither place.
    Same fields as :class:`CopyJob`; ``durable`` defaults to on."""

    operation: ClassVar[str] = "move"


__all__ = ["CONFLICT_POLICIES", "CopyJob", "MoveJob"]
