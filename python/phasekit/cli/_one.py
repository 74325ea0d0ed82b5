"""A command that starts one job runs it here, in the command's own process
(``Library.run``, in a worker thread the main one waits for, ready for
Ctrl-C): no manager, no event loop, so a command's start-up is
the interpreter and the databases. The rules are the manager's (see
python/phasekit/jobs/_direct.py): a killed command leaves its job to be
resumed, an identical job left interrupted is joined and resumed, another
process's pause or cancel is honoured.

Ctrl-C asks the job to pause at its next safe point (to stop, when it cannot
be resumed) and says how to resume it; a second Ctrl-C exits at once (the
job then resumes from its last checkpoint, as after a crash).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from types import FrameType
from typing import TYPE_CHECKING, Any

from .._progress import Progress
from ..jobs import JobControl
from ._exits import EXIT_INTERRUPTED
from ._report import Options, Reporter, report_generic, show_progress

if TYPE_CHECKING:
    from ..jobs import DirectRun, Job
    from ..library import Library


def dispatch_and_report(
    library: Library,
    job: Job[Any],
    options: Options,
    reporters: Mapping[str, Reporter],
    *,
    resumable: bool = True,
) -> int:
    """Run ``job`` to its stop with a progress bar (on a terminal; it goes
    to stderr), then print its report with the reporter of its job type.
    Returns the exit status."""
    run = run_with_progress(library, job, resumable=resumable)
    reporter = reporters.get(job.job_name, report_generic)
    return reporter(library, run, run.status, options)


def run_with_progress(library: Library, job: Job[Any], *, resumable: bool = True) -> DirectRun[Any]:
    """Run ``job`` to its stop with a progress bar (on a terminal; it goes
    to stderr), Ctrl-C pausing it (stopping it if not ``resumable``)."""
    control = JobControl()
    previous = signal.signal(signal.SIGINT, _on_ctrl_c(control, resumable))
    try:
        with Progress(job.job_name, enabled=sys.stderr.isatty()) as bar:
            # Progress is decoded for a bar only: piped or --json, none is drawn.
            listener = (lambda p: show_progress(bar, p)) if bar.shown else None
            return _in_worker(lambda: library.run(job, control=control, on_progress=listener))
    finally:
        signal.signal(signal.SIGINT, previous)


def _in_worker(fn: Callable[[], DirectRun[Any]]) -> DirectRun[Any]:
    """``fn()`` in a worker thread, while this (main) thread only waits.

    Python runs a signal handler in the main thread between two of its
    bytecodes: a job running in the main thread would hear Ctrl-C only when
    its current native call (a sweep, a batch of hashes: seconds) returns,
    and two presses meanwhile would arrive as one. Waiting in short joins
    keeps the main thread ready for them."""
    result: list[DirectRun[Any]] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            result.append(fn())
        except BaseException as exc:  # raised again in the main thread
            failure.append(exc)

    # A daemon: a second Ctrl-C ends the process with os._exit anyway.
    worker = threading.Thread(target=work, name="phasekit-job", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
    if failure:
        raise failure[0]
    return result[0]


def _on_ctrl_c(control: JobControl, resumable: bool) -> Any:
    pressed = 0

    def handler(_signum: int, _frame: FrameType | None) -> None:
        # Runs in the main thread, which only waits for the job's thread: it
        # sets a flag the job looks at, at its next safe point, and prints.
        nonlocal pressed
        pressed += 1
        if pressed > 1:
            print("\nphasekit: stopped; the job resumes from its last checkpoint", file=sys.stderr)
            sys.stderr.flush()
            # The process ends now, without unwinding: the job is left
            # running in jobs.db under this process's lease, which dies with
            # it, and the next run or manager resumes it.
            os._exit(EXIT_INTERRUPTED)
        what = "pausing" if resumable else "stopping"
        print(f"\nphasekit: {what} at the next safe point (Ctrl-C again to quit now)",
              file=sys.stderr)  # fmt: skip
        if resumable:
            control.pause()
        else:
            control.cancel()

    return handler
