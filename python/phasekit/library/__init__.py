"""The library: locations, their indexed entries and content identities.

>>> with Library.open("/tmp/lib") as lib:  # doctest: +SKIP
...     loc = lib.add_location("/data/photos")
...     lib.index(loc)
...     for entry in lib.entries(loc):
...         print(entry.path, entry.size)
"""

from __future__ import annotations

from .._defaults import INDEX_MODES, IndexMode
from ..errors import LibraryError
from ._library import LIBRARY_ENV, Library, Scan, default_library_path
from ._types import (
    ContentIdentity,
    Entry,
    HashPass,
    Location,
    ScanStats,
    ScanStep,
)

__all__ = [
    "INDEX_MODES",
    "LIBRARY_ENV",
    "ContentIdentity",
    "Entry",
    "HashPass",
    "IndexMode",
    "Library",
    "LibraryError",
    "Location",
    "Scan",
    "ScanStats",
    "ScanStep",
    "default_library_path",
]
