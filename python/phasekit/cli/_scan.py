"""The work of ``phasekit scan`` (see phasekit/cli/scan.py): walk, count,
and with ``--hash`` group the files whose cas_ids agree, byte for byte."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field

from .. import fs
from .._progress import Progress
from ..fs import FsError, Kind
from ._common import human


@dataclass
class ScanSummary:
    roots: list[str]
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    other: int = 0
    bytes: int = 0
    errors: list[FsError] = field(default_factory=list)
    hashed: int = 0
    distinct: int = 0
    duplicate_groups: int = 0
    duplicate_copies: int = 0
    wasted_bytes: int = 0

    def to_json(self, hashed: bool) -> dict[str, object]:
        out: dict[str, object] = {
            "roots": self.roots,
            "files": self.files,
            "dirs": self.dirs,
            "symlinks": self.symlinks,
            "other": self.other,
            "bytes": self.bytes,
            "errors": len(self.errors),
        }
        if hashed:
            out |= {
                "hashed": self.hashed,
                "distinct_contents": self.distinct,
                "duplicate_groups": self.duplicate_groups,
                "duplicate_copies": self.duplicate_copies,
                "wasted_bytes": self.wasted_bytes,
            }
        return out


@dataclass
class _Files:
    paths: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    ids: list[tuple[int, int]] = field(default_factory=list)
    cas_ids: list[str | None] = field(default_factory=list)


def _walk(args: argparse.Namespace, summary: ScanSummary, keep_files: bool) -> _Files:
    """Walk (hashing while walking with --hash) and count."""
    import numpy as np  # here: only this command needs it (start-up time)

    files = _Files()
    with Progress("scanning", unit=" entries") as bar:
        walker = fs.walk(
            args.paths,
            follow_symlinks=args.follow_symlinks,
            hidden=args.hidden,
            skip=args.skip,
            threads=args.threads,
            cas_ids=args.hash,
        )
        with walker:
            for batch in walker:
                kinds = batch.kinds
                is_file = kinds == Kind.FILE
                summary.files += int(is_file.sum())
                summary.dirs += int((kinds == Kind.DIR).sum())
                summary.symlinks += int((kinds == Kind.SYMLINK).sum())
                summary.other += int((kinds == Kind.OTHER).sum())
                summary.bytes += int(batch.sizes[is_file].sum())
                summary.errors += batch.errors
                if keep_files:
                    for i in np.flatnonzero(is_file):
                        files.paths.append(batch.paths[i])
                        files.sizes.append(int(batch.sizes[i]))
                        files.ids.append((int(batch.devices[i]), int(batch.inodes[i])))
                        files.cas_ids.append(batch.cas_ids[i] if batch.cas_ids else None)
                bar.update(len(batch), files=f"{summary.files:,}", size=human(summary.bytes))
    return files


def _summarise_duplicates(files: _Files, summary: ScanSummary) -> None:
    """Duplicates confirmed byte for byte.

    Files with a shared cas_id are the only candidates (cas_id covers the
    size and, up to 100 KiB, every byte); larger ones are confirmed with a
    full hash, since cas_id only samples them.
    """
    summary.hashed = sum(v is not None for v in files.cas_ids)
    inodes_of: dict[str, set[tuple[int, int]]] = {}
    for cas, ident in zip(files.cas_ids, files.ids, strict=True):
        if cas is not None:
            inodes_of.setdefault(cas, set()).add(ident)
    summary.distinct = len(inodes_of)
    shared = {cas for cas, inodes in inodes_of.items() if len(inodes) > 1}
    picked = [i for i, cas in enumerate(files.cas_ids) if cas in shared]
    report = fs.group_duplicates(
        [files.paths[i] for i in picked],
        [files.sizes[i] for i in picked],
        [files.ids[i][0] for i in picked],
        [files.ids[i][1] for i in picked],
        mode="full",
    )
    summary.errors += report.errors
    summary.duplicate_groups = len(report.groups)
    summary.duplicate_copies = sum(len(g.copies) - 1 for g in report.groups)
    summary.wasted_bytes = report.wasted


def scan(args: argparse.Namespace) -> int:
    # A root that does not exist is reported with the other errors and the
    # rest is scanned; the exit status says so (as find's does).
    missing = [p for p in args.paths if not os.path.lexists(p)]
    summary = ScanSummary(roots=[os.fsdecode(p) for p in args.paths])
    files = _walk(args, summary, keep_files=args.hash or args.list)
    if args.hash:
        _summarise_duplicates(files, summary)
    if args.list:
        for path, size, cas in zip(files.paths, files.sizes, files.cas_ids, strict=True):
            if args.json:
                print(json.dumps({"path": path, "size": size, "cas_id": cas}))
            else:
                print(f"{cas or '-':16}  {size:>12}  {path}")
    for err in summary.errors[: args.max_errors]:
        print(f"phasekit: {err}", file=sys.stderr)
    if len(summary.errors) > args.max_errors:
        print(
            f"phasekit: ... and {len(summary.errors) - args.max_errors} more errors",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(summary.to_json(args.hash)))
    else:
        s = summary
        print(
            f"{s.files:,} files, {s.dirs:,} dirs, {s.symlinks:,} symlinks, {s.other:,} other; "
            f"{human(s.bytes)} ({s.bytes:,} bytes); {len(s.errors):,} errors"
        )
        if args.hash:
            print(
                f"hashed {s.hashed:,} files: {s.distinct:,} distinct contents; "
                f"{s.duplicate_groups:,} duplicate groups, {s.duplicate_copies:,} extra copies, "
                f"{human(s.wasted_bytes)} wasted"
            )
    return 1 if missing else 0
