"""File operations: copy, move and delete, as resumable jobs.

Run them through a library's job manager (or ``Library.run``), so they can
be paused, cancelled, killed and resumed::

    summary = library.run(CopyJob(sources=["/photos/2024"], dest="/backup"))
    summary = library.run(MoveJob(sources=["/inbox/a.jpg"], dest="/photos"))
    summary = library.run(DeleteJob(paths=["/photos/tmp"]))  # to the trash

A file under its final name is always complete (written to a temporary name
and renamed); nothing is overwritten unless ``conflict`` says so; a delete
never follows a symlink out of its target, and goes to the freedesktop trash
unless ``mode="permanent"`` (or ``"secure"``: overwritten first, within
the limits :data:`SECURE_CAVEAT` states). When a source or a target lies in
a location of the library, its entries follow (``_follow.py``).
"""

from __future__ import annotations

from ._copy import CONFLICT_POLICIES, CopyJob, MoveJob
from ._delete import DELETE_MODES, SECURE_CAVEAT, DeleteJob
from ._types import DeleteProgress, DeleteSummary, TransferProgress, TransferSummary

__all__ = [
    "CONFLICT_POLICIES",
    "DELETE_MODES",
    "SECURE_CAVEAT",
    "CopyJob",
    "DeleteJob",
    "DeleteProgress",
    "DeleteSummary",
    "MoveJob",
    "TransferProgress",
    "TransferSummary",
]
