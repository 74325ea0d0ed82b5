"""The phase processor: runs a job's phases in order, with skip-to, early
completion, per-phase state and history, recovery strategies, and resume
from the last checkpoint.

Its checkpoint is small by construction: the name of the current phase, that
phase's state, the job's ``shared`` mapping and the phase history. States of
finished phases are dropped.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..errors import (
    CorruptStateError,
    JobStoreUnavailable,
    LeaseLostError,
    LibraryUnavailable,
    StorageFullError,
)
from ._codec import decode, encode
from ._context import JobCancelled, JobContext, JobInterrupted
from ._definition import Job, OutputT
from ._phase_model import (
    COMPLETE,
    FatalError,
    NonFatalError,
    PhaseRecord,
    PhaseResult,
    Phases,
    PhaseStatus,
    Recovery,
    SkipTo,
    Step,
    flatten,
)
from ._progress import PhaseProgress, RateMeter

if TYPE_CHECKING:
    from ._backend import JobBackend

#: Version of the processor's checkpoint layout.
STATE_VERSION = 1
#: Phase transitions allowed in one run: a guard against skip-to loops.
MAX_TRANSITIONS = 100_000


class PhaseContext:
    """What a phase sees: its own ``state``, the job's ``shared`` mapping,
    checkpoints, interruption, non-fatal errors and atomic-unit progress."""

    def __init__(self, processor: PhaseProcessor, job_ctx: JobContext, step: Step) -> None:
        self.job_ctx = job_ctx
        self.phase = step.name
        self.log = job_ctx.log
        self._processor = processor
        self._index = processor.index_of(step.name)
        self._rate = RateMeter()
        self.errors = 0
        self._done = 0
        self._total: int | None = None

    @property
    def id(self) -> str:
        return self.job_ctx.id

    @property
    def state(self) -> Any:
        """This phase's state: restored on resume, saved by :meth:`checkpoint`."""
        return self._processor.state

    @state.setter
    def state(self, value: Any) -> None:
        self._processor.state = value

    @property
    def shared(self) -> dict[str, Any]:
        """Results phases hand to each other (kept small: counts, not lists)."""
        return self._processor.shared

    def checkpoint(self, state: Any = ...) -> int:
        """Save the job's position (this phase, its ``state``), then honour a
        pending pause or cancel. Passing ``state`` sets it first."""
        if state is not ...:
            self.state = state
        self._report_phase()
        return self._processor.save(self.job_ctx)

    def check_interrupt(self) -> None:
        self.job_ctx.check_interrupt()

    @property
    def stop_requested(self) -> bool:
        """True once the job was asked to pause or stop: save a checkpoint."""
        return self.job_ctx.stop_requested

    def error(self, message: str, *, path: str | None = None, errno: int | None = None) -> None:
        """A non-fatal error of this phase: recorded, the job goes on."""
        self.errors += 1
        self.job_ctx.error(message, path=path, errno=errno)

    def file_errors(self, errors: Iterable[tuple[str, int, str]], *, keep: int = 1000) -> None:
        """Per-file errors ``(path, errno, message)`` of a bulk step: every
        one counted in ``shared["errors"]``, the first ``keep`` of the job
        recorded as non-fatal errors (errno 0: not an OS error)."""
        for path, errno, message in errors:
            count = self.shared["errors"] = self.shared.get("errors", 0) + 1
            if count <= keep:
                self.error(message, path=path, errno=errno or None)

    def warn(self, message: str) -> None:
        self.job_ctx.warn(message)

    def add_items(self, n: int = 1, *, nbytes: int = 0) -> None:
        self.job_ctx.add_items(n, nbytes=nbytes)

    def units(self, done: int, total: int | None = None) -> None:
        """Atomic-unit progress of this phase: ``done`` of ``total``."""
        self._done, self._total = done, total
        self._report_phase()

    def advance(self, n: int = 1) -> None:
        self.units(self._done + n, self._total)

    def progress(self, **fields: Any) -> None:
        """Job-level progress (see :meth:`JobContext.progress`), tagged with
        this phase."""
        self._report_phase(report=False)
        self.job_ctx.progress(**fields)

    def _phase_progress(self, rate: float | None, eta: float | None) -> PhaseProgress:
        start, span = self._processor.share(self._index)
        return PhaseProgress(
            name=self.phase,
            index=self._index,
            count=len(self._processor.steps),
            done=self._done,
            total=self._total,
            rate=rate,
            eta_s=eta,
            errors=self.errors,
            start=start,
            span=span,
        )

    def _report_phase(self, *, report: bool = True) -> None:
        rate, eta = self._rate.measure(self._done, self._total)
        phase = self._phase_progress(rate, eta)
        if report:
            self.job_ctx.report_phase(phase)
        else:
            self.job_ctx.phase_progress = phase

    def begin(self) -> None:
        """Report that this phase starts (its counts start afresh)."""
        self.job_ctx.start_phase(self._phase_progress(None, None))


class PhaseProcessor:
    """Runs phases for one job run. Built fresh for every run (and resume)."""

    def __init__(self, phases: Phases) -> None:
        self.steps = flatten(phases)
        self._names = [s.name for s in self.steps]
        self.at = 0
        self.state: Any = None
        self.shared: dict[str, Any] = {}
        self.attempt = 1
        self.history: list[dict[str, Any]] = [
            {"phase": n, "status": PhaseStatus.PENDING.value, "attempt": 0} for n in self._names
        ]
        self._entry: dict[str, Any] | None = None
        self.state = self.steps[0].phase.initial_state()
        self._saved_state = encode(self.state)
        #: Each phase's (start, span) as shares of the job (see share()).
        self._shares: list[tuple[float, float]] | None = None

    def index_of(self, name: str) -> int:
        return self._names.index(name)

    def share(self, index: int) -> tuple[float, float]:
        """Where phase ``index`` lies in the job's work: the share done
        before it starts and its own share (from the phases' weights)."""
        if self._shares is None:
            count = len(self.steps)
            return index / count, 1 / count
        return self._shares[index]

    def _weigh(self, ctx: JobContext) -> None:
        """Read the phases' weights (once per run, after a resume's restore,
        so a callable weight sees ``shared``)."""
        weights = [s.phase.weight(PhaseContext(self, ctx, s)) for s in self.steps]
        total = sum(weights)
        if total <= 0:
            weights, total = [1.0] * len(weights), float(len(weights))
        shares, done = [], 0.0
        for weight in weights:
            shares.append((done / total, weight / total))
            done += weight
        self._shares = shares

    # persistence

    def snapshot(self) -> dict[str, Any]:
        return {
            "v": STATE_VERSION,
            "at": self._names[self.at] if self.at < len(self.steps) else None,
            "state": self.state,
            "shared": self.shared,
            "attempt": self.attempt,
            "history": self.history,
            "saved_at": time.time(),
        }

    def save(self, ctx: JobContext) -> int:
        snap = self.snapshot()
        self._saved_state = encode(self.state)  # a copy, for retry-from-checkpoint
        # After the last phase the job is done: a pause asked for now would
        # leave a job with nothing left to run but its end to record.
        return ctx.checkpoint(snap, interrupt=self.at < len(self.steps))

    def restore(self, snap: Any) -> None:
        if not isinstance(snap, dict) or snap.get("v") != STATE_VERSION:
            raise CorruptStateError("checkpoint is not a phase-processor state of this version")
        at = snap.get("at")
        if at is None:
            self.at = len(self.steps)
        elif at in self._names:
            self.at = self._names.index(at)
        else:
            raise CorruptStateError(
                f"checkpoint is in phase {at!r}, which this job no longer has "
                f"(phases: {', '.join(self._names)})"
            )
        self.state = snap.get("state")
        self.shared = dict(snap.get("shared") or {})
        self.attempt = int(snap.get("attempt", 1))
        self.history = list(snap.get("history") or self.history)
        self._saved_state = encode(self.state)
        # The run that wrote this checkpoint was interrupted inside this phase.
        for entry in reversed(self.history):
            if entry["status"] == PhaseStatus.RUNNING.value:
                entry["status"] = PhaseStatus.PAUSED.value
                # Stopped at (or soon after) the checkpoint it resumes from.
                entry["ended_at"] = entry.get("ended_at") or snap.get("saved_at") or time.time()
                break

    # running

    def run(self, ctx: JobContext) -> dict[str, Any]:
        """Run (or resume) to the end; returns ``shared``. Raises JobPaused /
        JobCancelled at safe points, and the phase's error when it is fatal."""
        saved = ctx.load_state()
        if saved is not None:
            self.restore(saved)
        self._weigh(ctx)
        transitions = 0
        while self.at < len(self.steps):
            transitions += 1
            if transitions > MAX_TRANSITIONS:
                raise FatalError(f"more than {MAX_TRANSITIONS} phase transitions: a skip-to loop")
            step = self.steps[self.at]
            pctx = PhaseContext(self, ctx, step)
            if not step.enabled(pctx):
                self._record(step.name, PhaseStatus.SKIPPED)
                self._advance(self.at + 1)
                continue
            pctx.begin()
            result = self._run_step(step, pctx)
            if result is COMPLETE:
                for entry in self.history:
                    if entry["status"] == PhaseStatus.PENDING.value:
                        entry["status"] = PhaseStatus.SKIPPED.value
                self._advance(len(self.steps))
            elif isinstance(result, SkipTo):
                target = self._resolve(step.name, result.phase)
                for name in self._names[self.at + 1 : target]:
                    self._record(name, PhaseStatus.SKIPPED)
                self._advance(target)
            elif result is None:
                self._advance(self.at + 1)
            else:
                raise FatalError(
                    f"phase {step.name!r} returned {result!r}; expected None, SkipTo or COMPLETE"
                )
            try:
                self.save(ctx)  # a phase boundary is a safe point
            except JobInterrupted as exc:
                # Stopped before the next phase began: that phase is where the
                # job stopped (a cancelled job always shows where), kept too.
                status = PhaseStatus.CANCELLED if isinstance(exc, JobCancelled) else None
                if status is not None and self.at < len(self.steps):
                    self._end(self._start(self.steps[self.at].name), status, None)
                    ctx.checkpoint(self.snapshot(), interrupt=False)
                raise
        ctx.phase_progress = None
        return self.shared

    def _advance(self, to: int) -> None:
        self.at = to
        self.state = None if to >= len(self.steps) else self.steps[to].phase.initial_state()
        self.attempt = 1
        self._saved_state = encode(self.state)

    def _run_step(self, step: Step, pctx: PhaseContext) -> PhaseResult:
        phase = step.phase
        while True:
            entry = self._start(step.name)
            try:
                result = phase.execute(pctx)
                phase.on_success(pctx)
            except JobInterrupted as exc:
                cancelled = isinstance(exc, JobCancelled)
                self._end(entry, PhaseStatus.CANCELLED if cancelled else PhaseStatus.PAUSED, None)
                raise
            except LeaseLostError:
                # Not this run's job any more: no hook, no retry; the run that
                # took it over does the phase.
                raise
            except StorageFullError as exc:
                # No recovery strategy helps until space is freed: stop here,
                # resumable from the last checkpoint (see _runner).
                self._end(entry, PhaseStatus.PAUSED, str(exc), errors=pctx.errors)
                raise
            except JobStoreUnavailable:
                # The job store cannot be used for now (not the phase's own
                # fault): no recovery strategy applies and nothing more can
                # be recorded; the run is interrupted (see _runner._run).
                raise
            except LibraryUnavailable as exc:
                # The library's database is away for now (a server restart):
                # not the phase's fault, so no recovery strategy applies;
                # the run is interrupted and resumes from its last
                # checkpoint (see _runner._run).
                self._end(entry, PhaseStatus.PAUSED, str(exc), errors=pctx.errors)
                raise
            except FatalError as exc:
                self._fail(step, pctx, entry, exc)
                raise
            except NonFatalError as exc:
                pctx.error(f"phase {step.name}: {exc}")
                self._fail(step, pctx, entry, exc)
                return None
            except Exception as exc:  # the phase failed: its recovery strategy decides
                if phase.recovery is Recovery.SKIP_PHASE:
                    pctx.error(f"phase {step.name} skipped after {_describe(exc)}")
                    self._fail(step, pctx, entry, exc, status=PhaseStatus.SKIPPED)
                    return None
                retry = phase.recovery in (Recovery.RESTART_PHASE, Recovery.RETRY_FROM_CHECKPOINT)
                if not retry or self.attempt >= phase.max_attempts:
                    self._fail(step, pctx, entry, exc)
                    raise
                self._fail(step, pctx, entry, exc)  # its hook rolls back before the retry
                pctx.log.warning(
                    "phase %s failed (attempt %d of %d), retrying: %s",
                    step.name,
                    self.attempt,
                    phase.max_attempts,
                    _describe(exc),
                )
                backoff = phase.backoff_s * 2 ** (self.attempt - 1)
                self.attempt += 1
                if phase.recovery is Recovery.RESTART_PHASE:
                    self.state = phase.initial_state()
                else:
                    self.state = decode(self._saved_state)
                # The retry's starting point is saved first: a pause during
                # the backoff (or a crash) resumes the retry, not the failure.
                self.save(pctx.job_ctx)
                self._backoff(pctx, backoff)
                continue
            self._end(entry, PhaseStatus.COMPLETED, None, errors=pctx.errors)
            return result

    def _fail(
        self,
        step: Step,
        pctx: PhaseContext,
        entry: dict[str, Any],
        exc: BaseException,
        status: PhaseStatus = PhaseStatus.FAILED,
    ) -> None:
        self._end(entry, status, _describe(exc), errors=pctx.errors)
        try:
            step.phase.on_failure(pctx, exc)
        except Exception as hook_exc:  # a broken hook must not hide the phase's error
            pctx.log.error("phase %s: on_failure raised %s", step.name, _describe(hook_exc))

    @staticmethod
    def _backoff(pctx: PhaseContext, seconds: float) -> None:
        """Sleep between tries in short slices, so pause and cancel still work."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            pctx.check_interrupt()
            time.sleep(min(left, 0.05))
        pctx.check_interrupt()

    # history

    def _start(self, name: str) -> dict[str, Any]:
        entry = self._latest(name)
        if entry is None or entry["status"] != PhaseStatus.PENDING.value:
            entry = {"phase": name}
            self._append(entry)
        entry.update(
            status=PhaseStatus.RUNNING.value,
            attempt=self.attempt,
            started_at=time.time(),
            ended_at=None,
            error=None,
            errors=0,
        )
        return entry

    @staticmethod
    def _end(
        entry: dict[str, Any], status: PhaseStatus, error: str | None, *, errors: int = 0
    ) -> None:
        entry.update(status=status.value, ended_at=time.time(), error=error, errors=errors)

    def _record(self, name: str, status: PhaseStatus) -> None:
        entry = self._latest(name)
        if entry is None or entry["status"] != PhaseStatus.PENDING.value:
            entry = {"phase": name, "attempt": 0}
            self._append(entry)
        entry["status"] = status.value

    def _append(self, entry: dict[str, Any]) -> None:
        """Add an execution (a retry, a resume, a backward skip) in time order:
        after what has run, before the phases still pending."""
        pending = PhaseStatus.PENDING.value
        at = next((i for i, e in enumerate(self.history) if e["status"] == pending), None)
        self.history.insert(len(self.history) if at is None else at, entry)

    def _latest(self, name: str) -> dict[str, Any] | None:
        for entry in reversed(self.history):
            if entry["phase"] == name:
                found: dict[str, Any] = entry
                return found
        return None

    def _resolve(self, origin: str, target: str) -> int:
        """Index of the phase a SkipTo names: a qualified phase name, a group
        (its first phase), or a bare phase name that is unique."""
        if target in self._names:
            return self._names.index(target)
        for i, step in enumerate(self.steps):
            if target in _prefixes(step.groups):
                return i
        bare = [i for i, s in enumerate(self.steps) if s.phase.name == target]
        if len(bare) == 1:
            return bare[0]
        raise FatalError(
            f"phase {origin!r} asked to skip to {target!r}, which is "
            f"{'ambiguous' if bare else 'not a phase of this job'} "
            f"(phases: {', '.join(self._names)})"
        )


def _prefixes(groups: tuple[str, ...]) -> set[str]:
    return {".".join(groups[: i + 1]) for i in range(len(groups))}


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class PhasedJob(Job[OutputT]):
    """A job built from phases. Implement :meth:`phases` (it may depend on the
    job's fields: mode-driven phase lists), and :meth:`output` to turn the
    ``shared`` results into the job's output (``PhasedJob[MyOutput]`` types it)."""

    def phases(self) -> Phases:
        raise NotImplementedError(f"{type(self).__qualname__} must implement phases()")

    def output(self, shared: dict[str, Any]) -> OutputT:
        """The job's output from what the phases left in ``shared``."""
        result: OutputT = None  # type: ignore[assignment]  # no output unless overridden
        return result

    def run(self, ctx: JobContext) -> OutputT:
        processor = PhaseProcessor(self.phases())
        try:
            shared = processor.run(ctx)
        finally:
            # Stored with the run's outcome, whatever way it ended.
            ctx.phase_history = processor.history
        return self.output(shared)


def phase_history(store: JobBackend, job_id: str) -> list[PhaseRecord]:
    """The phase history of a phased job: from its outcome once a run has
    ended, else from its latest checkpoint (empty for other jobs)."""
    metrics = store.outcome(job_id).get("metrics") or {}
    entries = metrics.get("phases")
    if entries is None:
        saved = store.load_checkpoint(job_id)
        snap = saved[1] if saved is not None else None
        entries = snap.get("history") if isinstance(snap, dict) else None
    return [PhaseRecord.from_dict(e) for e in entries or []]
