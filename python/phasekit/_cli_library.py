"""``phasekit index``, ``phasekit ls`` and ``phasekit resume``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import anyio

from . import indexing
from ._cli_run import (
    EXIT_OK,
    Options,
    plain,
    print_errors,
    register_reporter,
    report_stop,
    run_and_report,
)
from .errors import InvalidInputError
from .jobs import JobHandle, JobStatus, default_registry
from .library import Entry, Library

_KINDS = {0: "file", 1: "dir", 2: "symlink", 3: "other"}


def open_library(args: argparse.Namespace) -> Library:
    return Library.open(args.library)


def cmd_index(args: argparse.Namespace) -> int:
    root = os.path.abspath(os.fsdecode(args.path))
    if not os.path.isdir(root):
        raise InvalidInputError(f"{root} is not a directory")
    library = Library.in_memory() if args.ephemeral else open_library(args)
    with library:
        try:
            location = library.location(root)
            if args.mode and args.mode != location.mode:
                location = library.set_mode(location, args.mode)
        except KeyError:
            location = library.add_location(
                root,
                mode=args.mode or "content",
                recursive=not args.one_level,
                allow_nested=args.nested,
            )
        job = indexing.IndexJob(
            location.id,
            threads=args.threads,
            batch_size=args.batch_size,
            checkpoint_every_s=args.checkpoint_every,
        )
        options = Options(json=args.json, max_errors=args.max_errors)
        return anyio.run(_run_index, library, job, options, not args.ephemeral)


async def _run_index(
    library: Library, job: indexing.IndexJob, options: Options, resumable: bool
) -> int:
    async with library.jobs(max_concurrency=1) as manager:
        handle = await manager.dispatch(job)
        return await run_and_report(library, [handle], options, resumable=resumable)


def report_index(
    library: Library, handle: JobHandle[Any], status: JobStatus, options: Options
) -> int:
    """The summary of an index (see ``phasekit index``)."""
    stopped = report_stop(handle, status)
    summary = handle.output() if status.finished else None
    if options.json:
        out: dict[str, Any] = {"job_id": handle.id, "status": status.value}
        if isinstance(summary, indexing.IndexSummary):
            out.update(plain(summary))
        out["error"] = handle.error
        out["error_samples"] = [e.to_dict() for e in handle.errors()[:20]]
        print(json.dumps(out))
    elif isinstance(summary, indexing.IndexSummary):
        s = summary
        print(
            f"{s.path}: {s.files:,} files, {s.dirs:,} dirs, {s.total_size:,} bytes "
            f"({s.mode}; {s.new:,} new, {s.modified:,} modified, {s.moved:,} moved, "
            f"{s.deleted:,} deleted, {s.unchanged:,} unchanged; {s.hashed:,} hashed) "
            f"in {s.seconds:.2f} s"
        )
        print_errors(handle, s.errors, "entries could not be read", options.max_errors)
    return EXIT_OK if stopped is None else stopped


register_reporter(indexing.IndexJob.job_name, report_index)


def entry_json(entry: Entry) -> dict[str, Any]:
    return {
        "path": entry.path,
        "kind": _KINDS.get(int(entry.kind), "other"),
        "size": entry.size,
        "mtime_ns": entry.mtime_ns,
        "ctime_ns": entry.ctime_ns,
        "inode": entry.inode,
        "device": entry.device,
        "mode": entry.mode,
        "cas_id": entry.cas_id,
        "checksum": entry.checksum,
        "agg_size": entry.agg_size,
        "file_count": entry.file_count,
        "id": entry.id,
        "parent_id": entry.parent_id,
    }


def cmd_ls(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        root = os.path.abspath(os.fsdecode(args.path))
        try:
            location = library.location(root)
        except KeyError:
            raise InvalidInputError(
                f"{root} is not a location of {library.path}; index it first "
                f"(phasekit index {root})"
            ) from None
        out = sys.stdout
        for entry in library.entries(location):
            if args.json:
                out.write(json.dumps(entry_json(entry)) + "\n")
            else:
                kind = _KINDS.get(int(entry.kind), "other")
                size = entry.agg_size if entry.agg_size is not None else entry.size
                out.write(f"{kind:7} {size:>14,}  {entry.path}\n")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    with open_library(args) as library:
        return anyio.run(_resume, library, args)


async def _resume(library: Library, args: argparse.Namespace) -> int:
    # Jobs other packages declare are known before the manager looks at the
    # queue: a job this process could run is never left waiting.
    default_registry.load_entry_points()
    async with library.jobs(max_concurrency=1) as manager:
        # Opening the manager already queued the jobs a dead process left running.
        if args.job:
            targets = [manager.handle(args.job)]
        else:
            now = time.time()
            targets = [
                manager.handle(r.id)
                for r in manager.jobs()
                if r.status in (JobStatus.PAUSED, JobStatus.QUEUED)
                and (r.next_run_at is None or r.next_run_at <= now)
                and r.parent_id is None  # children run with (and are shown by) their parent
            ]
        waiting = [h for h in targets if not default_registry.knows(h.record.name)]
        for handle in waiting:
            print(f"phasekit: job {handle.id} ({handle.record.name}) waits for a program "
                  "that knows its type; it stays queued", file=sys.stderr)  # fmt: skip
        targets = [h for h in targets if h not in waiting]
        if not targets:
            if not waiting:
                print("phasekit: no interrupted jobs", file=sys.stderr)
            return 0
        for handle in targets:
            if handle.status is JobStatus.PAUSED:
                await handle.resume()
        return await run_and_report(library, targets, Options(json=args.json))
