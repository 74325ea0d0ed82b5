"""What a thumbnail variant is: a name, a longest side, a WebP quality."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import InvalidInputError

#: What a variant name may be (it is a file name).
VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@._-]{0,63}$")


@dataclass(frozen=True)
class Variant:
    """One thumbnail size: ``name`` (a file name: letters, digits, ``@._-``),
    ``size`` (the longest side in pixels, up to WebP's 16383; an image is never upscaled) and
    ``quality`` (lossy WebP, 1-100)."""

    name: str
    size: int
    quality: int = 80

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not VARIANT_NAME.match(self.name):
            raise InvalidInputError(
                f"a variant name is 1-64 letters, digits or @._- (not starting with one of "
                f"@._-), not {self.name!r}"
            )
        for field, value, low, high in (
            ("size", self.size, 8, 16383),
            ("quality", self.quality, 1, 100),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise InvalidInputError(
                    f"variant {self.name}: {field} must be {low}-{high}, not {value!r}"
                )


#: ``grid`` for a grid of thumbnails, ``grid@2x`` for the same on a dense
#: screen, ``detail`` for a preview pane.
DEFAULT_VARIANTS: tuple[Variant, ...] = (
    Variant("grid", 256, 75),
    Variant("grid@2x", 512, 78),
    Variant("detail", 1024, 82),
)


def variants_from(raw: Iterable[Variant | Mapping[str, Any]]) -> tuple[Variant, ...]:
    """Variants from :class:`Variant` objects or their mappings (``{"name":
    ..., "size": ..., "quality": ...}``, as stored): at least one, each with
    its own name; InvalidInputError otherwise."""
    if isinstance(raw, str | bytes | Mapping):
        raise InvalidInputError(f"variants: a list of variants, not {raw!r}")
    try:
        variants = tuple(v if isinstance(v, Variant) else Variant(**v) for v in raw)
    except TypeError as exc:
        raise InvalidInputError(f"variants: {exc}") from exc
    if not variants or len({v.name for v in variants}) != len(variants):
        raise InvalidInputError("variants: at least one, each with its own name")
    return variants


def variants_to_list(variants: Iterable[Variant]) -> list[dict[str, Any]]:
    """The mappings :func:`variants_from` reads (JSON-ready)."""
    return [asdict(v) for v in variants]
