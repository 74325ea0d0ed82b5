"""The delete job: validate → delete → complete.

- **validate** refuses, unless ``force``: ``/``, the home folder, the
  library's own folder (or a folder holding it) and a location root of the
  library; a missing path fails the job before anything is removed.
- **delete** takes the paths one at a time. ``trash`` (the default) moves
  each to the freedesktop trash of its filesystem (``_trash.py``: the home
  trash, or ``$topdir/.Trash/$uid`` / ``$topdir/.Trash-$uid`` on other
  mounts), with a ``.trashinfo`` a file manager restores it from.
  ``permanent`` removes it in Rust, relative to folder handles, never
  following a symlink and staying on one filesystem unless
  ``cross_filesystems`` (``rust/core/src/fileops/remove.rs``); a pause or
  cancel stops it at the next entry, and a resume removes what is left.
  ``secure`` does the same, overwriting each regular file's data first
  (``passes`` times, each pass synced, then truncated: ``shred.rs``).
  It cannot promise the old data is unrecoverable where the filesystem or
  the device writes elsewhere than in place: copy-on-write filesystems
  (btrfs, ZFS, XFS with reflinks), SSDs and flash (wear levelling),
  snapshots, backups, and a journal that holds data. A file with other hard
  links is only unlinked (its data stays theirs), reported as an error.
- **library** (when a deleted path lay in a location of the job's library)
  removes the entries of what was deleted (``_follow.py``).
- **complete** gives the summary.
"""

from __future__ import annotations

import os
import time
from typing import Any, ClassVar

from .. import _core
from ..errors import InvalidInputError
from ..jobs import FatalError, Phase, PhaseContext, PhasedJob, PhaseResult, Phases, job
from ..library._jobs import check_count
from ._follow import follow
from ._paths import check_root_length, inside
from ._stoppable import run_stoppable
from ._trash import TrashError, trash
from ._types import DeleteProgress, DeleteSummary

DELETE_MODES = ("trash", "permanent", "secure")
#: Said wherever a secure delete is asked for.
SECURE_CAVEAT = (
    "a secure delete overwrites each file in place; on copy-on-write filesystems "
    "(btrfs, ZFS, reflinked XFS), SSDs and flash, snapshots and backups, copies of "
    "the old data can remain where this cannot reach"
)
ERRORS_KEPT = 1000


@job("phasekit.delete")
class DeleteJob(PhasedJob[DeleteSummary]):
    """Delete files and folders: to the trash (default) or, with
    ``mode="permanent"``, for good; ``mode="secure"`` overwrites each file's
    data ``passes`` times before removing it (see :data:`SECURE_CAVEAT`).
    ``force`` allows deleting ``/``, the home folder, a location root or the
    library's folder; ``cross_filesystems`` lets a permanent or secure
    delete enter other mounts inside the tree."""

    progress_type: ClassVar[type[Any] | None] = DeleteProgress
    #: Submitted with more than Job.item_limit paths, the work is split
    #: into several jobs under one task (see JobManager.submit).
    items_field: ClassVar[str | None] = "paths"
    output_type: ClassVar[type[Any] | None] = DeleteSummary

    paths: list[str] | None = None
    mode: str = "trash"
    force: bool = False
    cross_filesystems: bool = False
    threads: int | None = None
    #: Overwrite passes of a secure delete.
    passes: int = 1

    def __post_init__(self) -> None:
        if (
            not self.paths
            or isinstance(self.paths, str | bytes)
            or not all(isinstance(p, str | bytes | os.PathLike) for p in self.paths)
        ):
            raise InvalidInputError(f"paths must be a non-empty list of paths, not {self.paths!r}")
        if self.mode not in DELETE_MODES:
            raise InvalidInputError(
                f"mode must be one of {', '.join(DELETE_MODES)}, not {self.mode!r}"
            )
        check_count("threads", self.threads, optional=True)
        check_count("passes", self.passes)
        self.paths = [os.path.abspath(os.fsdecode(p)) for p in self.paths]

    def conflict_key(self) -> str | None:
        import hashlib

        key = b"\0".join(sorted(os.fsencode(p) for p in self.paths or ()))
        return f"delete:{hashlib.blake2b(key, digest_size=16).hexdigest()}"

    def phases(self) -> Phases:
        return [
            Phase("validate", self.validate, weight=0.1),
            Phase("delete", self.delete, weight=10),
            Phase("library", self.follow, when=self._follows, weight=0.5),
            Phase("complete", self.complete, weight=0.1),
        ]

    def _protected(self, ctx: PhaseContext) -> list[tuple[str, str]]:
        """(path, why) pairs a delete must not touch without ``force``."""
        out = [("/", "the root folder"), (os.path.expanduser("~"), "the home folder")]
        library = ctx.job_ctx.library
        if library is not None:
            out.append((os.fsdecode(library.path), "the library's folder"))
            out += [(loc.path, "a location root of the library") for loc in library.locations()]
        return out

    def validate(self, ctx: PhaseContext) -> PhaseResult:
        ctx.shared.setdefault("started_at", time.time())
        protected = [] if self.force else self._protected(ctx)
        for path in self.paths or []:
            check_root_length(path, "the path")
            if not os.path.lexists(path):
                raise FatalError(f"{path} does not exist")
            real = os.path.realpath(path) if not os.path.islink(path) else path
            for folder, why in protected:
                real_folder = os.path.realpath(folder)
                if inside(real_folder, real):  # it, or a folder that holds it
                    what = why if real == real_folder else f"a folder holding {why} ({folder})"
                    raise FatalError(
                        f"refusing to delete {path}: it is {what}; "
                        "pass force=True (--force) if you mean it"
                    )
        return None

    def _report(self, ctx: PhaseContext, files: int, dirs: int, rate: float) -> None:
        s = ctx.shared
        total = len(self.paths or [])
        done = s.get("done_paths", 0)
        ctx.progress(
            message=f"{done:,} of {total:,} paths; {files:,} files, {dirs:,} folders removed",
            percent=None if self.mode != "trash" and total == 1 else 100 * done / total,
            data=DeleteProgress(
                phase=ctx.phase, files=files, dirs=dirs, errors=s.get("errors", 0), rate=rate
            ),
        )

    def delete(self, ctx: PhaseContext) -> PhaseResult:
        s = ctx.shared
        paths = list(self.paths or [])
        if self.mode == "secure":
            ctx.warn(SECURE_CAVEAT)
        while s.get("done_paths", 0) < len(paths):
            path = paths[s.get("done_paths", 0)]
            if os.path.lexists(path):
                if self.mode == "trash":
                    self._trash(ctx, path)
                else:
                    self._remove(ctx, path)
            s["done_paths"] = s.get("done_paths", 0) + 1
            ctx.checkpoint()
        return None

    def _trash(self, ctx: PhaseContext, path: str) -> None:
        try:
            item = trash(path)
        except TrashError as exc:
            raise FatalError(str(exc)) from exc
        trashed = ctx.shared.setdefault("trashed", [])
        trashed.append(os.fsdecode(item.trashed))
        ctx.add_items(1)
        self._report(ctx, 0, 0, 0.0)

    def _remove(self, ctx: PhaseContext, path: str) -> None:
        """Remove one tree, reporting its counters; a pause or cancel stops
        it at the next entry (a resume removes what is left)."""
        s = ctx.shared
        counters = _core.RemoveCounters()
        began = time.monotonic()
        base_files, base_dirs = s.get("files", 0), s.get("dirs", 0)

        def tick() -> None:
            files, dirs = counters.snapshot()
            rate = (files + dirs) / max(time.monotonic() - began, 1e-9)
            self._report(ctx, base_files + files, base_dirs + dirs, rate)

        try:
            errors = run_stoppable(
                ctx,
                lambda token: _core.remove_tree(
                    path,
                    cross_filesystems=self.cross_filesystems,
                    threads=self.threads,
                    overwrite_passes=self.passes if self.mode == "secure" else 0,
                    counters=counters,
                    cancel=token,
                ),
                on_tick=tick,
            )
        finally:
            files, dirs = counters.snapshot()
            s["files"], s["dirs"] = base_files + files, base_dirs + dirs
            ctx.add_items(files + dirs)
        ctx.file_errors(errors, keep=ERRORS_KEPT)

    def _follows(self, ctx: PhaseContext) -> bool:
        library = ctx.job_ctx.library
        return library is not None and bool(library.locations())

    def follow(self, ctx: PhaseContext) -> PhaseResult:
        library = ctx.job_ctx.library
        if library is not None:
            follow(
                library,
                [],
                removed=list(self.paths or []),
                since=ctx.shared.get("started_at", time.time()),
                report=lambda _message: None,
                warn=ctx.warn,
            )
        return None

    def complete(self, ctx: PhaseContext) -> PhaseResult:
        return None

    def output(self, shared: dict[str, Any]) -> DeleteSummary:
        return DeleteSummary(
            mode=self.mode,
            paths=list(self.paths or []),
            trashed=list(shared.get("trashed", [])),
            files=shared.get("files", 0),
            dirs=shared.get("dirs", 0),
            errors=shared.get("errors", 0),
            seconds=time.time() - shared.get("started_at", time.time()),
        )
