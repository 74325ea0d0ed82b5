#!/usr/bin/env python3
"""Thumbnails: phasekit against a one-thread Pillow loop and vipsthumbnail.

    python benches/bench_thumbs.py [--rounds 2] [--big 300] [--small 300]

The images (made once, kept in ``$PHASEKIT_BENCH_DIR/thumbs``): ``--big``
4000 x 3000 JPEGs and ``--small`` 1200 x 900 ones, photographic-looking
(smooth colour fields with fine noise, quality 90, not flat colour). The
three default variants (256, 512, 1024; WebP) of each, made by:

* ``phasekit thumbs`` (a new library, the folder indexed in content mode
  outside the timing), with its default threads;
* a one-thread Pillow loop, per image and per variant: open,
  ``ImageOps.exif_transpose``, ``thumbnail``, save WebP (what an
  application would write);
* ``vipsthumbnail`` (Debian ``libvips-tools``), one run per variant over
  the files, two processes side by side (``xargs -P 2``).

Each round runs every contender once, in a new random order, as a new
process, into an empty output folder. Prints images/s, ratios (per round,
median) and the peak RSS of each contender's largest process. Nothing is
asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from conftest import BENCH_DIR

VARIANTS = ((256, 75), (512, 78), (1024, 82))

PILLOW_LOOP = """
import os, sys
from PIL import Image, ImageOps
src, out = sys.argv[1], sys.argv[2]
for name in sorted(os.listdir(src)):
    for size, quality in ((256, 75), (512, 78), (1024, 82)):
        with Image.open(os.path.join(src, name)) as im:
            im = ImageOps.exif_transpose(im)
            im.thumbnail((size, size))
            im.save(os.path.join(out, f"{name}.{size}.webp"), "WEBP", quality=quality)
"""

# Runs argv and prints the peak RSS (KiB) of the largest process it started.
MEASURE = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
    "stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def make_images(folder: Path, big: int, small: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for count, (w, h), prefix in ((big, (4000, 3000), "big"), (small, (1200, 900), "small")):
        for i in range(count):
            path = folder / f"{prefix}{i:04d}.jpg"
            if path.exists():
                continue
            field = rng.integers(0, 255, (h // 64 + 2, w // 64 + 2, 3), np.uint8)
            im = Image.fromarray(field).resize((w, h), Image.Resampling.BICUBIC)
            noise = rng.integers(-12, 12, (h, w, 3), np.int16)
            pixels = np.clip(np.asarray(im, np.int16) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(path, quality=90)
    return folder


def contenders(images: Path, lib: Path, out: Path) -> dict[str, list[str] | str | None]:
    phasekit = str(Path(sys.executable).with_name("phasekit"))
    vips = None
    if shutil.which("vipsthumbnail"):
        # One vipsthumbnail per variant over the files, 2 processes side by side.
        runs = "; ".join(
            f"ls {images}/*.jpg | xargs -P 2 -n 50 vipsthumbnail --size {size} "
            f"-o {out}/%s.{size}.webp[Q={quality}]"
            for size, quality in VARIANTS
        )
        vips = runs
    return {
        "phasekit thumbs": [phasekit, "--library", str(lib), "thumbs", str(images)],
        "Pillow loop (1 thread)": [sys.executable, "-c", PILLOW_LOOP, str(images), str(out)],
        "vipsthumbnail (2 processes)": vips,
    }


def timed(argv: list[str] | str) -> tuple[float, int]:
    command = ["bash", "-c", argv] if isinstance(argv, str) else argv
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], capture_output=True, text=True, check=True
    )
    return time.perf_counter() - start, int(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--big", type=int, default=300)
    parser.add_argument("--small", type=int, default=300)
    args = parser.parse_args(argv)
    images = make_images(BENCH_DIR / f"thumbs-{args.big}-{args.small}", args.big, args.small)
    count = args.big + args.small
    work = Path(tempfile.mkdtemp(prefix="pk-thumbs-", dir=BENCH_DIR))
    lib, out = work / "library", work / "out"
    try:
        subprocess.run(
            [str(Path(sys.executable).with_name("phasekit")), "--library", str(lib), "index",
             str(images), "--mode", "content"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        table = contenders(images, lib, out)
        missing = [name for name, argv in table.items() if argv is None]
        runs = {name: argv for name, argv in table.items() if argv is not None}
        times: dict[str, list[float]] = {name: [] for name in runs}
        rss: dict[str, int] = {}
        for r in range(args.rounds):
            order = list(runs)
            random.shuffle(order)
            line = []
            for name in order:
                shutil.rmtree(lib / "sidecars", ignore_errors=True)
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir(parents=True)
                os.sync()
                seconds, peak = timed(runs[name])
                times[name].append(seconds)
                rss[name] = max(rss.get(name, 0), peak)
                line.append(f"{name} {seconds:.2f} s")
            print(f"round {r + 1}: " + ", ".join(line), flush=True)
        ours = "phasekit thumbs"
        result: dict[str, object] = {"images": count, "missing": missing}
        for name, values in times.items():
            median = statistics.median(values)
            entry: dict[str, object] = {
                "median_s": round(median, 2),
                "images_per_s": round(count / median, 1),
                "peak_rss_mb": round(rss[name] / 1024),
            }
            if name != ours:
                ratios = [o / p for o, p in zip(values, times[ours], strict=True)]
                entry[f"/ {ours}"] = round(statistics.median(ratios), 2)
            result[name] = entry
        print(json.dumps(result, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
