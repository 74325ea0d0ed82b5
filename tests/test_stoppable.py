"""A file operation's Rust call stops with its job, however the job stops."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from phasekit import _core
from phasekit.errors import LeaseLostError
from phasekit.fileops._stoppable import run_stoppable


class _Requests:
    """What run_stoppable looks at in a phase context: its stop requests."""

    stop_requested = False


def test_a_lost_lease_stops_the_rust_call_before_it_is_raised() -> None:
    steps: list[float] = []
    token_seen: list[Any] = []

    def work(token: _core.CancelToken) -> None:
        token_seen.append(token)
        while not token.cancelled:
            steps.append(time.monotonic())
            time.sleep(0.005)

    ticks = 0

    def tick() -> None:
        nonlocal ticks
        ticks += 1
        if ticks == 3:  # its next progress write was refused
            raise LeaseLostError("job x is no longer this run's")

    with pytest.raises(LeaseLostError):
        run_stoppable(_Requests(), work, on_tick=tick)  # type: ignore[arg-type]
    assert token_seen[0].cancelled
    done = len(steps)
    time.sleep(0.05)
    assert len(steps) == done  # nothing goes on in the background
    assert not any(t.name == "phasekit-fileops" for t in threading.enumerate())
