"""Thumbnail variants of generated images: the eight EXIF orientations
(checked against the EXIF specification, not against Pillow's own table),
sizes never upscaled, alpha, CMYK, 16-bit, HEIC, damaged and oversized
images, and sidecar files that are whole or count as missing."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from phasekit.errors import ImageError, InvalidInputError
from phasekit.thumbs import (
    DEFAULT_VARIANTS,
    Variant,
    make_variants,
    sidecar_path,
    valid_sidecar,
    write_sidecar,
)

# The image as it must be shown: four flat quadrants.
RED, GREEN, BLUE, YELLOW = (220, 20, 20), (20, 200, 20), (20, 20, 220), (230, 220, 20)
W, H = 96, 64


def shown() -> np.ndarray:
    d = np.zeros((H, W, 3), np.uint8)
    d[: H // 2, : W // 2] = RED
    d[: H // 2, W // 2 :] = GREEN
    d[H // 2 :, : W // 2] = BLUE
    d[H // 2 :, W // 2 :] = YELLOW
    return d


# How a camera stores the shown image under each EXIF orientation (TIFF
# 6.0 / EXIF 2.3, tag 0x0112): showing it means undoing this.
STORED = {
    1: lambda d: d,
    2: lambda d: d[:, ::-1],  # mirrored left-right
    3: lambda d: d[::-1, ::-1],  # rotated 180
    4: lambda d: d[::-1, :],  # mirrored top-bottom
    5: lambda d: d.swapaxes(0, 1),  # transposed
    6: lambda d: np.rot90(d, 1),  # shown rotated 90 clockwise
    7: lambda d: np.rot90(d.swapaxes(0, 1), 2),  # transversed
    8: lambda d: np.rot90(d, -1),  # shown rotated 90 counter-clockwise
}


def decode(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    assert im.format == "WEBP"
    im.load()
    return im


def corners(im: Image.Image) -> list[tuple[int, ...]]:
    rgb = im.convert("RGB")
    w, h = rgb.size
    return [rgb.getpixel((x, y)) for x, y in ((2, 2), (w - 3, 2), (2, h - 3), (w - 3, h - 3))]


def close(a: tuple[int, ...], b: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=False))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_every_exif_orientation(tmp_path, orientation, fmt):
    stored = Image.fromarray(np.ascontiguousarray(STORED[orientation](shown())))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}\xff.{fmt.lower()}"
    stored.save(path, fmt, exif=exif, **({"quality": 95} if fmt == "JPEG" else {}))
    made = make_variants(path, [Variant("t", 48)])
    assert (made.width, made.height) == (W, H)
    data, w, h = made.variants["t"]
    thumb = decode(data)
    assert thumb.size == (w, h) == (48, 32)
    got = corners(thumb)
    for found, wanted in zip(got, [RED, GREEN, BLUE, YELLOW], strict=True):
        assert close(found, wanted), (orientation, got)


def test_sizes_are_never_upscaled(tmp_path):
    path = tmp_path / "wide.jpg"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (500, 1000, 3), np.uint8)).save(path)
    made = make_variants(path)
    sizes = {name: (w, h) for name, (_data, w, h) in made.variants.items()}
    assert sizes == {"grid": (256, 128), "grid@2x": (512, 256), "detail": (1000, 500)}
    for name, (data, w, h) in made.variants.items():
        assert decode(data).size == (w, h), name


def test_large_jpeg_is_decoded_at_a_reduced_scale(tmp_path):
    path = tmp_path / "big.jpg"
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 255, (3000, 4000, 3), np.uint8)).save(path, quality=85)
    made = make_variants(path)
    assert (made.width, made.height) == (4000, 3000)
    assert {n: (w, h) for n, (_d, w, h) in made.variants.items()}["detail"] == (1024, 768)


def test_png_alpha_is_kept(tmp_path):
    rgba = np.zeros((100, 200, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:50, :100, 3] = 0  # top left transparent
    rgba[50:, 100:, 3] = 255
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    data, _w, _h = make_variants(path, [Variant("t", 100)]).variants["t"]
    thumb = decode(data)
    assert thumb.mode == "RGBA"
    assert thumb.getpixel((2, 2))[3] < 20
    assert thumb.getpixel((97, 47))[3] > 235


def test_cmyk_jpeg_and_16_bit_png(tmp_path):
    cmyk = Image.new("CMYK", (120, 80), (0, 255, 255, 0))  # red in CMYK
    cmyk.save(tmp_path / "cmyk.jpg", quality=95)
    data, _w, _h = make_variants(tmp_path / "cmyk.jpg", [Variant("t", 60)]).variants["t"]
    r, g, b = decode(data).convert("RGB").getpixel((30, 20))
    assert r > 180
    assert max(g, b) < 80

    ramp = (np.arange(256, dtype=np.uint16)[None, :].repeat(64, 0) * 257).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as deep:
        assert deep.mode.startswith("I")
    data, _w, _h = make_variants(tmp_path / "deep.png", [Variant("t", 256)]).variants["t"]
    row = [decode(data).convert("L").getpixel((x, 32)) for x in (5, 128, 250)]
    assert row[0] < 30
    assert 100 < row[1] < 160
    assert row[2] > 225


def test_heic(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    Image.fromarray(shown()).save(tmp_path / "phone.heic", quality=90)
    data, w, h = make_variants(tmp_path / "phone.heic", [Variant("t", 48)]).variants["t"]
    assert (w, h) == (48, 32)
    for found, wanted in zip(corners(decode(data)), [RED, GREEN, BLUE, YELLOW], strict=True):
        assert close(found, wanted)


def test_damaged_images_are_image_errors(tmp_path):
    good = tmp_path / "good.jpg"
    Image.fromarray(np.random.default_rng(3).integers(0, 255, (400, 600, 3), np.uint8)).save(good)
    raw = good.read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "noise.jpg").write_bytes(os.urandom(5000))
    (tmp_path / "empty.png").write_bytes(b"")
    for name in ("truncated.jpg", "noise.jpg", "empty.png"):
        with pytest.raises(ImageError, match=name):
            make_variants(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        make_variants(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="megapixels"):
        make_variants(good, max_pixels=100_000)
    with pytest.raises(InvalidInputError):
        make_variants(good, [])


def test_variant_checks():
    for bad in (
        lambda: Variant("a/b", 100),
        lambda: Variant("", 100),
        lambda: Variant("x", 4),
        lambda: Variant("x", 100, quality=0),
        lambda: Variant("x", True),  # type: ignore[arg-type]
    ):
        with pytest.raises(InvalidInputError):
            bad()
    assert [v.size for v in DEFAULT_VARIANTS] == [256, 512, 1024]


def test_sidecars_whole_or_missing(tmp_path):
    cas = "0123456789abcdef"
    path = sidecar_path(tmp_path, cas, "grid")
    assert path == tmp_path / "sidecars" / "01" / cas / "grid.webp"
    Image.fromarray(shown()).save(tmp_path / "src.png")
    data, _w, _h = make_variants(tmp_path / "src.png", [Variant("grid", 64)]).variants["grid"]
    write_sidecar(path, data)
    assert valid_sidecar(path, 64)
    assert not valid_sidecar(path, 32)  # larger than the variant asks: made for another size
    assert [p.name for p in path.parent.iterdir()] == ["grid.webp"]  # no temporary left
    path.write_bytes(data[: len(data) // 2])
    assert not valid_sidecar(path, 64)
    assert not valid_sidecar(Path(tmp_path / "none.webp"), 64)
    with pytest.raises(InvalidInputError):
        sidecar_path(tmp_path, "../../etc", "grid")


@pytest.mark.parametrize("fmt", ["GIF", "TIFF", "BMP", "WEBP", "PNG"])
def test_other_formats(tmp_path, fmt):
    path = tmp_path / f"img\xe9.{fmt.lower()}"
    frames = [Image.fromarray(shown())]
    if fmt == "GIF":  # animated: the first frame is used
        frames.append(Image.new("RGB", (W, H), (0, 0, 0)))
        frames[0].save(path, fmt, save_all=True, append_images=frames[1:])
    else:
        frames[0].save(path, fmt)
    data, w, h = make_variants(path, [Variant("t", 48)]).variants["t"]
    assert (w, h) == (48, 32)
    for found, wanted in zip(corners(decode(data)), [RED, GREEN, BLUE, YELLOW], strict=True):
        assert close(found, wanted, tolerance=60), fmt


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_odd_images_from_a_review(tmp_path):
    # RGB with a tRNS colour: those pixels stay transparent.
    rgb = Image.new("RGB", (40, 20), (10, 20, 30))
    rgb.paste((200, 0, 0), (20, 0, 40, 20))
    rgb.save(tmp_path / "trns.png", transparency=(10, 20, 30))
    data, _w, _h = make_variants(tmp_path / "trns.png", [Variant("t", 40)]).variants["t"]
    thumb = decode(data)
    assert thumb.mode == "RGBA"
    assert thumb.getpixel((2, 10))[3] < 20
    assert thumb.getpixel((35, 10))[3] > 235
    # A 32-bit integer TIFF holding 8-bit values is not black.
    Image.fromarray(np.full((20, 30), 200, np.int32)).save(tmp_path / "i32.tif")
    data, _w, _h = make_variants(tmp_path / "i32.tif", [Variant("t", 30)]).variants["t"]
    assert abs(decode(data).convert("L").getpixel((15, 10)) - 200) < 10
    # Many pixels: refused before decoding (a PNG's EXIF lookup decodes it).
    Image.new("1", (14000, 12000)).save(tmp_path / "bomb.png")
    with pytest.raises(ImageError, match="168 megapixels"):
        make_variants(tmp_path / "bomb.png")
    Image.new("1", (20000, 10000)).save(tmp_path / "bigger.png")  # Pillow's own limit
    with pytest.raises(ImageError, match="too many pixels"):
        make_variants(tmp_path / "bigger.png")
    # WebP stops at 16383 pixels a side.
    with pytest.raises(InvalidInputError):
        Variant("huge", 16384)
    assert Variant("huge", 16383).size == 16383


def test_stale_temporaries(tmp_path):
    from phasekit.thumbs._sidecars import stale_temp

    ours = tmp_path / f".grid.webp.{os.getpid()}.00aa.tmp"
    ours.write_bytes(b"x")
    assert not stale_temp(ours)  # a write in flight in a live process
    dead = subprocess_pid_gone()
    gone = tmp_path / f".grid.webp.{dead}.00bb.tmp"
    gone.write_bytes(b"x")
    assert stale_temp(gone)
    old = tmp_path / f".grid.webp.{os.getpid()}.00cc.tmp"
    old.write_bytes(b"x")
    os.utime(old, (1, 1))
    assert stale_temp(old)


def subprocess_pid_gone() -> int:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(proc.stdout)


def _swapped_primaries_profile() -> bytes:
    """An RGB matrix/TRC ICC profile (version 2.1) whose red primary is
    sRGB's green and whose green is sRGB's red, gamma 1: a colour converted
    through it shows plainly whether the profile was applied."""
    import struct

    def s15(x: float) -> bytes:
        return struct.pack(">i", round(x * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + bytes(4) + s15(x) + s15(y) + s15(z)

    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, 256) + bytes(2)
    tags = [
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.3851, 0.7169, 0.0971)),  # sRGB's green (D50)
        (b"gXYZ", xyz(0.4361, 0.2225, 0.0139)),  # sRGB's red
        (b"bXYZ", xyz(0.1431, 0.0606, 0.7141)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table = data = b""
    for sig, body in tags:
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body + bytes(-len(body) % 4)
    header = (
        struct.pack(">I", offset + len(data))
        + bytes(4)
        + bytes([2, 0x10, 0, 0])
        + b"mntrRGB XYZ "
        + bytes(12)
        + b"acsp"
        + bytes(28)
        + s15(0.9642)
        + s15(1.0)
        + s15(0.8249)
        + bytes(48)
    )
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data


@pytest.mark.parametrize("mode", ["RGB", "P"])
def test_an_embedded_profile_is_converted_to_srgb(tmp_path, mode):
    red = Image.new("RGB", (40, 20), (255, 0, 0))
    im = red if mode == "RGB" else red.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    im.save(tmp_path / "swapped.png", icc_profile=_swapped_primaries_profile())
    data, _w, _h = make_variants(tmp_path / "swapped.png", [Variant("t", 40)]).variants["t"]
    # Its "red" is sRGB's green: shown green.
    assert close(decode(data).convert("RGB").getpixel((20, 10)), (0, 255, 0), tolerance=30)


def test_a_camera_mpo_is_decoded_at_a_reduced_scale(tmp_path):
    """A camera's JPEG that Pillow reports as MPO (a JPEG with a second
    image) is decoded at 1/8 scale like any JPEG: the process grows by far
    less than the 144 MB of a full 8000x6000 decode."""
    import subprocess
    import sys

    from test_indexing import subprocess_env

    rng = np.random.default_rng(3)
    small = Image.fromarray(rng.integers(0, 255, (60, 80, 3), np.uint8))
    big = small.resize((8000, 6000), Image.Resampling.BILINEAR)
    path = tmp_path / "camera.jpg"
    big.save(path, "MPO", save_all=True, append_images=[small], quality=80)
    with Image.open(path) as opened:
        assert opened.format == "MPO"
    # The peak from /proc (VmHWM, this process's own): ru_maxrss keeps the
    # parent's peak across exec.
    code = (
        "import sys\n"
        "from phasekit.thumbs import Variant, make_variants\n"
        "from PIL import Image\n"
        "def peak():\n"
        "    status = open('/proc/self/status').read().split('VmHWM:')[1]\n"
        "    return int(status.split()[0])\n"
        "Image.open(sys.argv[1]).close()\n"  # Pillow's plugins loaded before the baseline
        "before = peak()\n"
        "made = make_variants(sys.argv[1], [Variant('t', 256)])\n"
        "print(made.width, made.height, made.variants['t'][1:], peak() - before)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=True,
    ).stdout.split(maxsplit=4)
    assert out[:4] == ["8000", "6000", "(256,", "192)"]
    assert int(out[4]) < 40_000  # KiB; a full decode alone is 144,000
