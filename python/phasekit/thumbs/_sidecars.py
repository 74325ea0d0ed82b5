"""Where thumbnails live: ``sidecars/<first two hex of cas_id>/<cas_id>/
<variant>.webp`` in the library folder, one set per content however many
copies of it exist. Written to a temporary name beside the final one and
renamed, so a file under its final name is whole; one that is not (damaged
by something else) counts as missing."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import InvalidInputError

SIDECARS_DIR = "sidecars"
_CAS_ID = re.compile(r"^[0-9a-f]{16,64}$")


def sidecar_path(library_dir: Path, cas_id: str, variant: str) -> Path:
    """The path of one variant of the content ``cas_id``."""
    if not isinstance(cas_id, str) or not _CAS_ID.match(cas_id):
        raise InvalidInputError(f"not a cas_id: {cas_id!r}")
    return library_dir / SIDECARS_DIR / cas_id[:2] / cas_id / f"{variant}.webp"


def write_sidecar(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary name in its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temp, "wb") as f:
        f.write(data)
    os.replace(temp, path)


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
