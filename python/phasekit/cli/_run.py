"""Following jobs a manager runs, from the command line: progress bars,
Ctrl-C, and each job type's summary (``phasekit resume``, and a command
whose job another process runs). A command that starts one job runs it
directly instead (_one.py).

Ctrl-C asks the jobs to pause at their next safe point and says how to
resume them; a second Ctrl-C exits at once (the jobs then resume from their
last checkpoint, as after a crash).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping
from typing import Any

import anyio

from .._progress import Progress
from ..jobs import JobHandle, JobStatus
from ..library import Library
from ._exits import EXIT_INTERRUPTED, EXIT_OK
from ._report import Options, Reporter, report_generic, show_progress


async def run_and_report(
    library: Library,
    handles: list[JobHandle[Any]],
    options: Options,
    reporters: Mapping[str, Reporter],
    *,
    resumable: bool = True,
) -> int:
    """Follow the jobs with progress bars (on a terminal, never with
    ``--json``... bars go to stderr), then print each one's summary with
    the reporter of its job type; the exit status is the most serious."""
    results = await follow(handles, bars=True, resumable=resumable)
    codes = [EXIT_OK]
    for handle in handles:
        status = results[handle.id]
        reporter = reporters.get(handle.record.name, report_generic)
        codes.append(reporter(library, handle, status, options))
    return max(codes)


async def follow(
    handles: list[JobHandle[Any]], *, bars: bool, resumable: bool = True
) -> dict[str, JobStatus]:
    """Show each job's progress until it finishes or pauses; Ctrl-C pauses
    them (cancels them when they cannot be resumed, as in an ephemeral
    index). An error of the job store (a full disk) is raised as it is."""
    results: dict[str, JobStatus] = {}
    failure: BaseException | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(_on_ctrl_c, handles, resumable)
        try:
            for handle in handles:
                results[handle.id] = await _watch(handle, bars=bars)
        except Exception as exc:
            # Raised after the task group, not wrapped in its ExceptionGroup.
            failure = exc
        tg.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return results


async def _watch(handle: JobHandle[Any], *, bars: bool) -> JobStatus:
    record = handle.record
    status = record.status
    with Progress(record.name, enabled=bars and sys.stderr.isatty()) as bar:
        async for update in handle.updates():
            status = update.status
            if update.progress is not None:
                show_progress(bar, update.progress)
            if status is JobStatus.PAUSED:
                break  # the stream would go on; the command stops here
    return status


async def _on_ctrl_c(handles: list[JobHandle[Any]], resumable: bool) -> None:
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
