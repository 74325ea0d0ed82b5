"""msgpack blobs with a schema version: job state, checkpoints, progress, output.

Paths are bytes (docs/ARCHITECTURE.md, invariant 3): a non-UTF-8 file name reaches
Python as a ``str`` with surrogate escapes (``os.fsdecode``). msgpack and
SQLite refuse such strings by default, so every ``str`` is packed with the
``surrogateescape`` handler (its exact bytes, as a msgpack string) and
unpacked the same way, and SQLite text columns take such a string as its
bytes (:func:`text_in` / :func:`text_out`): any path round-trips exactly.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import random
import time
from typing import Any

import msgpack

from ..errors import CorruptStateError

#: Version of the blob envelope; bump with a decoder for the old one.
BLOB_VERSION = 1


#: The field names of each dataclass stored so far (dataclasses.fields is
#: slow enough to matter when thousands of instances are stored at once).
_FIELDS: dict[type, tuple[str, ...]] = {}


def _plain(value: Any) -> Any:
    """Dataclass instances (structured progress, typed output) are stored as
    mappings and enums as their values; the reader rebuilds the type.

    One level at a time: msgpack calls this again for each dataclass inside
    the mapping. (``dataclasses.asdict`` would copy the whole tree, leaves
    included, first: most of the cost of storing a duplicate search's
    thousands of groups.)"""
    cls = type(value)
    names = _FIELDS.get(cls)
    if names is None:
        if not dataclasses.is_dataclass(value) or isinstance(value, type):
            if isinstance(value, enum.Enum):
                return value.value
            raise TypeError(f"{cls.__name__} is not msgpack-able")
        names = _FIELDS[cls] = tuple(f.name for f in dataclasses.fields(value))
    plain = {name: getattr(value, name) for name in names}
    for field_value in plain.values():
        if isinstance(field_value, dict) and not all(isinstance(key, _KEYS) for key in field_value):
            # A dataclass key would be stored as a mapping, which no reader
            # can use as a key again: refused now, not found unreadable later.
            raise TypeError(f"{cls.__name__} holds a dict whose keys are not plain values")
    return plain


#: What a stored mapping's keys may be.
_KEYS = (str, int, float, bool, bytes, type(None))


def encode(value: Any) -> bytes:
    """Pack ``value``: None, bool, int, float, str, bytes, list, dict, and
    dataclass instances and enums (stored as a mapping and a value)."""
    try:
        packed: bytes = msgpack.packb(
            {"v": BLOB_VERSION, "d": value},
            use_bin_type=True,
            default=_plain,
            unicode_errors="surrogateescape",
        )
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"cannot store {type(value).__name__} value: {exc}") from exc
    return packed


def decode(blob: bytes) -> Any:
    """Unpack a blob written by :func:`encode`; :class:`CorruptStateError` if it is not one."""
    try:
        envelope = msgpack.unpackb(
            blob, raw=False, strict_map_key=False, unicode_errors="surrogateescape"
        )
    except (
        ValueError,
        TypeError,  # a mapping stored as a key: unhashable
        msgpack.ExtraData,
        msgpack.FormatError,
        msgpack.StackError,
    ) as exc:
        raise CorruptStateError(f"cannot decode stored state: {exc}") from exc
    if not isinstance(envelope, dict) or "v" not in envelope or "d" not in envelope:
        raise CorruptStateError("stored state is not a phasekit blob")
    if envelope["v"] != BLOB_VERSION:
        raise CorruptStateError(
            f"stored state has version {envelope['v']!r}; this phasekit reads {BLOB_VERSION}"
        )
    return envelope["d"]


def text_in(text: str | None) -> str | bytes | None:
    """A ``str`` for a SQLite text column: as is when it is valid UTF-8, else
    its surrogate-escaped bytes (stored as a blob; :func:`text_out` reads it)."""
    if text is None or text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")
    return text


def text_out(value: str | bytes | None) -> str | None:
    """What :func:`text_in` stored, back as the original ``str``."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


# Job ids: 32 hex digits (the shape of a uuid4's hex): the time in
# milliseconds, then 80 random bits. Time first, so new ids land at the end of
# the primary-key index instead of on a random page of it (a dispatch dirties
# fewer pages). The random part comes from a generator seeded once from the
# OS, not from os.urandom per id: urandom releases the GIL, and in a manager
# whose worker threads hold it, getting it back can cost a whole switch
# interval per dispatched job.
_ids = random.Random(os.urandom(32))


def new_id() -> str:
    """A new job id: unique in practice (80 random bits per millisecond)."""
    return f"{time.time_ns() // 1_000_000:012x}{_ids.getrandbits(80):020x}"
