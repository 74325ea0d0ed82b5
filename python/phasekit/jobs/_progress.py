"""Typed progress: what a job reports and what ``JobHandle.updates()`` yields.

One :class:`JobProgress` covers every form the job model names: a count
(``done`` of ``total``), a percentage, indeterminate work with a message,
bytes, the job's own structured dataclass (``data``) and, for phased jobs, the
current phase's atomic units with rate, ETA and error count. It is stored in
jobs.db as a plain mapping so another process (a CLI) can read it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from ._codec import CorruptStateError


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
    explicit_percent: float | None = None

    @property
    def percent(self) -> float | None:
        """0 to 100, from an explicit percentage, the count or the bytes; None
        when the work is indeterminate."""
        if self.explicit_percent is not None:
            return self.explicit_percent
        if self.done is not None and self.total:
            return 100.0 * self.done / self.total
        if self.bytes_done is not None and self.bytes_total:
            return 100.0 * self.bytes_done / self.bytes_total
        if self.phase is not None and self.phase.count:
            # A phased job: finished phases plus the share of the current one.
            share = self.phase.done / self.phase.total if self.phase.total else 0.0
            return 100.0 * (self.phase.index + min(share, 1.0)) / self.phase.count
        return None

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
