"""Making an image's thumbnail variants with Pillow.

One decode per image: a JPEG is decoded at the smallest DCT scale that
still covers the largest variant (``draft``: 1/2, 1/4 or 1/8 of the pixels
read, the rest never decoded), every other format at full size. Then the
EXIF orientation is applied (all eight), the colours are brought to 8-bit
sRGB (an embedded ICC profile converted with LittleCMS; CMYK, 16-bit,
palette and grey images converted; alpha kept), and each variant is made
from the one before, largest first, and encoded as lossy WebP. Pillow
releases the GIL in decoding, resizing and encoding, so images can be made
in parallel threads.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ImageError, InvalidInputError
from ._variants import DEFAULT_VARIANTS, Variant

if TYPE_CHECKING:
    from PIL import Image

    from .._types import StrPath

#: Images with more pixels are refused before they are decoded (a
#: decompression bomb: a small file that decodes to gigabytes).
MAX_PIXELS = 150_000_000

_TO_RGBA = {"LA", "PA", "RGBa", "La"}
#: EXIF orientations that swap width and height.
_SWAPPED = {5, 6, 7, 8}
_heif_registered = False


def _register_heif() -> None:
    """HEIC/HEIF (phone photos) through pillow-heif, registered with Pillow
    on first use (importing it costs start-up time)."""
    global _heif_registered
    if not _heif_registered:
        import pillow_heif

        pillow_heif.register_heif_opener()
        _heif_registered = True


@dataclass(frozen=True)
class Made:
    """An image's variants: its size as shown (oriented), and each variant's
    WebP bytes with its own size, by name."""

    width: int
    height: int
    variants: dict[str, tuple[bytes, int, int]]


def _scaled(size: tuple[int, int], longest: int) -> tuple[int, int]:
    """The size ``size`` shrinks to so that its longest side is at most
    ``longest`` (never larger than it is)."""
    w, h = size
    scale = min(1.0, longest / max(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))


def _to_8bit(im: Image.Image) -> Image.Image:
    """8-bit RGB, or RGBA where the image has transparency."""
    from PIL import Image

    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        import numpy as np

        values = np.asarray(im)
        peak = float(values.max()) if values.size else 0.0
        # 16-bit data (PNG, TIFF) spans 0-65535; 32-bit integer or float
        # data holds whatever its writer chose: 8-bit values stay as they are.
        top = 255.0 if peak <= 255 else 65535.0 if peak <= 65535 else peak
        scaled = np.clip(values.astype(np.float64) * (255.0 / top), 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, "L").convert("RGB")
    if im.mode in _TO_RGBA or (im.mode in ("P", "L", "RGB") and "transparency" in im.info):
        return im.convert("RGBA")  # a palette's or a tRNS chunk's transparency kept
    if im.mode not in ("RGB", "RGBA"):
        return im.convert("RGB")
    return im


def _to_srgb(im: Image.Image) -> Image.Image:
    """Convert from an embedded ICC profile to sRGB (else as it is)."""
    from PIL import ImageCms

    icc = im.info.get("icc_profile")
    if im.mode == "LAB":
        # No profile needed: LAB is absolute (D50); Pillow's own LAB to RGB
        # conversion is not a colour conversion at all.
        try:
            converted = ImageCms.profileToProfile(
                im, ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), outputMode="RGB"
            )
        except (ImageCms.PyCMSError, OSError, ValueError):
            return im
        return converted if converted is not None else im
    if not icc:
        return im
    if im.mode in ("P", "PA"):
        # The profile describes the palette's colours: convert those.
        im = im.convert("RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB")
    if im.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return im
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        target = ImageCms.createProfile("sRGB")
        out_mode = "RGBA" if im.mode == "RGBA" else "RGB"
        converted = ImageCms.profileToProfile(im, source, target, outputMode=out_mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return im  # a broken profile: the colours as stored
    return converted if converted is not None else im


def source_longest(path: StrPath) -> int | None:
    """The longest side of the image at ``path``, read from its header (no
    decode), or None if it cannot be read."""
    from PIL import Image

    _register_heif()
    try:
        with Image.open(path) as opened:
            return max(opened.size)
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, Image.DecompressionBombError):
        return None


def make_variants(
    path: StrPath,
    variants: Sequence[Variant] = DEFAULT_VARIANTS,
    *,
    max_pixels: int = MAX_PIXELS,
) -> Made:
    """Decode the image at ``path`` once and encode each of ``variants``.

    Raises :class:`~phasekit.errors.ImageError` for a file that is not an
    image Pillow reads, is truncated or corrupt, or has more than
    ``max_pixels`` pixels; ``OSError`` if it cannot be opened at all.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not variants:
        raise InvalidInputError("no variants asked for")
    _register_heif()
    name = os.fsdecode(path)
    wanted = sorted(variants, key=lambda v: v.size, reverse=True)
    try:
        # Pillow warns (DecompressionBombWarning) above 89 megapixels, to
        # the application's warning filters; our own limit decides below.
        # (warnings.catch_warnings is not thread-safe: not used here.)
        with Image.open(path) as opened:
            w, h = opened.size
            if w * h > max_pixels:  # before anything decodes (a PNG's EXIF may)
                raise ImageError(
                    f"{name}: {w}x{h} is {w * h / 1e6:.0f} megapixels, more than the "
                    f"{max_pixels / 1e6:.0f} allowed (a decompression bomb?); not decoded"
                )
            if opened.format in ("JPEG", "MPO"):  # MPO: a camera's JPEG with extras
                # The smallest DCT scale still at least as large as the
                # largest variant (orientation does not matter: both sides).
                opened.draft(opened.mode, _scaled((w, h), wanted[0].size))
            opened.load()
            oriented = (h, w) if opened.getexif().get(0x0112) in _SWAPPED else (w, h)
            # In place: a copy of a 100-megapixel image is 300 MB more.
            ImageOps.exif_transpose(opened, in_place=True)
            im = _to_8bit(_to_srgb(opened))
            out: dict[str, tuple[bytes, int, int]] = {}
            current = im
            for variant in wanted:
                size = _scaled(im.size, variant.size)
                if current.size != size:
                    current = current.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
                buffer = io.BytesIO()
                current.save(buffer, "WEBP", quality=variant.quality, method=4)
                out[variant.name] = (buffer.getvalue(), *current.size)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # The warning arrives as an exception where warnings are made errors.
        raise ImageError(f"{name}: refused, too many pixels ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name}: not an image phasekit can read ({exc})") from exc
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, KeyError, IndexError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise  # the file itself (permission denied, gone): not the image's fault
        raise ImageError(f"{name}: a damaged or unsupported image ({exc})") from exc
    return Made(width=oriented[0], height=oriented[1], variants=out)
