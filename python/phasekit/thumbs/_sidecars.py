"""Where thumbnails live: ``sidecars/<first two hex of cas_id>/<cas_id>/
<variant>.webp`` in the library folder, one set per content however many
copies of it exist. Written to a temporary name beside the final one and
renamed, so a file under its final name is whole; one that is not (damaged
by something else) counts as missing."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import InvalidInputError
from ._variants import VARIANT_NAME

SIDECARS_DIR = "sidecars"
#: What a cas_id looks like (hex).
CAS_ID = re.compile(r"^[0-9a-f]{16,64}$")


def sidecar_path(library_dir: Path, cas_id: str, variant: str) -> Path:
    """The path of one variant of the content ``cas_id``."""
    if not isinstance(cas_id, str) or not CAS_ID.match(cas_id):
        raise InvalidInputError(f"not a cas_id: {cas_id!r}")
    if not isinstance(variant, str) or not VARIANT_NAME.match(variant):
        raise InvalidInputError(f"not a variant name: {variant!r}")
    return library_dir / SIDECARS_DIR / cas_id[:2] / cas_id / f"{variant}.webp"


#: A temporary file older than this is a leftover, whoever wrote it.
STALE_TEMP_S = 3600.0


def write_sidecar(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary name in its folder
    (``.<name>.<pid>.<random>.tmp``: unique to this write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
    try:
        with open(temp, "wb") as f:
            f.write(data)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def stale_temp(path: Path) -> bool:
    """Whether the temporary file ``path`` (see :func:`write_sidecar`) was
    left behind: its process is gone from this machine, or it is old."""
    parts = path.name.split(".")
    try:
        age = time.time() - path.stat().st_mtime
        pid = int(parts[-3])
    except (OSError, ValueError, IndexError):
        return False
    if age > STALE_TEMP_S:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False


def shards(library_dir: Path) -> list[Path]:
    """The shard folders of a library's sidecars (``sidecars/<2 hex>``), by name."""
    root = library_dir / SIDECARS_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir())


def sweep_shard(
    shard: Path,
    *,
    gone: Callable[[str], bool] | None,
    keep: set[str] | None,
    stale: Callable[[Path], bool],
) -> tuple[int, int, int]:
    """Tidy one shard folder of sidecars: remove the temporary files that
    ``stale`` says were left behind (a write in flight is not), the folders
    of contents that ``gone`` says the library no longer has (None: none are
    looked for), and, with ``keep`` (file names), the files of variants not
    in it. Returns ``(folders removed, variant files removed, temporary
    files removed)``. Names that are not a cas_id's are not ours: left."""
    removed = dropped = temps = 0
    for folder in sorted(shard.iterdir()) if shard.is_dir() else ():
        if not folder.is_dir() or not CAS_ID.match(folder.name):
            continue
        for stray in folder.glob(".*.tmp"):
            if stale(stray):
                stray.unlink(missing_ok=True)
                temps += 1
        if gone is not None and gone(folder.name):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
        elif keep is not None:
            for old in folder.glob("*.webp"):
                if old.name not in keep:
                    old.unlink(missing_ok=True)
                    dropped += 1
    return removed, dropped, temps


def valid_sidecar(path: Path, longest: int) -> bool:
    """Whether ``path`` is a whole WebP thumbnail no larger than ``longest``
    on its longest side (decoded to be sure: a truncated file may still have
    a readable header)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.format != "WEBP" or max(im.size) > longest:
                return False
            im.load()
    except (OSError, SyntaxError, ValueError, EOFError):
        return False
    return True


def _webp_size(head: bytes) -> tuple[int, int] | None:
    """Width and height from a WebP file's first 30 bytes (RIFF header and
    first chunk: VP8, VP8L or VP8X), None if it is not one."""
    if len(head) < 30 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return None
    chunk = head[12:16]
    if chunk == b"VP8 ":
        return int.from_bytes(head[26:28], "little") & 0x3FFF, int.from_bytes(
            head[28:30], "little"
        ) & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1
    return None


def sidecar_longest(path: Path, written_since: float | None = None) -> int | None:
    """The longest side of the WebP at ``path`` if it is whole, else None.
    A quick check (one small read, no decode): its RIFF header gives the
    length the file must have, so a truncated one is caught. With
    ``written_since``, it must also have been written since then."""
    try:
        with open(path, "rb") as f:
            head = f.read(30)
            st = os.fstat(f.fileno())
    except OSError:
        return None
    if written_since is not None and st.st_mtime < written_since:
        return None
    size = _webp_size(head)
    if size is None or min(size) < 1 or int.from_bytes(head[4:8], "little") + 8 != st.st_size:
        return None
    return max(size)


def sidecar_ok(path: Path, longest: int, written_since: float | None = None) -> bool:
    """Whether ``path`` is a whole WebP (see :func:`sidecar_longest`) of at
    most ``longest`` pixels on its longest side."""
    made = sidecar_longest(path, written_since)
    return made is not None and made <= longest
