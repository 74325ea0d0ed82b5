"""phasekit: resumable, phase-based file jobs with a Rust core.

The filesystem primitives live in :mod:`phasekit.fs`, the library database
in :mod:`phasekit.library`; their pure-Python twins
in :mod:`phasekit.reference`.
"""

from __future__ import annotations

import logging

from . import fs, library
from ._core import __version__
from .errors import CancelledError, InvalidStateError, PhasekitError
from .fs import CancelToken, FsError, Kind

# A library's loggers print nothing unless the application configures
# logging (the logging HOWTO's advice for libraries): without this, Python's
# last-resort handler would print every job's warnings and failures.
logging.getLogger("phasekit").addHandler(logging.NullHandler())

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
