"""Duplicate detection: the dupes job over a library location or any paths.

Run it through a library's job manager, so it can be paused, cancelled and
resumed after a crash without reading a file twice::

    async with library.jobs() as manager:
        handle = await manager.dispatch(DupesJob(paths=["/data/photos"]))
        await handle.wait()
        for group in handle.output().groups:
            print(group.size, group.paths)
"""

from __future__ import annotations

from .._defaults import DUPLICATE_MODES, PAGE_BYTES, PAGE_FILES, DuplicateMode
from .._types import DuplicateGroup
from ._job import DupesJob
from ._types import DupesProgress, DupesSummary

__all__ = [
    "DUPLICATE_MODES",
    "PAGE_BYTES",
    "PAGE_FILES",
    "DupesJob",
    "DupesProgress",
    "DupesSummary",
    "DuplicateGroup",
    "DuplicateMode",
]
