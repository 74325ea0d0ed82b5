#!/usr/bin/env python3
"""Duplicate groups as found by ``jdupes``, for cross-checking phasekit's results.

``jdupes_groups(tree)`` runs ``jdupes -r -q -0 TREE`` and returns a set of frozensets
of paths (as jdupes prints them, i.e. prefixed by ``tree`` exactly as given).
``-0`` / ``--print-null`` ends every path with NUL and every set with one more NUL,
so names containing newlines are parsed correctly; paths are decoded with
``os.fsdecode`` (surrogateescape), so non-UTF-8 names round-trip to ``os`` calls.
:func:`parse_jdupes_output` also reads the default newline format (sets separated by
blank lines), which cannot represent names that contain a newline.

Observed behaviour of jdupes 1.21.3 (Debian 12), checked on a small tree:

* Hard links, default: two names of one inode are *not* duplicates of each other;
  an inode whose only "copies" are its own hard links appears in no set.
* Hard links plus a real copy: if ``a`` and ``b`` are hard links to one inode and
  ``c`` is a byte-identical separate file, the set is ``{one of a/b, c}``: exactly one
  name per inode is listed. *Which* name is not defined (it follows directory read
  order, e.g. ``a/w2`` rather than ``a/w1`` was kept), so compare groups per inode;
  :func:`inode_groups` does that.
* ``-H`` / ``--hard-links`` lists every name: ``{a, b}`` alone becomes a set and the
  copy case becomes ``{a, b, c}``.
* Empty files: never matched by default (this build has no ``-n``; it rejects it with
  "using '-n' is not supported in this build"); ``-z`` / ``--zero-match`` puts all
  empty files into one set.
* No duplicates: empty stdout, "No duplicates found." on stderr, exit status 0. A
  missing directory is only a warning on stderr (exit 0), so the tree is checked
  here before running.

fdupes 2.2.0 lists hard links the same way, but *does* match empty files unless
``-n`` / ``--noempty`` is given.

CLI: ``python benches/jdupes_groups.py TREE [--manifest M.json]`` prints counts and,
given the manifest written by ``gen_tree.py --manifest``, checks that jdupes' groups
equal the planted duplicate groups when compared per inode.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence


def parse_jdupes_output(data: bytes, nul: bool = True) -> set[frozenset[str]]:
    """Parse jdupes' printed match sets.

    ``nul=True`` expects ``-0`` output (``path\\0path\\0\\0path...``); ``nul=False``
    expects the default output (one path per line, sets separated by a blank line).
    """
    sep = b"\0" if nul else b"\n"
    groups: set[frozenset[str]] = set()
    current: list[str] = []
    for rec in data.split(sep):
        if not nul:
            rec = rec.removesuffix(b"\r")
        if rec:
            current.append(os.fsdecode(rec))
        elif current:
            groups.add(frozenset(current))
            current = []
    if current:
        groups.add(frozenset(current))
    return groups


def jdupes_groups(tree: str, extra_args: Sequence[str] = ()) -> set[frozenset[str]]:
    """Run ``jdupes -r -q -0 [extra_args] tree`` and return its duplicate sets."""
    if not os.path.isdir(tree):
        raise FileNotFoundError(tree)
    cmd = ["jdupes", "-r", "-q", "-0", *extra_args, tree]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout
    return parse_jdupes_output(out, nul=True)


def inode_groups(groups: Iterable[Iterable[str]]) -> set[frozenset[tuple[int, int]]]:
    """Map each group of paths to the set of ``(st_dev, st_ino)`` it covers.

    Groups that cover a single inode (only hard links) are dropped, which makes
    jdupes' default output and a tool that lists every name comparable.
    """
    result = set()
    for group in groups:
        keys = set()
        for p in group:
            st = os.lstat(p)
            keys.add((st.st_dev, st.st_ino))
        if len(keys) > 1:
            result.add(frozenset(keys))
    return result


def main(argv: list[str] | None = None) -> int:
    """Print jdupes' group counts for a tree; optionally check a gen_tree manifest."""
    ap = argparse.ArgumentParser(description="jdupes duplicate groups of a tree")
    ap.add_argument("tree")
    ap.add_argument("--manifest", help="gen_tree.py --manifest JSON to compare with")
    ap.add_argument("extra", nargs="*", help="extra jdupes arguments (after --)")
    a = ap.parse_args(argv)
    groups = jdupes_groups(a.tree, a.extra)
    print(f"jdupes: {len(groups)} groups, {sum(map(len, groups))} paths")
    if not a.manifest:
        return 0
    with open(a.manifest, encoding="utf-8") as f:
        planted = json.load(f)["dup_groups"]
    want = inode_groups([os.path.join(a.tree, p) for p in g] for g in planted)
    got = inode_groups(groups)
    print(f"planted: {len(want)} groups; equal per inode: {want == got}")
    if want != got:
        print(f"  only jdupes: {len(got - want)}, only planted: {len(want - got)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
