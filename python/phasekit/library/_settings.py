"""A library's settings, as methods of :class:`~phasekit.library.Library`:
values stored as JSON in library.db (table ``settings``), so every process
that opens the library, and every job it runs, sees the same ones. The
typed ones (the thumbnail variants) check what they store."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .. import _core
from ..errors import InvalidInputError

if TYPE_CHECKING:
    from ..thumbs import Variant

#: The setting that holds the thumbnail variants.
THUMBNAIL_VARIANTS = "thumbs.variants"


class _Library(Protocol):
    """What these methods use of the Library they are part of."""

    _db: _core.LibraryDb


def _key(key: object) -> str:
    if isinstance(key, str) and 0 < len(key) <= 200 and key.isprintable():
        try:
            key.encode()
        except UnicodeEncodeError:
            pass  # a lone surrogate (a file name's undecodable byte): not a key
        else:
            return key
    raise InvalidInputError(f"a setting's key is 1-200 printable characters of text, not {key!r}")


def _get(db: _core.LibraryDb, key: object, default: Any) -> Any:
    raw = db.setting(_key(key))
    return default if raw is None else json.loads(raw)


def _set(db: _core.LibraryDb, key: object, value: Any) -> None:
    key = _key(key)
    if value is None:
        db.set_setting(key, None)
        return
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"setting {key!r}: not storable as JSON ({exc})") from exc
    db.set_setting(key, text)


class Settings:
    """The library's settings (mixed into Library)."""

    def setting(self: _Library, key: str, default: Any = None) -> Any:
        """The value stored under ``key`` by :meth:`set_setting` (decoded
        from JSON), else ``default``."""
        return _get(self._db, key, default)

    def set_setting(self: _Library, key: str, value: Any) -> None:
        """Store ``value`` (anything JSON holds) under ``key`` in library.db,
        for every process that opens the library; None removes it."""
        _set(self._db, key, value)

    def thumbnail_variants(self: _Library) -> tuple[Variant, ...]:
        """The thumbnail variants this library makes (its thumbnail jobs and
        deep indexes use them): those set by :meth:`set_thumbnail_variants`,
        else ``grid`` 256, ``grid@2x`` 512 and ``detail`` 1024."""
        from ..thumbs._variants import DEFAULT_VARIANTS, variants_from

        stored = _get(self._db, THUMBNAIL_VARIANTS, None)
        return DEFAULT_VARIANTS if stored is None else variants_from(stored)

    def set_thumbnail_variants(
        self: _Library, variants: Iterable[Variant | Mapping[str, Any]] | None
    ) -> None:
        """Set the thumbnail variants this library makes (None: back to the
        defaults). The next thumbnail job makes what is missing, makes again
        a variant whose size changed, and removes the files of variants no
        longer listed."""
        from ..thumbs._variants import variants_from, variants_to_list

        value = None if variants is None else variants_to_list(variants_from(variants))
        _set(self._db, THUMBNAIL_VARIANTS, value)
