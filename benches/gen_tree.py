#!/usr/bin/env python3
"""Deterministic generator of the phasekit benchmark tree.

Usage::

    python benches/gen_tree.py DEST [--files 200000] [--dirs 4700] [--seed 1]
                                    [--small] [--bytes-scale F] [--empty]
                                    [--weird-names] [--manifest PATH] [--dry-run]

Default profile (``--files 200000 --dirs 4700``), all sizes times ``--bytes-scale``:

* directories: ``--dirs`` directories *including* DEST itself, nested up to depth 6,
  grown by a mix of preferential and uniform attachment (heavy-tailed fan-out);
  files are spread over them with Pareto-distributed weights.
* ``--files`` regular-file entries (hard-link names included; the marker file
  ``.gen_tree_done`` is written on top, so ``find DEST -type f`` shows files + 1):

  - small files: log-normal, median 3.5 KiB, all under 100 KiB (~99 % of files);
  - large files: log-normal, median 220 KiB, 100 KiB .. 6 MiB (0.75 % of files as
    originals, ~1 % with the planted copies and traps);
  - a handful (6 per 200k files) of huge files, 10-50 MiB;
  - ~7,500 duplicate groups of 2-4 byte-identical files (planted copies of earlier
    files, same dir under a "copy" name or same name elsewhere); ~3 % are large/huge;
  - ~20 "near duplicate" pairs > 100 KiB, identical except one byte that the sampled
    content id does not read (see :func:`sampled_ranges`);
  - ~200 same-size-different-content files (groups of 4; every other group also
    shares its first 4 KiB);
  - ~100 hard links (some to duplicate-group members, a few inodes with 3 names);
  - ~300 empty files.

* ``--empty``: only empty files (the walk-memory profile), e.g.
  ``--files 1000000 --dirs 20000 --empty``.
* ``--small``: 2,000 files in 60 dirs (~20 MB) unless ``--files``/``--dirs`` given.
* ``--weird-names``: a few names with newline, tab, leading dash/space and invalid
  UTF-8 (off by default so line-based tool output stays parseable).

Content bytes come from ``random.Random(seed).randbytes`` in 64 KiB chunks, one seed
per distinct content, so equal specs give equal bytes. Re-running with the same
parameters on a finished tree is a no-op (parameters are kept as JSON in the marker).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field

GEN_VERSION = 1
MARKER = ".gen_tree_done"
PARTIAL = ".gen_tree_partial"
KIB = 1024
MIB = 1024 * KIB
CHUNK = 64 * KIB  # multiple of 4: keeps randbytes streams identical for equal specs
MAX_DEPTH = 6
BASE_FILES = 200_000


def _words(text: str) -> tuple[str, ...]:
    """Split a whitespace-separated word list."""
    return tuple(text.split())


WORDS = _words(
    "src lib docs data assets img photos music video build test tests config util "
    "core api web app backup archive old new tmp cache logs reports notes projects "
    "work home share misc raw final draft scans invoices 2019 2020 2021 2022 2023 "
    "alpha beta gamma delta module vendor static media fonts icons thumbs export "
    "import models results bench samples fixtures café résumé données 日本語 my files "
    "summer winter holiday release v1 v2 internal external public"
)
EXTS = {
    "small": _words(".txt .py .json .md .csv .log .html .c .rs .yaml .xml .cfg .js .png .ico .svg"),
    "large": (".jpg", ".png", ".pdf", ".bin", ".zip", ".mp3", ".docx", ".tar"),
    "huge": (".mp4", ".iso", ".tar.gz", ".mkv", ".img"),
}
COPY_PATTERNS = ("{s} (1){e}", "{s} - Copy{e}", "copy_of_{s}{e}", "{s}.bak{e}", "{s}_2{e}")
WEIRD_NAMES = (
    "new\nline.txt",
    "tab\tname.txt",
    "-leading-dash.txt",
    " leading space.txt",
    os.fsdecode(b"latin1-\xe9t\xe9.txt"),
    "trailing space .txt",
)


def sampled_ranges(size: int) -> list[tuple[int, int]]:
    """Byte ranges [start, end) that the sampled content id reads for a file of ``size``."""
    step = max(size - 16384, 0) // 4
    ranges = [(0, min(8192, size)), (max(size - 8192, 0), size)]
    ranges += [(8192 + i * step, min(8192 + i * step + 10240, size)) for i in range(4)]
    return sorted(ranges)


def unsampled_offset(size: int, rng: random.Random) -> int:
    """Pick a byte offset that no range of :func:`sampled_ranges` covers."""
    gaps, pos = [], 0
    for start, end in sampled_ranges(size):
        if start > pos:
            gaps.append((pos, start))
        pos = max(pos, end)
    if not gaps:
        raise ValueError(f"no unsampled byte in a file of {size} bytes")
    start, end = rng.choice(gaps)
    return rng.randrange(start, end)


@dataclass(slots=True)
class Content:
    """Recipe for a file's bytes: equal recipes give byte-identical files."""

    seed: int
    size: int
    flip: int = -1  # offset of a byte to invert, -1 for none
    prefix_seed: int = 0
    prefix_len: int = 0


@dataclass
class Plan:
    """Everything :func:`write_tree` needs, plus a summary and a manifest."""

    dirs: list[str]
    files: dict[str, tuple[Content, int]] = field(default_factory=dict)  # path -> (content, mtime)
    links: list[tuple[str, str]] = field(default_factory=list)  # (existing target, new name)
    manifest: dict[str, list] = field(default_factory=dict)
    summary: dict[str, object] = field(default_factory=dict)


class Namer:
    """Hands out unique names per directory."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: dict[str, set[str]] = {}

    def take(self, d: str, name: str) -> str:
        """Return ``d/name`` (or a numbered variant if taken) and reserve it."""
        used = self.used.setdefault(d, set())
        stem, dot, ext = name.partition(".")
        cand, n = name, 1
        while cand in used:
            n += 1
            cand = f"{stem}_{n}{dot}{ext}"
        used.add(cand)
        return f"{d}/{cand}" if d else cand

    def fresh(self, d: str, kind: str) -> str:
        """A new random name of the given size class in directory ``d``."""
        r = self.rng
        stem = r.choice(WORDS) + ("_" + r.choice(WORDS) if r.random() < 0.5 else "")
        if r.random() < 0.7:
            stem += f"_{r.randrange(10 ** r.randrange(1, 5))}"
        if r.random() < 0.03:
            stem = stem.replace("_", " ")
        return self.take(d, stem + r.choice(EXTS[kind]))


def make_dirs(rng: random.Random, n: int, namer: Namer) -> tuple[list[str], list[int]]:
    """Grow ``n`` directories (root "" included); return relative paths and depths."""
    paths, depths, pool = [""], [0], [0]
    for i in range(1, n):
        while True:
            p = rng.choice(pool) if rng.random() < 0.6 else rng.randrange(len(paths))
            if depths[p] < MAX_DEPTH:
                break
        paths.append(namer.take(paths[p], rng.choice(WORDS)))
        depths.append(depths[p] + 1)
        pool += (p, i)
    return paths, depths


def scaled(base: int, k: float, minimum: int) -> int:
    """Scale a default-profile count to the requested file count."""
    return max(minimum, round(base * k))


def build_plan(
    files: int, dirs: int, seed: int, bytes_scale: float, empty: bool, weird: bool
) -> Plan:
    """Decide every path, size and content recipe, deterministically from ``seed``."""
    rng = random.Random(seed)
    namer = Namer(rng)
    dir_paths, depths = make_dirs(rng, dirs, namer)
    plan = Plan(dirs=dir_paths)
    weights = [rng.paretovariate(1.1) for _ in dir_paths]
    cum = [0.0] * len(weights)
    acc = 0.0
    for i, w in enumerate(weights):
        acc += w
        cum[i] = acc
    pick_dir = iter(rng.choices(dir_paths, cum_weights=cum, k=files + 1000))
    mtime = lambda: 1_500_000_000 + rng.randrange(6 * 365 * 86400)  # noqa: E731
    plan.summary.update(dirs=len(dir_paths), max_depth=max(depths))
    if empty:
        for _ in range(files):
            d = next(pick_dir)
            plan.files[namer.take(d, f"f{rng.randrange(10**6)}")] = (Content(0, 0), 0)
        plan.summary.update(files=files, empty_files=files, bytes=0)
        return plan

    k = files / BASE_FILES
    n_empty, n_links = scaled(300, k, 3), scaled(100, k, 4)
    n_near, n_same_groups = scaled(20, k, 2), scaled(50, k, 2)
    n_groups, n_huge = scaled(7500, k, 5), round(6 * k)
    sizes_hist = rng.choices((2, 3, 4), weights=(65, 25, 10), k=n_groups)
    n_copies = sum(sizes_hist) - n_groups
    n_orig = files - n_empty - n_links - 2 * n_near - 4 * n_same_groups - n_copies
    n_large = max(2, round(0.0075 * files))
    if n_orig < n_groups + n_large + n_huge + 10:
        raise SystemExit(f"--files {files} is too small for the planted groups")

    def new_seed() -> int:
        return rng.getrandbits(64)

    def size_of(kind: str) -> int:
        if kind == "small":
            while (s := int(math.exp(rng.gauss(math.log(3.5 * KIB), 1.35)))) >= 100 * KIB:
                pass
            return max(16, int(s * bytes_scale))
        if kind == "large":
            s = 0
            while not 100 * KIB <= s <= 6 * MIB:
                s = int(math.exp(rng.gauss(math.log(220 * KIB), 0.8)))
            return max(100 * KIB + 1, int(s * bytes_scale))
        return max(100 * KIB + 1, int(rng.randrange(10 * MIB, 50 * MIB) * bytes_scale))

    def add(path: str, c: Content) -> str:
        plan.files[path] = (c, mtime())
        return path

    originals: dict[str, list[str]] = {"small": [], "large": [], "huge": []}
    kinds = ["huge"] * n_huge + ["large"] * n_large + ["small"] * (n_orig - n_huge - n_large)
    for kind in kinds:
        path = add(namer.fresh(next(pick_dir), kind), Content(new_seed(), size_of(kind)))
        originals[kind].append(path)
    n_weird = len(WEIRD_NAMES) if weird else 0
    for i, name in enumerate(WEIRD_NAMES[:n_weird]):
        new = namer.take(next(pick_dir), name)
        plan.files[new] = plan.files.pop(originals["small"][i])
        originals["small"][i] = new
    # Duplicate groups: sources are distinct originals, ~3 % large/huge.
    n_big = min(max(1, round(0.03 * n_groups)), n_large + n_huge - 1)
    big_pool = originals["huge"][: max(1, n_huge // 3)] + originals["large"]
    sources = rng.sample(big_pool, n_big)
    sources += rng.sample(originals["small"][n_weird:], n_groups - n_big - (n_weird > 0))
    sources += originals["small"][:1] if n_weird else []  # a group with a newline name
    groups = []
    for src, gsize in zip(sources, sizes_hist, strict=True):
        group = [src]
        sdir, _, sname = src.rpartition("/")
        for _ in range(gsize - 1):
            if rng.random() < 0.4:
                stem, dot, ext = sname.partition(".")
                name = rng.choice(COPY_PATTERNS).format(s=stem, e=dot + ext)
                group.append(add(namer.take(sdir, name), plan.files[src][0]))
            else:
                group.append(add(namer.take(next(pick_dir), sname), plan.files[src][0]))
        groups.append(group)
    near = []
    for _ in range(n_near):
        c = Content(new_seed(), size_of("large"))
        a = add(namer.fresh(next(pick_dir), "large"), c)
        flipped = Content(c.seed, c.size, flip=unsampled_offset(c.size, rng))
        near.append([a, add(namer.fresh(next(pick_dir), "large"), flipped)])
    same = []
    for g in range(n_same_groups):
        kind = "small" if g % 4 < 2 else "large"
        size = max(size_of(kind), 8 * KIB)
        pseed, plen = (new_seed(), 4 * KIB) if g % 2 else (0, 0)
        group = []
        for _ in range(4):  # name first, then seed: keeps the RNG order of earlier trees
            path = namer.fresh(next(pick_dir), kind)
            group.append(add(path, Content(new_seed(), size, -1, pseed, plen)))
        same.append(group)
    empties = [add(namer.fresh(next(pick_dir), "small"), Content(0, 0)) for _ in range(n_empty)]
    # Hard links: ~30 % to duplicate-group members, ~10 % a second link to the same inode.
    members = [p for g in groups for p in g]
    for _ in range(n_links):
        if plan.links and rng.random() < 0.1:
            target = plan.links[-1][0]
        else:
            target = rng.choice(members if rng.random() < 0.3 else originals["small"])
        plan.links.append((target, namer.take(next(pick_dir), target.rpartition("/")[2])))

    sizes = sorted(c.size for c, _ in plan.files.values())
    link_bytes = sum(plan.files[t][0].size for t, _ in plan.links)
    plan.summary.update(
        files=len(plan.files) + len(plan.links),
        inodes=len(plan.files),
        bytes=sum(sizes) + link_bytes,
        bytes_unique_inodes=sum(sizes),
        median_size=sizes[len(sizes) // 2],
        max_size=sizes[-1],
        frac_under_100k=round(sum(s < 100 * KIB for s in sizes) / len(sizes), 4),
        huge_files=n_huge,
        large_files=n_large,
        dup_groups=len(groups),
        dup_copies=n_copies,
        dup_group_sizes={str(s): sizes_hist.count(s) for s in (2, 3, 4)},
        dup_groups_large=n_big,
        near_dup_pairs=len(near),
        same_size_files=4 * len(same),
        hardlinks=len(plan.links),
        empty_files=len(empties),
        weird_names=n_weird,
    )
    plan.manifest = {
        "dup_groups": groups,
        "near_dup_pairs": near,
        "same_size_groups": same,
        "hardlinks": [list(x) for x in plan.links],
        "empty": empties,
    }
    return plan


def write_content(path: str, c: Content) -> None:
    """Write the bytes described by ``c`` to ``path``."""
    with open(path, "wb") as f:
        if c.size == 0:
            return
        pos = 0
        if c.prefix_len:
            f.write(random.Random(c.prefix_seed).randbytes(c.prefix_len))
            pos = c.prefix_len
        r = random.Random(c.seed)
        while pos < c.size:
            buf: bytes | bytearray = r.randbytes(min(CHUNK, c.size - pos))
            if pos <= c.flip < pos + len(buf):
                buf = bytearray(buf)
                buf[c.flip - pos] ^= 0xFF
            f.write(buf)
            pos += len(buf)


def write_tree(plan: Plan, dest: str) -> None:
    """Create directories, files and hard links of ``plan`` under ``dest``."""
    for d in plan.dirs[1:]:
        os.mkdir(os.path.join(dest, d))
    for rel in sorted(plan.files):
        c, mt = plan.files[rel]
        path = os.path.join(dest, rel)
        if c.size == 0 and not mt:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644))
            continue
        write_content(path, c)
        os.utime(path, (mt, mt))
    for target, name in plan.links:
        os.link(os.path.join(dest, target), os.path.join(dest, name))


def prepare_dest(dest: str, params: dict[str, object]) -> bool:
    """Return True if ``dest`` already holds this tree; otherwise make it empty.

    Only a tree this script made (marker or partial marker present) is removed.
    """
    marker = os.path.join(dest, MARKER)
    if os.path.isfile(marker):
        with open(marker, encoding="utf-8") as f:
            if json.load(f).get("params") == params:
                return True
    if os.path.isdir(dest) and os.listdir(dest):
        if not (os.path.exists(marker) or os.path.exists(os.path.join(dest, PARTIAL))):
            raise SystemExit(f"{dest} is not empty and was not made by gen_tree.py; refusing")
        shutil.rmtree(dest)
    os.makedirs(dest, exist_ok=True)
    return False


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dest")
    ap.add_argument("--files", type=int, default=None, help="regular-file entries (default 200000)")
    ap.add_argument("--dirs", type=int, default=None, help="directories incl. DEST (default 4700)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bytes-scale", type=float, default=1.0, help="multiply file sizes")
    ap.add_argument("--small", action="store_true", help="2000 files / 60 dirs (~20 MB)")
    ap.add_argument("--empty", action="store_true", help="only empty files")
    ap.add_argument("--weird-names", action="store_true", help="plant newline/tab/non-UTF-8 names")
    ap.add_argument("--manifest", help="write planted groups (relative paths) as JSON here")
    ap.add_argument("--dry-run", action="store_true", help="print the summary, write nothing")
    a = ap.parse_args(argv)
    files = a.files if a.files is not None else (2000 if a.small else BASE_FILES)
    dirs = a.dirs if a.dirs is not None else (60 if a.small else 4700)
    params: dict[str, object] = {
        "version": GEN_VERSION,
        "files": files,
        "dirs": dirs,
        "seed": a.seed,
        "bytes_scale": a.bytes_scale,
        "empty": a.empty,
        "weird_names": a.weird_names,
    }
    dest = os.path.abspath(a.dest)
    up_to_date = not a.dry_run and prepare_dest(dest, params)
    if up_to_date:
        print(f"{dest}: up to date ({MARKER} matches)", file=sys.stderr)
        if not a.manifest:
            return 0
    t0 = time.perf_counter()
    plan = build_plan(files, dirs, a.seed, a.bytes_scale, a.empty, a.weird_names)
    t_plan = time.perf_counter() - t0
    if up_to_date:  # only the manifest was asked for
        with open(a.manifest, "w", encoding="utf-8") as f:
            json.dump(plan.manifest, f)
        return 0
    if not a.dry_run:
        with open(os.path.join(dest, PARTIAL), "w", encoding="utf-8") as f:
            json.dump(params, f)
        write_tree(plan, dest)
    plan.summary.update(seconds_plan=round(t_plan, 2), seconds=round(time.perf_counter() - t0, 2))
    record = {"params": params, "summary": plan.summary}
    if a.manifest:
        with open(a.manifest, "w", encoding="utf-8") as f:
            json.dump(plan.manifest, f)
    if not a.dry_run:
        with open(os.path.join(dest, MARKER), "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)
        os.remove(os.path.join(dest, PARTIAL))
    json.dump(record, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
