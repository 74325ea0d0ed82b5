"""phasekit: resumable, phase-based file jobs with a Rust core.

The filesystem primitives live in :mod:`phasekit.fs`, the library database
in :mod:`phasekit.library`; their pure-Python twins
in :mod:`phasekit.reference`.
"""

from __future__ import annotations

from . import fs, library
from ._core import __version__
from .errors import CancelledError, InvalidStateError, PhasekitError
from .fs import CancelToken, FsError, Kind

__all__ = [
    "CancelToken",
    "CancelledError",
    "FsError",
    "InvalidStateError",
    "Kind",
    "PhasekitError",
    "__version__",
    "fs",
    "library",
]
