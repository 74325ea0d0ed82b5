"""What a test does to a job backend's stored data that no API does (a
checkpoint damaged on disk), so the tests of what follows (that job fails
with a clear message, the others run) assert through the public API alone
and hold for any backend: one function per backend kind, chosen by type."""

from __future__ import annotations

from phasekit.jobs import JobBackend, JobStore


def corrupt_checkpoint(store: JobBackend, job_id: str) -> None:
    """Make the stored checkpoints of ``job_id`` unreadable."""
    if isinstance(store, JobStore):
        with store._write() as db:
            db.execute("UPDATE job_checkpoints SET data = x'c1' WHERE job_id = ?", (job_id,))
        return
    raise NotImplementedError(f"no way to damage a {type(store).__name__} yet")
