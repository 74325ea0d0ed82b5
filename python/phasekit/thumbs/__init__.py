"""Thumbnails: WebP variants of every image, made once per content.

:func:`make_variants` decodes an image once (at reduced size where the
format allows), applies its EXIF orientation, converts it to 8-bit sRGB
(alpha kept) and encodes each :class:`Variant` from the largest one made.
:mod:`._sidecars` stores them by content identity in the library folder,
written to a temporary name and renamed, so a file under its final name is
always whole; one that is not (truncated by a crash of another program, say)
counts as missing.
"""

from __future__ import annotations

from ._job import IMAGE_EXTENSIONS, ThumbsJob, thumbnail
from ._make import MAX_PIXELS, Made, make_variants
from ._sidecars import sidecar_ok, sidecar_path, valid_sidecar, write_sidecar
from ._types import ThumbsProgress, ThumbsSummary
from ._variants import DEFAULT_VARIANTS, Variant

__all__ = [
    "DEFAULT_VARIANTS",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "Made",
    "ThumbsJob",
    "ThumbsProgress",
    "ThumbsSummary",
    "Variant",
    "make_variants",
    "sidecar_ok",
    "sidecar_path",
    "thumbnail",
    "valid_sidecar",
    "write_sidecar",
]
