"""Running library jobs from the command line: progress bars, Ctrl-C, summaries.

Ctrl-C asks the jobs to pause at their next safe point and says how to
resume them; a second Ctrl-C exits at once (the jobs then resume from their
last checkpoint, as after a crash).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from typing import Any

import anyio
import anyio.abc

from ._progress import Progress
from .jobs import JobHandle, JobStatus

#: Exit status after an interruption (as for SIGINT).
EXIT_INTERRUPTED = 130


async def follow(
    handles: list[JobHandle], *, bars: bool, resumable: bool = True
) -> dict[str, JobStatus]:
    """Show each job's progress until it stops; Ctrl-C pauses them (cancels
    them when they cannot be resumed, as in an ephemeral index)."""
    results: dict[str, JobStatus] = {}
    async with anyio.create_task_group() as tg:
        tg.start_soon(_on_ctrl_c, handles, resumable)
        for handle in handles:
            results[handle.id] = await _watch(handle, bars=bars)
        tg.cancel_scope.cancel()
    return results


async def _watch(handle: JobHandle, *, bars: bool) -> JobStatus:
    record = handle.manager.store.get_job(handle.id)
    status = record.status
    with Progress(record.name, unit=" entries", enabled=bars and sys.stderr.isatty()) as bar:
        seen = 0
        async for update in handle.updates():
            status = update.status
            progress = update.progress
            if progress is None:
                continue
            data = progress.data
            phase = progress.phase.name if progress.phase is not None else ""
            if dataclasses.is_dataclass(data) and not isinstance(data, type):
                fields = dataclasses.asdict(data)
                count = int(fields.get("files", 0)) + int(fields.get("dirs", 0))
                bar.update(
                    max(count - seen, 0),
                    phase=phase,
                    bytes=_human(int(fields.get("bytes", 0))),
                    errors=str(fields.get("errors", 0)),
                )
                seen = max(seen, count)
            elif progress.done is not None:
                bar.update(max(progress.done - seen, 0), phase=phase)
                seen = max(seen, progress.done)
    return status


async def _on_ctrl_c(handles: list[JobHandle], resumable: bool) -> None:
    with anyio.open_signal_receiver(signal.SIGINT) as signals:
        pressed = 0
        async for _ in signals:
            pressed += 1
            if pressed > 1:
                print(
                    "\nphasekit: stopped; the job resumes from its last checkpoint", file=sys.stderr
                )
                sys.stderr.flush()
                # The process ends now, without unwinding: the job is left
                # running in jobs.db and the next manager resumes it.
                os._exit(EXIT_INTERRUPTED)
            what = "pausing" if resumable else "stopping"
            print(
                f"\nphasekit: {what} at the next safe point (Ctrl-C again to quit now)",
                file=sys.stderr,
            )
            for handle in handles:
                if not handle.status.finished:
                    await (handle.pause() if resumable else handle.cancel())


def report_stops(results: dict[str, JobStatus]) -> int:
    """Tell how to go on after paused or failed jobs; the exit status."""
    paused = [job_id for job_id, status in results.items() if status is JobStatus.PAUSED]
    failed = [job_id for job_id, status in results.items() if status is JobStatus.FAILED]
    for job_id in paused:
        print(f"phasekit: job {job_id} paused; resume it with: phasekit resume {job_id}",
              file=sys.stderr)  # fmt: skip
    if paused:
        return EXIT_INTERRUPTED
    return 1 if failed else 0


def _human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def plain(value: Any) -> Any:
    """Dataclasses and enums as JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, JobStatus):
        return value.value
    if isinstance(value, bytes):
        return os.fsdecode(value)  # a path
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value
