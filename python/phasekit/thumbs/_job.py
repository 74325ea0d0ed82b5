"""The thumbnail job: discover → generate → cleanup → complete.

- **discover** lists the location's images (by extension; the decoder has
  the last word) that have a content identity, one per cas_id however many
  copies exist, and counts those lacking a wanted variant (missing, or not
  a whole WebP of the right size: a truncated one counts as missing).
- **generate** makes them in batches on a pool of threads (Pillow releases
  the GIL while it decodes, resizes and encodes) and writes each variant
  through a temporary name (``_sidecars.py``); a checkpoint after each
  batch. Nothing is kept in the checkpoint but counts: a resumed run lists
  again and skips every image whose variants are whole, so an image done
  before a kill is never made twice.
- **cleanup** removes the sidecars of contents no entry of the library has
  any more, and temporary files a killed run left.
- **complete** gives the summary.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ImageError, InvalidInputError
from ..jobs import FatalError, Phase, PhaseContext, PhasedJob, PhaseResult, Phases, job, transient
from ..library import Library
from ..library._jobs import check_count, check_id, library_of, location_of
from ._make import make_variants, source_longest
from ._sidecars import (
    shards,
    sidecar_longest,
    sidecar_ok,
    sidecar_path,
    stale_temp,
    sweep_shard,
    write_sidecar,
)
from ._types import ThumbsProgress, ThumbsSummary
from ._variants import DEFAULT_VARIANTS, Variant, variants_from

#: Extensions (lower case) of the images looked at.
IMAGE_EXTENSIONS = frozenset(
    {"jpg", "jpeg", "jpe", "png", "webp", "gif", "tif", "tiff", "bmp", "heic", "heif"}
)
ERRORS_KEPT = 1000


@dataclass(frozen=True)
class Todo:
    """One content to make variants of: a path to read it from, and the
    variants it lacks."""

    cas_id: str
    path: str
    variants: tuple[Variant, ...]


def _variants(raw: list[dict[str, Any]] | None, library: Library | None) -> tuple[Variant, ...]:
    """The job's own variants, else (None) its library's."""
    if raw is not None:
        return variants_from(raw)
    return DEFAULT_VARIANTS if library is None else library.thumbnail_variants()


@job("phasekit.thumbs")
class ThumbsJob(PhasedJob[ThumbsSummary]):
    """Make the thumbnail variants of every image of a location (one set per
    content), and remove those of contents the library no longer has.

    ``variants``: ``[{"name": ..., "size": ..., "quality": ...}]``; None:
    the library's (:meth:`Library.thumbnail_variants`), and then the files
    of variants the library no longer lists are removed too. A variant is
    made again when it is not whole or not of its size (the variant's, or
    the image's where that is smaller). ``regenerate`` makes them again even
    where they are right. ``threads``: images made at once
    (None: one per core); ``batch``: images per checkpoint.
    """

    progress_type: ClassVar[type[Any] | None] = ThumbsProgress
    output_type: ClassVar[type[Any] | None] = ThumbsSummary

    location_id: int
    variants: list[dict[str, Any]] | None = None
    regenerate: bool = False
    threads: int | None = None
    batch: int = 64
    _todo: list[Todo] | None = transient(default=None)

    def __post_init__(self) -> None:
        check_id("location_id", self.location_id)
        _variants(self.variants, None)
        if not isinstance(self.regenerate, bool):
            raise InvalidInputError(f"regenerate must be True or False, not {self.regenerate!r}")
        check_count("threads", self.threads, optional=True)
        check_count("batch", self.batch)

    def conflict_key(self) -> str:
        return f"thumbs:{self.location_id}"

    def phases(self) -> Phases:
        return [
            Phase("discover", self.discover, weight=1),
            Phase("generate", self.generate, weight=20),
            Phase("cleanup", self.cleanup, weight=1),
            Phase("complete", self.complete, weight=0.1),
        ]

    # --- helpers ---------------------------------------------------------------

    def _todo_list(self, ctx: PhaseContext) -> list[Todo]:
        """The contents lacking a variant, by cas_id (a stable order)."""
        library = library_of(ctx, "the thumbnail job")
        location = location_of(library, self.location_id)
        variants = _variants(self.variants, library)
        # --regenerate: a sidecar written by this job (since it began) is done.
        fresh_since = ctx.shared["started_at"] if self.regenerate else None
        first: dict[str, str] = {}
        unidentified = images = 0
        # Images that failed in an earlier run of this job: not tried again.
        failed = set(ctx.shared.get("failed", ()))
        for entry in library.entries(location):
            if entry.kind != 0 or entry.size == 0 or entry.extension not in IMAGE_EXTENSIONS:
                continue
            images += 1
            if entry.cas_id is None:
                unidentified += 1
            elif entry.cas_id not in first:
                first[entry.cas_id] = entry.path
        ctx.shared.update(images=images, contents=len(first), unidentified=unidentified)
        todo = []
        for cas_id in sorted(first):
            if cas_id in failed:
                continue
            lacking = _lacking(library, cas_id, first[cas_id], variants, fresh_since)
            if lacking:
                todo.append(Todo(cas_id, first[cas_id], lacking))
        return todo

    def _report(self, ctx: PhaseContext, done: int, total: int, rate: float) -> None:
        s = ctx.shared
        ctx.progress(
            done=done,
            total=total,
            message=f"{done:,} of {total:,} images",
            data=ThumbsProgress(
                phase=ctx.phase, images=total, done=done, errors=s.get("errors", 0), rate=rate
            ),
        )

    # --- phases ----------------------------------------------------------------

    def discover(self, ctx: PhaseContext) -> PhaseResult:
        ctx.shared.setdefault("started_at", time.time())
        library = library_of(ctx, "the thumbnail job")
        location = location_of(library, self.location_id)
        if not os.path.isdir(location.path):
            raise FatalError(f"location {location.id}: {location.path} is missing")
        self._todo = self._todo_list(ctx)
        ctx.shared["to_make"] = len(self._todo)
        if ctx.shared["unidentified"]:
            ctx.warn(
                f"{ctx.shared['unidentified']:,} images have no content identity yet and were "
                f"left out: index the location in content mode first "
                f"(phasekit index {location.path} --mode content)"
            )
        self._report(ctx, 0, len(self._todo), 0.0)
        return None

    def generate(self, ctx: PhaseContext) -> PhaseResult:
        library = library_of(ctx, "the thumbnail job")
        todo = self._todo if self._todo is not None else self._todo_list(ctx)
        self._todo = None
        s = ctx.shared
        # A resumed run lists only what is left.
        total = s.get("made", 0) + len(s.get("failed", ())) + len(todo)
        began, made_here = time.monotonic(), 0
        with ThreadPoolExecutor(self.threads or os.cpu_count() or 1, "phasekit-thumbs") as pool:
            for start in range(0, len(todo), self.batch):
                batch = todo[start : start + self.batch]
                results = pool.map(_make_one, batch)
                for item, outcome in zip(batch, results, strict=True):
                    if isinstance(outcome, tuple):
                        path, errno, message = outcome
                        ctx.file_errors([(path, errno, message)], keep=ERRORS_KEPT)
                        s["failed"] = [*s.get("failed", ()), item.cas_id]
                        continue
                    for variant in item.variants:
                        data = outcome[variant.name]
                        write_sidecar(sidecar_path(library.path, item.cas_id, variant.name), data)
                    s["made"] = s.get("made", 0) + 1
                    s["variants_made"] = s.get("variants_made", 0) + len(item.variants)
                    made_here += 1
                ctx.add_items(len(batch))
                rate = made_here / max(time.monotonic() - began, 1e-9)
                self._report(ctx, s.get("made", 0) + len(s.get("failed", ())), total, rate)
                ctx.checkpoint()
        return None

    def cleanup(self, ctx: PhaseContext) -> PhaseResult:
        library = library_of(ctx, "the thumbnail job")
        # With the library's variants, the files of variants it no longer
        # lists go too (a job given its own variants leaves other files).
        keep = (
            {f"{v.name}.webp" for v in library.thumbnail_variants()}
            if self.variants is None
            else None
        )
        removed = dropped = 0
        # While some location's cas_ids wait for their link pass, an
        # identity not found may still be in use: nothing is removed then.
        keep_all = library.links_pending()
        if keep_all:
            ctx.warn(
                "sidecars of contents gone were not looked for: a location's content "
                "identities are not all linked yet (an index is under way or was stopped); "
                "the next thumbnail job removes them"
            )

        def gone(cas_id: str) -> bool:
            return library.content_identity(cas_id) is None

        for shard in shards(library.path):
            # Temporary files left by a killed run go; another job's write
            # in flight does not (see stale_temp).
            folders, variants, _temps = sweep_shard(
                shard, gone=None if keep_all else gone, keep=keep, stale=stale_temp
            )
            removed += folders
            dropped += variants
        ctx.shared.update(removed=removed, dropped_variants=dropped)
        return None

    def complete(self, ctx: PhaseContext) -> PhaseResult:
        return None

    def output(self, shared: dict[str, Any]) -> ThumbsSummary:
        return ThumbsSummary(
            location_id=self.location_id,
            images=shared.get("images", 0),
            contents=shared.get("contents", 0),
            made=shared.get("made", 0),
            variants_made=shared.get("variants_made", 0),
            unidentified=shared.get("unidentified", 0),
            removed=shared.get("removed", 0),
            errors=shared.get("errors", 0),
            seconds=time.time() - shared.get("started_at", time.time()),
            variants_removed=shared.get("dropped_variants", 0),
        )


def _lacking(
    library: Library,
    cas_id: str,
    path: str,
    variants: tuple[Variant, ...],
    fresh_since: float | None,
) -> tuple[Variant, ...]:
    """The variants of a content that are missing or wrong: not whole, or
    not as large as they should be, ``min(variant size, the image's longest
    side)`` (an image is never upscaled; its own size is read, from the
    header only, just when a thumbnail is smaller than its variant)."""
    image_longest: int | None = None
    looked = False
    lacking = []
    for variant in variants:
        made = sidecar_longest(sidecar_path(library.path, cas_id, variant.name), fresh_since)
        if made is not None and made < variant.size:
            if not looked:
                image_longest, looked = source_longest(path), True
            # An image that cannot be read now (moved, or gone) keeps the
            # thumbnail it has: it is whole, and nothing better can be made.
            right = image_longest is None or made == image_longest
        else:
            right = made == variant.size
        if not right:
            lacking.append(variant)
    return tuple(lacking)


def _make_one(item: Todo) -> dict[str, bytes] | tuple[str, int, str]:
    """The variants of one image (run in a pool thread), or its error as
    ``(path, errno, message)``."""
    try:
        made = make_variants(item.path, item.variants)
    except ImageError as exc:
        # The job records the path beside the message: not twice.
        return item.path, 0, str(exc).removeprefix(f"{item.path}: ")
    except OSError as exc:
        return item.path, exc.errno or 0, exc.strerror or str(exc)
    return {name: data for name, (data, _w, _h) in made.variants.items()}


def thumbnail(library: Library, cas_id: str, variant: str = "grid") -> Path | None:
    """The path of a content's thumbnail variant, if it was made and is
    whole (of whatever size it was made at)."""
    path = sidecar_path(library.path, cas_id, variant)
    return path if sidecar_ok(path, 16383, None) else None
