"""msgpack blobs with a schema version: job state, checkpoints, progress, output."""

from __future__ import annotations

from typing import Any

import msgpack

from ..errors import PhasekitError

#: Version of the blob envelope; bump with a decoder for the old one.
BLOB_VERSION = 1


class CorruptStateError(PhasekitError):
    """A stored blob (job state, checkpoint) cannot be decoded."""


def encode(value: Any) -> bytes:
    """Pack ``value`` (msgpack-able: None, bool, int, float, str, bytes, list, dict)."""
    try:
        packed: bytes = msgpack.packb({"v": BLOB_VERSION, "d": value}, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"cannot store {type(value).__name__} value: {exc}") from exc
    return packed


def decode(blob: bytes) -> Any:
    """Unpack a blob written by :func:`encode`; :class:`CorruptStateError` if it is not one."""
    try:
        envelope = msgpack.unpackb(blob, raw=False, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise CorruptStateError(f"cannot decode stored state: {exc}") from exc
    if not isinstance(envelope, dict) or "v" not in envelope or "d" not in envelope:
        raise CorruptStateError("stored state is not a phasekit blob")
    if envelope["v"] != BLOB_VERSION:
        raise CorruptStateError(
            f"stored state has version {envelope['v']!r}; this phasekit reads {BLOB_VERSION}"
        )
    return envelope["d"]
