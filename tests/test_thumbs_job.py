"""The thumbnail job through the public API and the command line: one
sidecar set per content, damaged images as non-critical errors, sidecars of
contents gone removed, truncated sidecars made again, kill -9 and resume
without making an image twice."""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

from phasekit.indexing import IndexJob
from phasekit.jobs import JobStatus
from phasekit.library import Library
from phasekit.thumbs import DEFAULT_VARIANTS, ThumbsJob, ThumbsSummary, sidecar_path
from test_indexing import cli, subprocess_env

from conftest import BAD_NAME, after, kill_when


def photo(path: Path, seed: int, size: tuple[int, int] = (640, 480)) -> None:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (size[1] // 16 + 1, size[0] // 16 + 1, 3), np.uint8)
    im = Image.fromarray(base).resize(size, Image.Resampling.BILINEAR)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, "JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else None, quality=90)


def album(root: Path, count: int = 12) -> None:
    for i in range(count):
        photo(root / ("caf\udce9" if i % 2 else "n\nl") / f"p{i}.jpg", i)
    photo(root / "png" / "a.png", 99)
    shutil.copy(root / "n\nl" / "p0.jpg", root / os.fsdecode(BAD_NAME.replace(b".bin", b".JPG")))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    (root / "notes.txt").write_text("not an image")


def indexed(library: Library, root: Path) -> int:
    location = library.add_location(root, mode="content")
    assert library.run(IndexJob(location_id=location.id)).status is JobStatus.COMPLETED
    return location.id


def sidecar_sets(lib: Path) -> set[str]:
    root = lib / "sidecars"
    return {d.name for shard in root.iterdir() for d in shard.iterdir()} if root.exists() else set()


def test_one_set_per_content_errors_and_cleanup(tmp_path):
    root, lib = tmp_path / "album", tmp_path / "lib"
    album(root)
    with Library.open(lib) as library:
        location_id = indexed(library, root)
        run = library.run(ThumbsJob(location_id))
        summary = run.output()
        assert isinstance(summary, ThumbsSummary)
        assert run.status is JobStatus.COMPLETED_WITH_ERRORS  # broken.jpg
        assert [e.path for e in run.errors()] == [str(root / "broken.jpg")]
        assert summary.images == 15
        assert summary.contents == 14  # the copy of p0 shares its content
        assert summary.made == 13
        assert summary.variants_made == 13 * 3
        assert len(sidecar_sets(lib)) == 13
        copy = library.entry(library.location(location_id), root / "n\nl" / "p0.jpg")
        assert copy is not None
        for variant in DEFAULT_VARIANTS:
            path = library.thumbnail(copy, variant.name)
            assert path is not None
            with Image.open(path) as im:
                assert max(im.size) == min(variant.size, 640)

        # Nothing left to do; a truncated sidecar counts as missing.
        again = library.run(ThumbsJob(location_id)).output()
        assert isinstance(again, ThumbsSummary)
        assert again.made == 0
        grid = library.thumbnail(copy, "grid")
        assert grid is not None
        grid.write_bytes(grid.read_bytes()[:100])
        assert library.thumbnail(copy, "grid") is None
        fixed = library.run(ThumbsJob(location_id)).output()
        assert isinstance(fixed, ThumbsSummary)
        assert (fixed.made, fixed.variants_made) == (1, 1)

        # Both copies deleted and re-indexed: the content's sidecars go.
        cas = copy.cas_id
        assert cas is not None
        (root / "n\nl" / "p0.jpg").unlink()
        (root / os.fsdecode(BAD_NAME.replace(b".bin", b".JPG"))).unlink()
        library.run(IndexJob(location_id=location_id))
        cleaned = library.run(ThumbsJob(location_id)).output()
        assert isinstance(cleaned, ThumbsSummary)
        assert cleaned.removed == 1
        assert cas not in sidecar_sets(lib)
        assert library.thumbnail(cas) is None


def test_cli(tmp_path):
    root, lib = tmp_path / "album", tmp_path / "lib"
    album(root, count=3)
    not_indexed = cli("thumbs", str(root), library=lib)
    assert not_indexed.returncode == 2
    assert "index it first" in not_indexed.stderr
    assert cli("index", str(root), "--mode", "content", library=lib).returncode == 0
    done = cli("thumbs", str(root), "--variant", "small:64:70", "--json", library=lib)
    assert done.returncode == 1, done.stderr  # broken.jpg
    summary = json.loads(done.stdout)
    assert (summary["made"], summary["variants_made"]) == (4, 4)
    assert "broken.jpg" in done.stderr
    bad = cli("thumbs", str(root), "--variant", "../x:64", library=lib)
    assert bad.returncode == 2


MAKER = textwrap.dedent(
    """
    import sys
    from phasekit.library import Library
    from phasekit.thumbs import ThumbsJob
    with Library.open(sys.argv[1]) as library:
        print("ready", flush=True)
        library.run(ThumbsJob(int(sys.argv[2]), batch=4, threads=2))
    """
)


def test_kill_at_several_moments_then_resume(tmp_path):
    root, lib = tmp_path / "album", tmp_path / "lib"
    for i in range(60):
        photo(root / f"d{i % 3}" / f"big{i}\udcff.jpg", i, size=(2000, 1500))
    with Library.open(lib) as library:
        location_id = indexed(library, root)
    made_before = []
    for delay in (0.6, 1.2, 0.9):
        argv = [sys.executable, "-c", MAKER, str(lib), str(location_id)]
        kill_when(argv, after(delay), env=subprocess_env())
        # Every sidecar under its final name is whole.
        with Library.open(lib) as library:
            for cas in sidecar_sets(lib):
                for variant in DEFAULT_VARIANTS:
                    path = sidecar_path(lib, cas, variant.name)
                    if path.exists():
                        with Image.open(path) as im:
                            im.load()
                            assert max(im.size) == min(variant.size, 2000)
        made_before.append(
            sum(
                1
                for cas in sidecar_sets(lib)
                if all(sidecar_path(lib, cas, v.name).exists() for v in DEFAULT_VARIANTS)
            )
        )
    assert made_before[-1] < 60, "the job finished before a kill: make the images bigger"
    assert made_before[-1] > 0, "nothing was made before the kills: wait longer"
    # What the killed runs completed, with when it was written.
    before = {
        p: p.stat().st_mtime_ns for p in (lib / "sidecars").rglob("*.webp") if p.stat().st_size
    }
    done = cli("resume", "--json", library=lib)
    assert done.returncode == 0, done.stderr
    # The resumed run made only what was left: nothing done before is redone.
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in before.items())
    assert len(sidecar_sets(lib)) == 60
    assert sum(1 for _ in (lib / "sidecars").rglob("*.webp")) == 60 * len(DEFAULT_VARIANTS)
    assert not list((lib / "sidecars").rglob("*.tmp"))
    with Library.open(lib) as library:
        again = library.run(ThumbsJob(location_id)).output()
        assert isinstance(again, ThumbsSummary)
        assert again.made == 0


def test_a_resumed_run_does_not_retry_or_recount_failed_images(tmp_path, caplog):
    import anyio

    root, lib = tmp_path / "album", tmp_path / "lib"
    for i in range(36):
        photo(root / f"p{i}.jpg", i, size=(1600, 1200))
    for i in range(4):
        (root / f"broken{i}\xff.jpg").write_bytes(b"\xff\xd8\xff\xe0 damaged %d" % i * 40)

    async def main(
        library: Library, location_id: int
    ) -> tuple[JobStatus, JobStatus, ThumbsSummary | None]:
        async with library.jobs() as manager:
            handle = await manager.dispatch(ThumbsJob(location_id, batch=1, threads=1))
            # Until 28 of the 40 are done: damaged ones among them (but for a
            # 0.5 % chance), and 12 left for the resumed run.
            while True:
                progress = handle.progress
                if handle.status.finished or (progress is not None and (progress.done or 0) >= 28):
                    break
                await anyio.sleep(0.01)
            await handle.pause()
            paused = await handle.wait()
            await handle.resume()
            finished = await handle.wait()
            return paused, finished, handle.output()

    with Library.open(lib) as library:
        location_id = indexed(library, root)
        paused, finished, summary = anyio.run(main, library, location_id)
    assert paused is JobStatus.PAUSED
    assert finished is JobStatus.COMPLETED_WITH_ERRORS
    assert isinstance(summary, ThumbsSummary)
    assert (summary.made, summary.errors) == (36, 4)
    # Each damaged image was tried once, before or after the pause.
    tried = [r for r in caplog.records if "damaged or unsupported image" in r.getMessage()]
    assert len(tried) == 4
    assert len(sidecar_sets(lib)) == 36
