"""Running library jobs from the command line: progress bars, Ctrl-C, and
each job type's summary, the same whether a command started the job or
``phasekit resume`` goes on with it.

Ctrl-C asks the jobs to pause at their next safe point and says how to
resume them; a second Ctrl-C exits at once (the jobs then resume from their
last checkpoint, as after a crash).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from .._json import json_ready
from .._progress import Progress
from ..jobs import Job, JobHandle, JobStatus
from ..library import Library
from ._common import human
from ._exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_STOPPED


@dataclass(frozen=True)
class Options:
    """How a command reports its jobs (``phasekit resume`` uses the defaults)."""

    json: bool = False
    max_errors: int = 20
    limit: int = 20


#: How a job type reports its outcome on the command line: called after the
#: job stopped; returns the exit status. Each command that runs a job type
#: has one (its ``report``); a job no command knows gets report_generic.
Reporter = Callable[[Library, JobHandle[Any], JobStatus, Options], int]


def dispatch_and_report(
    library: Library,
    job: Job[Any],
    options: Options,
    reporters: Mapping[str, Reporter],
    *,
    resumable: bool = True,
) -> int:
    """Run ``job`` in a manager of ``library`` (one job at a time), follow
    it with a progress bar and print its report (see run_and_report): what a
    command that starts one job does. Returns the exit status."""
    return anyio.run(_dispatch_and_report, library, job, options, reporters, resumable)


async def _dispatch_and_report(
    library: Library,
    job: Job[Any],
    options: Options,
    reporters: Mapping[str, Reporter],
    resumable: bool,
) -> int:
    async with library.jobs(max_concurrency=1) as manager:
        handle = await manager.dispatch(job)
        return await run_and_report(library, [handle], options, reporters, resumable=resumable)


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
            progress = update.progress
            if progress is not None:
                fields: dict[str, Any] = {}
                data = progress.data
                if dataclasses.is_dataclass(data) and not isinstance(data, type):
                    fields = dataclasses.asdict(data)
                phase = progress.phase.name if progress.phase is not None else ""
                postfix = {"phase": phase}
                if "bytes" in fields:
                    postfix["bytes"] = human(int(fields["bytes"]))
                if fields.get("errors"):
                    postfix["errors"] = str(fields["errors"])
                count = progress.done
                if count is None and "files" in fields:
                    count = int(fields.get("files", 0)) + int(fields.get("dirs", 0))
                bar.show(progress.percent, count, progress.rate, **postfix)
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


def report_stop(handle: JobHandle[Any], status: JobStatus) -> int | None:
    """Say why a job did not finish and how to go on; its exit status, or
    None when it finished (the caller prints its summary)."""
    record = handle.record
    if status is JobStatus.PAUSED:
        if record.error:
            # Stopped by the library's storage (a full disk): nothing lost.
            print(f"phasekit: job {handle.id} stopped: {record.error}", file=sys.stderr)
            print(f"phasekit: once fixed, go on with: phasekit resume {handle.id}",
                  file=sys.stderr)  # fmt: skip
            return EXIT_STOPPED
        print(f"phasekit: job {handle.id} paused; resume it with: phasekit resume {handle.id}",
              file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    if status is JobStatus.FAILED:
        print(f"phasekit: job {handle.id} failed: {record.error or 'no reason recorded'}",
              file=sys.stderr)  # fmt: skip
        print(f"phasekit: details: phasekit jobs show {handle.id} --debug", file=sys.stderr)
        return EXIT_FAILED
    if status is JobStatus.CANCELLED:
        print(f"phasekit: job {handle.id} was cancelled", file=sys.stderr)
        return EXIT_FAILED
    if not status.finished:
        print(f"phasekit: job {handle.id} is {status.value}", file=sys.stderr)
        return EXIT_FAILED
    return None


def report_generic(
    library: Library, handle: JobHandle[Any], status: JobStatus, options: Options
) -> int:
    """The report of a job type no command knows: its status and output."""
    stopped = report_stop(handle, status)
    line = {"job_id": handle.id, "name": handle.record.name, "status": status.value}
    if options.json:
        import json  # here: most commands never need it this way

        print(json.dumps({**line, "output": json_ready(handle.output())}))
    else:
        print(f"{handle.id} {line['name']}: {status.value}")
    return EXIT_OK if stopped is None else stopped


def print_errors(handle: JobHandle[Any], count: int, what: str, limit: int) -> None:
    """The first ``limit`` non-critical errors of a job, to stderr."""
    if not count:
        return
    print(f"phasekit: {count:,} {what}:", file=sys.stderr)
    for error in handle.errors()[:limit]:
        print(f"  {error.path}: {error.message}", file=sys.stderr)
    if count > limit:
        print(f"  ... and {count - limit:,} more (phasekit jobs show {handle.id})",
              file=sys.stderr)  # fmt: skip
