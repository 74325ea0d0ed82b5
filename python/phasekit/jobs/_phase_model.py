"""The pieces a phased job is built from: phases, groups, chains, outcomes,
recovery strategies and the phase errors. :mod:`._phases` runs them."""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from ..errors import JobDefinitionError, PhasekitError

if TYPE_CHECKING:
    from ._phases import PhaseContext


class Recovery(enum.StrEnum):
    """What the processor does when a phase raises an unexpected exception."""

    #: The job fails (the default).
    ABORT = "abort"
    #: Run the phase again from its initial state.
    RESTART_PHASE = "restart_phase"
    #: Run the phase again from its last checkpoint, after a backoff.
    RETRY_FROM_CHECKPOINT = "retry_from_checkpoint"
    #: Record the error, mark the phase skipped and go on (its work is lost).
    SKIP_PHASE = "skip_phase"


class PhaseStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    SKIPPED = "skipped"
    FAILED = "failed"
    #: Stopped at a safe point (paused, the process stopped, or the disk
    #: under the library filled up); a resume goes on from its checkpoint.
    PAUSED = "paused"
    #: The job was cancelled while this phase ran.
    CANCELLED = "cancelled"


class FatalError(PhasekitError):
    """Raised by a phase: the job fails now, whatever the recovery strategy."""


class NonFatalError(PhasekitError):
    """Raised by a phase: the phase ends (failed), the error is recorded and
    the job goes on with the next phase, ending ``completed_with_errors``."""


@dataclass(frozen=True, slots=True)
class PhaseRecord:
    """One execution of a phase, or a phase that has not run yet (pending)."""

    phase: str
    status: PhaseStatus
    attempt: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    #: Non-fatal errors recorded while it ran.
    errors: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PhaseRecord:
        known = {"phase", "attempt", "started_at", "ended_at", "error", "errors"}
        return cls(status=PhaseStatus(d["status"]), **{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True, slots=True)
class SkipTo:
    """Phase outcome: jump to the named phase (or group)."""

    phase: str


class _Complete:
    __slots__ = ()

    def __repr__(self) -> str:
        return "COMPLETE"


#: Phase outcome: the job is done; the phases after this one do not run.
COMPLETE = _Complete()

#: What ``execute`` returns: None (continue with the next phase), a
#: :class:`SkipTo`, or :data:`COMPLETE`.
PhaseResult = Union[None, SkipTo, _Complete]  # noqa: UP007 (a runtime alias)

Hook = Callable[["PhaseContext"], None]
FailureHook = Callable[["PhaseContext", BaseException], None]
Condition = Callable[["PhaseContext"], bool]
#: A phase's expected share of the job's work: a number, or a callable
#: evaluated when a run starts (so it can depend on the job's fields or the
#: results earlier phases left in ``ctx.shared``).
Weight = Union[float, Callable[["PhaseContext"], float]]  # noqa: UP007 (a runtime alias)


class Phase:
    """One named step of a job.

    Either pass the steps as callables (usually bound methods of the job) or
    subclass and override :meth:`execute`, :meth:`on_success`,
    :meth:`on_failure`, :meth:`enabled` and :meth:`initial_state`.

    - ``execute(ctx)`` does the work; it reads and updates ``ctx.state`` (this
      phase's own msgpack-able state) and calls ``ctx.checkpoint()`` at safe
      points. It returns None, :class:`SkipTo` or :data:`COMPLETE`.
    - ``when(ctx)``: the phase runs only if this returns True; otherwise it is
      recorded as skipped (conditional and mode-driven phase lists).
    - ``on_success(ctx)`` runs after ``execute`` returns; ``on_failure(ctx,
      error)`` after every failed attempt (roll back there before a retry).
    - ``recovery``, ``max_attempts`` and ``backoff_s`` say what happens when
      ``execute`` raises (see :class:`Recovery`); retries wait ``backoff_s``,
      doubling each time. :class:`FatalError` always fails the job;
      :class:`NonFatalError` ends the phase and the job goes on.
    - ``weight``: the phase's expected share of the job's work, relative to
      the other phases' (default 1): the job's percent moves through each
      phase in proportion to it. A callable is evaluated when a run starts.
    """

    def __init__(
        self,
        name: str,
        execute: Callable[[PhaseContext], PhaseResult] | None = None,
        *,
        on_success: Hook | None = None,
        on_failure: FailureHook | None = None,
        when: Condition | None = None,
        initial_state: Callable[[], Any] | None = None,
        recovery: Recovery = Recovery.ABORT,
        max_attempts: int = 3,
        backoff_s: float = 0.5,
        weight: Weight = 1.0,
    ) -> None:
        _check_name(name)
        if max_attempts < 1:
            raise JobDefinitionError(f"phase {name!r}: max_attempts must be at least 1")
        if backoff_s < 0:
            raise JobDefinitionError(f"phase {name!r}: backoff_s must not be negative")
        if not callable(weight):
            _check_weight(name, weight)
        self.name = name
        self._weight = weight
        self.recovery = Recovery(recovery)
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self._execute = execute
        self._on_success = on_success
        self._on_failure = on_failure
        self._when = when
        self._initial_state = initial_state

    def execute(self, ctx: PhaseContext) -> PhaseResult:
        if self._execute is None:
            raise NotImplementedError(f"phase {self.name!r} has no execute step")
        return self._execute(ctx)

    def on_success(self, ctx: PhaseContext) -> None:
        if self._on_success is not None:
            self._on_success(ctx)

    def on_failure(self, ctx: PhaseContext, error: BaseException) -> None:
        if self._on_failure is not None:
            self._on_failure(ctx, error)

    def enabled(self, ctx: PhaseContext) -> bool:
        return True if self._when is None else bool(self._when(ctx))

    def initial_state(self) -> Any:
        return None if self._initial_state is None else self._initial_state()

    def weight(self, ctx: PhaseContext) -> float:
        """This phase's expected share of the work (see the class docstring)."""
        weight = self._weight
        if callable(weight):
            return _check_weight(self.name, weight(ctx))
        return weight

    def then(self, *following: Phase | PhaseGroup) -> PhaseGroup:
        """Composition: this phase, then ``following`` (an unnamed group)."""
        return PhaseGroup(None, [self, *following])

    def __repr__(self) -> str:
        return f"Phase({self.name!r}, recovery={self.recovery.value})"


class PhaseGroup:
    """Phases run in order as one unit. A named group prefixes its phases'
    names (``"group.phase"``) and can be the target of :class:`SkipTo`; an
    unnamed one (from :meth:`Phase.then`) is plain composition. ``when``
    applies to every phase inside."""

    def __init__(
        self,
        name: str | None,
        phases: Iterable[Phase | PhaseGroup],
        *,
        when: Condition | None = None,
    ) -> None:
        if name is not None:
            _check_name(name)
        self.name = name
        self.phases = list(phases)
        self.when = when
        if not self.phases:
            raise JobDefinitionError(f"phase group {name!r} is empty")
        for p in self.phases:
            if not isinstance(p, Phase | PhaseGroup):
                raise JobDefinitionError(f"phase group {name!r}: {p!r} is not a phase")

    def then(self, *following: Phase | PhaseGroup) -> PhaseGroup:
        return PhaseGroup(None, [self, *following])

    def __repr__(self) -> str:
        return f"PhaseGroup({self.name!r}, {self.phases!r})"


@dataclass(frozen=True, slots=True)
class Step:
    """A phase with its qualified name and the conditions of its groups."""

    name: str
    phase: Phase
    groups: tuple[str, ...]
    conditions: tuple[Condition, ...]

    def enabled(self, ctx: PhaseContext) -> bool:
        return all(c(ctx) for c in self.conditions) and self.phase.enabled(ctx)


#: What a phased job's ``phases()`` returns: a phase, a group or chain, or a list.
Phases = Union[Phase, PhaseGroup, Sequence[Union[Phase, PhaseGroup]]]  # noqa: UP007


def flatten(phases: Phases) -> list[Step]:
    """The phases in run order, groups expanded; names must be unique."""
    items = [phases] if isinstance(phases, Phase | PhaseGroup) else phases
    steps = list(_walk(items, (), ()))
    if not steps:
        raise JobDefinitionError("a phased job needs at least one phase")
    seen: set[str] = set()
    for step in steps:
        if step.name in seen:
            raise JobDefinitionError(f"two phases are named {step.name!r}")
        seen.add(step.name)
    return steps


def _walk(
    items: Iterable[Phase | PhaseGroup], groups: tuple[str, ...], conditions: tuple[Condition, ...]
) -> Iterator[Step]:
    for item in items:
        if isinstance(item, Phase):
            yield Step(".".join((*groups, item.name)), item, groups, conditions)
        elif isinstance(item, PhaseGroup):
            inner_groups = groups if item.name is None else (*groups, item.name)
            inner_conditions = conditions if item.when is None else (*conditions, item.when)
            yield from _walk(item.phases, inner_groups, inner_conditions)
        else:
            raise JobDefinitionError(f"{item!r} is not a Phase or PhaseGroup")


def _check_weight(name: str, weight: object) -> float:
    if (
        isinstance(weight, bool)
        or not isinstance(weight, int | float)
        or not (weight >= 0 and math.isfinite(weight))
    ):
        raise JobDefinitionError(f"phase {name!r}: weight must be a number >= 0, got {weight!r}")
    return float(weight)


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name or "." in name:
        raise JobDefinitionError(f"phase name {name!r}: a non-empty name without '.'")
