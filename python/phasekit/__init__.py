"""phasekit: resumable, phase-based file jobs with a Rust core.

The filesystem primitives live in :mod:`phasekit.fs`, the library database
in :mod:`phasekit.library`; their pure-Python twins
in :mod:`phasekit.reference`.

The names below are loaded when first used: ``import phasekit`` (which every
``phasekit.*`` import runs first) costs almost nothing, so a command line
that only prints its version or help starts at once.
"""

from __future__ import annotations

# typing.TYPE_CHECKING without importing typing (type checkers honour the name).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from . import dupes as dupes
    from . import errors as errors
    from . import fs, library
    from . import indexing as indexing
    from . import jobs as jobs
    from . import reference as reference
    from . import validation as validation
    from ._core import __version__
    from .errors import CancelledError, InvalidStateError, PhasekitError
    from .fs import CancelToken, FsError, Kind

#: Each public name and the module it comes from (the name itself when it is a
#: submodule).
_HOME = {
    "CancelToken": "phasekit.fs",
    "CancelledError": "phasekit.errors",
    "FsError": "phasekit.fs",
    "InvalidStateError": "phasekit.errors",
    "Kind": "phasekit.fs",
    "PhasekitError": "phasekit.errors",
    "__version__": "phasekit._core",
    "fs": "phasekit.fs",
    "library": "phasekit.library",
    # The other public subpackages, loaded on first use like the rest
    # (``import phasekit`` alone once made ``phasekit.errors`` usable).
    "dupes": "phasekit.dupes",
    "errors": "phasekit.errors",
    "indexing": "phasekit.indexing",
    "jobs": "phasekit.jobs",
    "reference": "phasekit.reference",
    "thumbs": "phasekit.thumbs",
    "validation": "phasekit.validation",
}

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


def __getattr__(name: str) -> object:
    """Load a public name on first use (PEP 562), then keep it."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'phasekit' has no attribute {name!r}")
    import importlib

    module = importlib.import_module(home)
    value = module if home == f"phasekit.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*__all__, *_HOME})
