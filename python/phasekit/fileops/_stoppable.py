"""Run one long Rust call of a file operation so that a pause or cancel
stops it at its next safe point instead of after it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .. import _core
from ..jobs import FatalError, PhaseContext

T = TypeVar("T")

#: Seconds between looks at the job's stop requests (and progress ticks).
POLL_S = 0.05


def run_stoppable(
    ctx: PhaseContext,
    work: Callable[[_core.CancelToken], T],
    on_tick: Callable[[], None] | None = None,
) -> T:
    """``work(token)`` in a worker thread (the Rust call releases the GIL),
    while this thread looks at the job's pause and cancel requests every
    :data:`POLL_S` and cancels ``token`` when one comes. A stopped call
    raises here what :meth:`PhaseContext.check_interrupt` raises (the job
    is paused or cancelled; the interrupted page is redone on resume)."""
    token = _core.CancelToken()
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work(token)
        except BaseException as exc:  # handed to the job's thread below
            outcome["raised"] = exc

    worker = threading.Thread(target=run, name="phasekit-fileops", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(POLL_S)
            if on_tick is not None:
                on_tick()
            if not token.cancelled and ctx.stop_requested:
                token.cancel()
    except BaseException:
        # A tick or a look at the requests raised (the job's lease moved on
        # to another worker, jobs.db failed): the Rust call must not go on
        # copying or deleting in the background while the job is redone
        # elsewhere. Stop it at its next file and wait for it.
        token.cancel()
        worker.join()
        raise
    raised = outcome.get("raised")
    if isinstance(raised, _core.CancelledError):
        ctx.check_interrupt()
        raise FatalError("stopped, though no pause or cancel was asked for")
    if raised is not None:
        raise raised
    value: T = outcome["value"]
    return value
