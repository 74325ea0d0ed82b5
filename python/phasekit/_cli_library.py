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
from ._cli_run import follow, plain, report_stops
from .jobs import JobStatus
from .library import Entry, Library

_KINDS = {0: "file", 1: "dir", 2: "symlink", 3: "other"}


def open_library(args: argparse.Namespace) -> Library:
    return Library.open(args.library)


def cmd_index(args: argparse.Namespace) -> int:
    root = os.path.abspath(os.fsdecode(args.path))
    if not os.path.isdir(root):
        raise ValueError(f"{root} is not a directory")
    library = Library.in_memory() if args.ephemeral else open_library(args)
    with library:
        try:
            location = library.location(root)
            if args.mode and args.mode != location.mode:
                location = library.set_mode(location, args.mode)
        except KeyError:
            location = library.add_location(
                root, mode=args.mode or "content", recursive=not args.one_level
            )
        if args.batch_size < 1 or not args.checkpoint_every > 0:
            raise ValueError("--batch-size must be >= 1 and --checkpoint-every > 0")
        job = indexing.IndexJob(
            location.id,
            threads=args.threads,
            batch_size=args.batch_size,
            checkpoint_every_s=args.checkpoint_every,
        )
        return anyio.run(_run_index, library, job, args)


async def _run_index(library: Library, job: indexing.IndexJob, args: argparse.Namespace) -> int:
    async with library.jobs(max_concurrency=1) as manager:
        handle = await manager.dispatch(job)
        results = await follow([handle], bars=not args.json, resumable=not args.ephemeral)
        status = results[handle.id]
        outcome = manager.store.outcome(handle.id)
        summary = handle.output() if status.finished else None
        record = manager.store.get_job(handle.id)
    if args.json:
        out: dict[str, Any] = {"job_id": handle.id, "status": status.value}
        if summary is not None:
            out.update(plain(summary))
        out["error"] = record.error
        out["error_samples"] = (outcome.get("errors") or [])[:20]
        print(json.dumps(out))
    elif summary is not None:
        s = summary
        print(
            f"{s.path}: {s.files:,} files, {s.dirs:,} dirs, {s.total_size:,} bytes "
            f"({s.mode}; {s.new:,} new, {s.modified:,} modified, {s.moved:,} moved, "
            f"{s.deleted:,} deleted, {s.unchanged:,} unchanged; {s.hashed:,} hashed) "
            f"in {s.seconds:.2f} s"
        )
        if s.errors:
            print(f"{s.errors:,} entries could not be read:", file=sys.stderr)
            for e in (outcome.get("errors") or [])[: args.max_errors]:
                print(f"  {e.get('path')}: {e.get('message')}", file=sys.stderr)
    if record.error:
        print(f"phasekit: job failed: {record.error}", file=sys.stderr)
    return report_stops(results)


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
            raise ValueError(
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
            ]
        if not targets:
            print("phasekit: no interrupted jobs", file=sys.stderr)
            return 0
        for handle in targets:
            if handle.status is JobStatus.PAUSED:
                await handle.resume()
        results = await follow(targets, bars=not args.json)
        for handle in targets:
            record = manager.store.get_job(handle.id)
            line = {"job_id": handle.id, "name": record.name, "status": results[handle.id].value}
            if args.json:
                print(json.dumps({**line, "output": plain(handle.output()), "error": record.error}))
            else:
                print(f"{handle.id} {record.name}: {line['status']}"
                      + (f" ({record.error})" if record.error else ""))  # fmt: skip
    return report_stops(results)
