"""Thumbnails as a library makes them: its own variants (stored in
library.db, seen by every process), variants whose size changed made again
and those no longer listed removed, and a deep index making them as a child
job (under a manager, from the command line, and by ``phasekit resume``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from PIL import Image

from phasekit.errors import InvalidInputError
from phasekit.indexing import IndexJob
from phasekit.jobs import JobStatus
from phasekit.library import Library
from phasekit.thumbs import DEFAULT_VARIANTS, ThumbsJob, ThumbsSummary, Variant, sidecar_path
from test_indexing import cli, subprocess_env
from test_thumbs_job import album, indexed, photo, sidecar_sets

SMALL = Variant("grid", 300, 75)


def test_the_library_keeps_its_variants(tmp_path):
    lib = tmp_path / "lib"
    with Library.open(lib) as library:
        assert library.thumbnail_variants() == DEFAULT_VARIANTS
        library.set_thumbnail_variants([SMALL, {"name": "big", "size": 2048}])
        for bad in (
            [],
            [SMALL, SMALL],
            [{"name": "x", "size": 0}],
            [{"name": "../x", "size": 64}],
            [{"nom": "x"}],
            "grid:256",
        ):
            with pytest.raises(InvalidInputError):
                library.set_thumbnail_variants(bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError):
            library.set_setting("app.when", object())
        for key in ("", "app.\udce9", "a\nb", 5):
            with pytest.raises(InvalidInputError):
                library.set_setting(key, 1)  # type: ignore[arg-type]
        library.set_setting("app.é", {"n\nl": ["caf\udce9"]})
    # Another process sees them.
    code = (
        "import sys; from phasekit.library import Library\n"
        "with Library.open(sys.argv[1]) as lib:\n"
        "    print([(v.name, v.size, v.quality) for v in lib.thumbnail_variants()])\n"
        "    print(ascii(lib.setting('app.é')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(lib)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=True,
    ).stdout.splitlines()
    assert out == ["[('grid', 300, 75), ('big', 2048, 80)]", "{'n\\nl': ['caf\\udce9']}"]
    with Library.open(lib) as library:
        library.set_thumbnail_variants(None)
        assert library.thumbnail_variants() == DEFAULT_VARIANTS
        assert library.setting("absent", 7) == 7


def test_changed_variants_are_made_again_and_dropped_ones_removed(tmp_path):
    root, lib = tmp_path / "album", tmp_path / "lib"
    album(root, count=4)
    photo(root / "tiny.jpg", 50, size=(200, 150))  # smaller than every variant
    with Library.open(lib) as library:
        location_id = indexed(library, root)
        first = library.run(ThumbsJob(location_id)).output()
        assert isinstance(first, ThumbsSummary)
        assert first.made == 6  # 4 photos, a.png, tiny.jpg (broken.jpg fails)
        cas = {e.name: e.cas_id for e in library.entries(location_id) if e.cas_id}

        def stat(name: str, variant: str) -> tuple[int, int]:
            st = sidecar_path(lib, cas[name], variant).stat()
            return st.st_ino, st.st_mtime_ns

        detail_before = {n: stat(n, "detail") for n in ("p1.jpg", "tiny.jpg")}
        tiny_grid = stat("tiny.jpg", "grid")
        # grid raised from 256 to 300, grid@2x no longer wanted.
        library.set_thumbnail_variants([SMALL, DEFAULT_VARIANTS[2]])
        again = library.run(ThumbsJob(location_id)).output()
        assert isinstance(again, ThumbsSummary)
        # The 640x480 images get a new grid; tiny.jpg's 200 px grid is right.
        assert (again.made, again.variants_made) == (5, 5)
        assert again.variants_removed == 6
        with Image.open(sidecar_path(lib, cas["p1.jpg"], "grid")) as im:
            assert im.size == (300, 225)
        assert stat("tiny.jpg", "grid") == tiny_grid
        assert {n: stat(n, "detail") for n in detail_before} == detail_before
        assert not list((lib / "sidecars").glob("*/*/grid@2x.webp"))
        # Nothing left to do.
        done = library.run(ThumbsJob(location_id)).output()
        assert isinstance(done, ThumbsSummary)
        assert (done.made, done.variants_removed) == (0, 0)
        # A job given its own variants makes them and removes nothing.
        own = library.run(ThumbsJob(location_id, variants=[{"name": "x", "size": 32}]))
        summary = own.output()
        assert isinstance(summary, ThumbsSummary)
        assert (summary.made, summary.variants_removed) == (6, 0)
        assert len(list((lib / "sidecars").glob("*/*/grid.webp"))) == 6


def test_cleanup_leaves_what_is_not_a_content_folder(tmp_path):
    root, lib = tmp_path / "album", tmp_path / "lib"
    album(root, count=2)
    with Library.open(lib) as library:
        location_id = indexed(library, root)
        for stray in ("zz/notes", "ab/ABCDEF0123456789", "ab/0123"):
            (lib / "sidecars" / stray).mkdir(parents=True)
        (lib / "sidecars" / "README").write_text("the application's own")
        (lib / "sidecars" / "ab" / "file").write_text("x")
        gone = lib / "sidecars" / "00" / ("00" * 8)  # a content folder of no content
        gone.mkdir(parents=True)
        summary = library.run(ThumbsJob(location_id)).output()
        assert isinstance(summary, ThumbsSummary)
        assert summary.removed == 1
        assert not gone.exists()
        for stray in ("zz/notes", "ab/ABCDEF0123456789", "ab/0123", "README", "ab/file"):
            assert (lib / "sidecars" / stray).exists(), stray


def test_a_deep_index_makes_thumbnails_as_a_child_job(tmp_path):
    anyio.run(_deep_index_under_a_manager, tmp_path)


async def _deep_index_under_a_manager(tmp_path: Path) -> None:
    root, lib = tmp_path / "album", tmp_path / "lib"
    album(root, count=3)
    with Library.open(lib) as library:
        location = library.add_location(root, mode="deep")
        async with library.jobs() as manager:
            handle = await manager.dispatch(IndexJob(location.id))
            assert await handle.wait() is JobStatus.COMPLETED
            children = manager.store.children(handle.id)
            assert len(children) == 1
            child = manager.handle(next(iter(children)))
            assert child.record.name == "phasekit.thumbs"
            assert await child.wait() is JobStatus.COMPLETED_WITH_ERRORS  # broken.jpg
            summary = child.output()
            assert isinstance(summary, ThumbsSummary)
            assert summary.made == 4
        assert len(sidecar_sets(lib)) == 4


def test_deep_index_from_the_command_line_leaves_nothing_queued(tmp_path):
    root, lib = tmp_path / "album", tmp_path / "lib"
    album(root, count=3)
    done = cli("index", str(root), "--mode", "deep", "--json", library=lib)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["status"] == "completed"
    assert out["thumbnails"]["status"] == "completed_with_errors"
    assert (out["thumbnails"]["made"], out["thumbnails"]["errors"]) == (4, 1)
    samples = out["thumbnails"]["error_samples"]
    assert [e["path"] for e in samples] == [str(root / "broken.jpg")]
    text = cli("index", str(root), library=lib)
    assert text.returncode == 0, text.stderr
    assert "made 0 (0 variants)" in text.stdout
    with Library.open(lib) as library:
        store = library.jobs().store
        assert [r.status.value for r in store.list_jobs(JobStatus.QUEUED)] == []
    assert len(sidecar_sets(lib)) == 4


def test_resume_runs_the_thumbnails_a_finished_deep_index_queued(tmp_path):
    root, lib = tmp_path / "album", tmp_path / "lib"
    album(root, count=3)
    with Library.open(lib) as library:
        location = library.add_location(root, mode="deep")
        assert library.run(IndexJob(location.id)).status is JobStatus.COMPLETED
    assert sidecar_sets(lib) == set()  # a direct run leaves its child queued
    resumed = cli("resume", "--json", library=lib)
    assert resumed.returncode == 1, resumed.stderr  # broken.jpg
    assert json.loads(resumed.stdout)["made"] == 4
    assert len(sidecar_sets(lib)) == 4


def test_cleanup_waits_while_identities_wait_for_their_links(tmp_path):
    """Contents hashed by a content step that defers its links (stopped
    before its link pass) have no identity yet: the thumbnail job makes
    their thumbnails and removes none of them."""
    root, lib = tmp_path / "album", tmp_path / "lib"
    photo(root / "p.jpg", 1, size=(300, 200))
    with Library.open(lib) as library:
        location = library.add_location(root, mode="shallow")
        library.index(location)
        library.set_mode(location, "content")
        library.defer_links(location)
        assert library.hash_missing(location).hashed == 1
        run = library.run(ThumbsJob(location.id))
        summary = run.output()
        assert isinstance(summary, ThumbsSummary)
        assert (summary.made, summary.removed) == (1, 0)
        assert any("not all linked" in w for w in run.warnings())
        entry = library.entry(location, root / "p.jpg")
        assert entry is not None
        assert library.thumbnail(entry) is not None


def test_an_image_gone_keeps_its_whole_thumbnails(tmp_path):
    """A small image's thumbnails are checked against its own size, read
    from the file: when the file cannot be read any more, the whole
    thumbnails it has are kept, with no error."""
    root, lib = tmp_path / "album", tmp_path / "lib"
    photo(root / "small.jpg", 2, size=(300, 200))
    with Library.open(lib) as library:
        location_id = indexed(library, root)
        first = library.run(ThumbsJob(location_id)).output()
        assert isinstance(first, ThumbsSummary)
        assert first.made == 1
        (root / "small.jpg").rename(tmp_path / "elsewhere.jpg")
        run = library.run(ThumbsJob(location_id))
        again = run.output()
        assert run.status is JobStatus.COMPLETED
        assert isinstance(again, ThumbsSummary)
        assert (again.made, again.errors) == (0, 0)
