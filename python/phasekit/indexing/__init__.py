"""Indexing: the indexer job that fills a library's locations.

Run it through a library's job manager (``Library.jobs()``), so it can be
paused, cancelled and resumed after a crash::

    async with library.jobs() as manager:
        handle = await manager.dispatch(IndexJob(location.id))
        await handle.wait()
"""

from __future__ import annotations

from .._defaults import CHECKPOINT_EVERY_S
from ._job import IndexJob, IndexProgress, IndexSummary

__all__ = ["CHECKPOINT_EVERY_S", "IndexJob", "IndexProgress", "IndexSummary"]
