"""phasekit's exceptions (defined in the Rust extension, raised from both sides)."""

from __future__ import annotations

from ._core import CancelledError, InvalidStateError, LibraryError, PhasekitError

__all__ = ["CancelledError", "InvalidStateError", "LibraryError", "PhasekitError"]
