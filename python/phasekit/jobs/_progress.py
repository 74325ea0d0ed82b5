"""Typed progress: what a job reports and what ``JobHandle.updates()`` yields.

One :class:`JobProgress` covers every form the job model names: a count
(``done`` of ``total``), a percentage, indeterminate work with a message,
bytes, the job's own structured dataclass (``data``) and, for phased jobs, the
current phase's atomic units with rate, ETA and error count. It is stored in
jobs.db as a plain mapping so another process (a CLI) can read it.

The percent a UI draws is the whole job's (:attr:`JobProgress.percent`): for
a phased job, the phases before the current one count by their weight (their
expected share of the work) and the current one by its own count; it never
goes back within a job, across phases, pauses and resumes, and it is None
(indeterminate: show the counts and the rate) until something measurable is
known, never a frozen 0.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from ..errors import CorruptStateError


@dataclass(frozen=True, slots=True)
class PhaseProgress:
    """Where a phased job is: the phase, its atomic units, rate, ETA, errors."""

    name: str
    #: 0-based position of the phase among the job's phases, and their number.
    index: int
    count: int
    done: int = 0
    total: int | None = None
    #: Units per second since the phase started; None until there is a rate.
    rate: float | None = None
    #: Seconds left at the current rate; None when the total is unknown.
    eta_s: float | None = None
    errors: int = 0
    #: The share of the whole job done when this phase started, and this
    #: phase's own share (0 to 1; from the phases' weights).
    start: float = 0.0
    span: float = 0.0


@dataclass(frozen=True, slots=True)
class JobProgress:
    """A job's latest progress report. Every field is optional."""

    done: int | None = None
    total: int | None = None
    message: str | None = None
    bytes_done: int | None = None
    bytes_total: int | None = None
    #: Items per second and seconds left, when the job reports a count.
    rate: float | None = None
    eta_s: float | None = None
    #: The job's own structured progress: a mapping as stored, or an instance
    #: of the job's ``progress_type`` when read through a handle.
    data: Any = None
    phase: PhaseProgress | None = None
    #: The whole job's percent as the running job computed it (see
    #: :attr:`percent`); when a job reports a percentage itself, the share
    #: of the current phase it stands for.
    explicit_percent: float | None = None

    @property
    def percent(self) -> float | None:
        """0 to 100 for the whole job; None while the work is indeterminate.

        What the running job stored (never lower than before); for a value
        built by hand, derived from the count, the bytes or the phase."""
        if self.explicit_percent is not None:
            return self.explicit_percent
        return overall_percent(self)

    @property
    def indeterminate(self) -> bool:
        return self.percent is None

    def replace(self, **changes: Any) -> JobProgress:
        """A copy with ``changes`` (``dataclasses.replace``, without its
        per-call introspection: every job's end makes one)."""
        values = {name: getattr(self, name) for name in _PROGRESS_FIELDS}
        values.update(changes)
        return JobProgress(**values)

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in _PROGRESS_FIELDS}
        phase = self.phase
        if phase is not None:
            out["phase"] = {name: getattr(phase, name) for name in _PHASE_FIELDS}
        return out  # a dataclass ``data`` is stored as a mapping by the codec

    @classmethod
    def from_dict(cls, value: Any, data_type: type[Any] | None = None) -> JobProgress:
        """Rebuild from :meth:`to_dict`; ``data_type`` turns ``data`` back into
        the job's dataclass. Unknown keys (a newer writer) are ignored."""
        if not isinstance(value, dict):
            raise CorruptStateError("stored progress is not a mapping")
        fields = {k: v for k, v in value.items() if k in _PROGRESS_FIELDS}
        phase = fields.get("phase")
        if isinstance(phase, dict):
            fields["phase"] = PhaseProgress(
                **{k: v for k, v in phase.items() if k in _PHASE_FIELDS}
            )
        data = fields.get("data")
        if data_type is not None and isinstance(data, dict):
            try:
                fields["data"] = data_type(**data)
            except TypeError as exc:
                raise CorruptStateError(
                    f"stored progress does not fit {data_type.__qualname__}: {exc}"
                ) from exc
        return cls(**fields)


#: Field names, in order (dicts keep it), read once: ``dataclasses.fields``
#: is slow, and every job's end and every progress read goes through them.
_PROGRESS_FIELDS = dict.fromkeys(f.name for f in dataclasses.fields(JobProgress))
_PHASE_FIELDS = dict.fromkeys(f.name for f in dataclasses.fields(PhaseProgress))


def own_fraction(progress: JobProgress) -> float | None:
    """The share (0 to 1) of the current work a report measures: its
    percentage, count or bytes, else the phase's units; None if unknown."""
    if progress.explicit_percent is not None:
        return progress.explicit_percent / 100.0
    if progress.done is not None and progress.total:
        return progress.done / progress.total
    if progress.bytes_done is not None and progress.bytes_total:
        return progress.bytes_done / progress.bytes_total
    phase = progress.phase
    if phase is not None and phase.total:
        return phase.done / phase.total
    return None


def overall_percent(progress: JobProgress) -> float | None:
    """The whole job's percent for a report (not yet held above earlier
    ones): within a phase, its start plus its span times the share done."""
    fraction = own_fraction(progress)
    phase = progress.phase
    if phase is None:
        return None if fraction is None else 100.0 * min(max(fraction, 0.0), 1.0)
    start, span = phase.start, phase.span
    if not span and phase.count and not start:
        # Written without weights (an older phasekit): equal phases.
        start, span = phase.index / phase.count, 1.0 / phase.count
    if fraction is None:
        # Nothing measurable in this phase: what the finished phases did,
        # if they did anything; else indeterminate.
        return 100.0 * start if start > 0 else None
    return 100.0 * min(start + span * min(max(fraction, 0.0), 1.0), 1.0)


class Floor:
    """Keeps a job's percent from going back: across reports, phases, and
    (seeded with the stored percent) pauses and resumes."""

    __slots__ = ("value",)

    def __init__(self, value: float | None = None) -> None:
        self.value = value

    def hold(self, percent: float | None) -> float | None:
        """``percent``, raised to the highest seen so far (None stays None
        until something was measured; after that it stays at the floor)."""
        if percent is None:
            return self.value
        if self.value is not None and percent < self.value:
            return self.value
        self.value = min(percent, 100.0)
        return self.value


class RateMeter:
    """Rate and ETA of a count, measured from the first report."""

    def __init__(self) -> None:
        self._start: tuple[float, int] | None = None

    def reset(self) -> None:
        self._start = None

    def measure(self, done: int, total: int | None) -> tuple[float | None, float | None]:
        now = time.monotonic()
        if self._start is None or done < self._start[1]:
            self._start = (now, done)
            return None, None
        elapsed = now - self._start[0]
        if elapsed <= 0:
            return None, None
        rate = (done - self._start[1]) / elapsed
        if total is None or rate <= 0:
            return rate, None
        return rate, max(total - done, 0) / rate
