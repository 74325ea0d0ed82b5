"""How the commands report a job that stopped: why it did not finish and how
to go on, each job type's summary, the progress bar's fields. Shared by the
direct run of one job (_one.py) and the manager's (_run.py); loads no event
loop."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .._json import json_ready
from ..jobs import JobStatus
from ._common import human
from ._exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_STOPPED

if TYPE_CHECKING:
    from .._progress import Progress
    from ..jobs import ErrorRecord, JobProgress, JobRecord
    from ..library import Library


class StoppedJob(Protocol):
    """A job that stopped, as a report reads it: a JobHandle (a manager ran
    or followed it) or a DirectRun (it ran in the command's own thread)."""

    @property
    def id(self) -> str: ...

    @property
    def record(self) -> JobRecord: ...

    @property
    def error(self) -> str | None: ...

    def errors(self) -> list[ErrorRecord]: ...

    def output(self) -> Any: ...


@dataclass(frozen=True)
class Options:
    """How a command reports its jobs (``phasekit resume`` uses the defaults)."""

    json: bool = False
    max_errors: int = 20
    limit: int = 20


#: How a job type reports its outcome on the command line: called after the
#: job stopped; returns the exit status. Each command that runs a job type
#: has one (its ``report``); a job no command knows gets report_generic.
Reporter = Callable[["Library", StoppedJob, "JobStatus", Options], int]


def show_progress(bar: Progress, progress: JobProgress) -> None:
    """Draw one progress value: percent, count, rate, phase, bytes, errors."""
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


def report_stop(handle: StoppedJob, status: JobStatus) -> int | None:
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
    if status is JobStatus.QUEUED:
        # Interrupted, not failed: the library's database went away (a
        # server restart) or the library was closed under it.
        print(f"phasekit: job {handle.id} was interrupted and is queued again; go on"
              f" with: phasekit resume {handle.id} (or a worker takes it)",
              file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    if not status.finished:
        print(f"phasekit: job {handle.id} is {status.value}", file=sys.stderr)
        return EXIT_FAILED
    return None


def finished_output(handle: StoppedJob, status: JobStatus, kind: type[Any]) -> Any:
    """The output of a job that finished, when it is a ``kind``; else the
    exit status, the reason said (a stop, or a finish with no result)."""
    stopped = report_stop(handle, status)
    if stopped is not None:
        return stopped
    output = handle.output()
    if not isinstance(output, kind):
        print(f"phasekit: {status.value}: no result", file=sys.stderr)
        return EXIT_FAILED
    return output


def report_generic(
    library: Library, handle: StoppedJob, status: JobStatus, options: Options
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


def print_errors(handle: StoppedJob, count: int, what: str, limit: int) -> None:
    """The first ``limit`` non-critical errors of a job, to stderr."""
    if not count:
        return
    print(f"phasekit: {count:,} {what}:", file=sys.stderr)
    for error in handle.errors()[:limit]:
        print(f"  {error.path}: {error.message}", file=sys.stderr)
    if count > limit:
        print(f"  ... and {count - limit:,} more (phasekit jobs show {handle.id})",
              file=sys.stderr)  # fmt: skip
