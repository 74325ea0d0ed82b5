#!/usr/bin/env python3
"""Peak memory of walking a large tree: batches are streamed, not accumulated.

Usage: ``python benches/walk_rss.py TREE [--impl rust|python] [--state-every N]``.
Walks TREE in a fresh process, touching every batch the way an indexer would
(counting files and bytes) and taking the resume state every N batches, then
prints one JSON object: entries, seconds, peak RSS (MB) of the process and the
largest resume state seen (bytes).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("tree")
    ap.add_argument("--impl", choices=("rust", "python"), default="rust")
    ap.add_argument("--state-every", type=int, default=10)
    args = ap.parse_args(argv)

    if args.impl == "rust":
        from phasekit import fs as impl
    else:
        from phasekit import reference as impl

    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    entries = files = total_bytes = max_state = 0
    walker = impl.walk(args.tree)
    for n, batch in enumerate(walker):
        entries += len(batch)
        mask = batch.files()
        files += int(mask.sum())
        total_bytes += int(batch.sizes[mask].sum())
        if n % args.state_every == 0:
            max_state = max(max_state, len(walker.state()))
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "impl": args.impl,
                "entries": entries,
                "files": files,
                "bytes": total_bytes,
                "seconds": round(seconds, 3),
                "peak_rss_mb": round(peak_mb, 1),
                "rss_before_walk_mb": round(baseline_mb, 1),
                "max_state_bytes": max_state,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
