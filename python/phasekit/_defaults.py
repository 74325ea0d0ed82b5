"""The choices and defaults that the API and the command line share.

One home for each, importing nothing heavy: the command line builds its
parser (choices, defaults, help) from them without loading the modules that
use them (see phasekit/cli/__init__.py).
"""

from __future__ import annotations

# typing.TYPE_CHECKING without importing typing: the command line reads the
# tuples below at start-up, and typing alone would cost it a few milliseconds.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal

    #: How much a location's index holds: metadata only; plus cas_ids and
    #: content identities; plus full checksums for later validation.
    IndexMode = Literal["shallow", "content", "deep"]
    #: How :func:`phasekit.fs.find_duplicates` decides two files are the same.
    DuplicateMode = Literal["size", "name_size", "content", "full"]
    #: How far validation looks: metadata; plus cas_ids; plus full checksums.
    ValidationMode = Literal["basic", "integrity", "complete"]

INDEX_MODES: tuple[IndexMode, ...] = ("shallow", "content", "deep")
DUPLICATE_MODES: tuple[DuplicateMode, ...] = ("size", "name_size", "content", "full")
VALIDATION_MODES: tuple[ValidationMode, ...] = ("basic", "integrity", "complete")

#: The ``Literal`` type of each tuple of choices, built from it on first use
#: (PEP 562): at run time they are real ``typing.Literal`` types, for the
#: applications that read them (a settings model validating a mode).
_LITERALS = {
    "IndexMode": INDEX_MODES,
    "DuplicateMode": DUPLICATE_MODES,
    "ValidationMode": VALIDATION_MODES,
}


def __getattr__(name: str) -> object:
    choices = _LITERALS.get(name)
    if choices is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from typing import Literal

    value = Literal[choices]  # type: ignore[valid-type]
    globals()[name] = value
    return value


#: An index's discovery checkpoints at least this often (seconds).
CHECKPOINT_EVERY_S = 2.0

#: A duplicate search hashes this many files and bytes per page (one
#: checkpoint each): a page of small files takes ~0.1 s on two cores, so a
#: pause waits no longer than that, and a resume redoes at most one page.
PAGE_FILES = 16_384
PAGE_BYTES = 256 * 1024 * 1024

#: Finished jobs and their history are kept this long by default (seconds;
#: ``JobManager(history_retention_s=...)``, and a direct run prunes the same).
HISTORY_RETENTION_S = 30 * 24 * 3600.0
