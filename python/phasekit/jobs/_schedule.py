"""Interval schedules: validation and the next planned time (the SQLite
backend writes the next occurrence: phasekit/jobs/sqlite/_schedule.py).

A scheduled job is an ordinary row with ``run_every_s`` and ``next_run_at``;
every occurrence is a new row sharing the first occurrence's ``schedule_id``.
"""

from __future__ import annotations

import math

from ..errors import InvalidInputError


def check_every(every: float | None) -> None:
    """Raise InvalidInputError unless ``every`` is None or a finite number of seconds > 0."""
    if every is None:
        return
    if isinstance(every, bool) or not isinstance(every, int | float):
        raise InvalidInputError(f"every must be a number of seconds, got {type(every).__name__}")
    if not (math.isfinite(every) and every > 0):
        raise InvalidInputError(f"every must be a finite number of seconds > 0, got {every!r}")


def next_run(planned: float, every: float, now: float) -> float:
    """The first ``planned + k * every`` (k >= 1) that lies after ``now``.

    Runs missed while nothing was running (the process was down, the queue
    was full) are skipped, not piled up: one occurrence, at the next slot.
    """
    k = max(1, math.floor((now - planned) / every) + 1)
    nxt = planned + k * every
    while nxt <= now:  # floating point at an exact multiple
        nxt += every
    return nxt
