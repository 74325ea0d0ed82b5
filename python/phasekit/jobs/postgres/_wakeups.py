"""Wake-ups: a worker hears at once that a job was queued, instead of at its
next poll. The schema's triggers ``NOTIFY phasekit_jobs`` when a job becomes
queued; a thread of the listening process holds a session that ``LISTEN``s
and calls the manager back.

Only a hint: a notification is lost while the session is down (PostgreSQL
keeps none for a listener that is not connected), and jobs also become ready
without one (a dependency completing, a conflict key freed, a planned time
reached), so the manager keeps polling the store as the truth; a wake-up
only spares a new job the wait for the next poll.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from ...errors import PhasekitError
from ._connect import Connection
from ._schema import CHANNEL

log = logging.getLogger("phasekit.jobs")

#: How often the listening thread looks whether it should stop (s).
STOP_CHECK_S = 0.5
#: Pause before listening again after the session broke (s).
RETRY_S = 1.0


class Wakeups:
    """A thread calling ``wake()`` whenever a job is queued in the store at
    ``url`` (by any process, on any host), until :meth:`close`."""

    def __init__(self, url: str, wake: Callable[[], None]) -> None:
        self._url = url
        self._wake = wake
        self._stop = threading.Event()
        self._session: Connection | None = None
        self._thread = threading.Thread(target=self._listen, name="phasekit-wakeups", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                if self._session is None:
                    self._session = Connection(self._url, migrate=False)
                    self._session.run(lambda cur: cur.execute(f"LISTEN {CHANNEL}"), write=False)
                    self._wake()  # anything queued while we were not listening
                conn: Any = self._session.connection()
                for _ in conn.notifies(timeout=STOP_CHECK_S):
                    self._wake()
                    if self._stop.is_set():
                        break
            except Exception as exc:  # a hint only: polling goes on meanwhile
                if self._stop.is_set():
                    break
                log.debug("job wake-ups paused (%s); polling goes on", exc)
                self._drop_session()
                self._stop.wait(RETRY_S)
        self._drop_session()

    def _drop_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(PhasekitError, OSError):
                session.close()

    def close(self) -> None:
        """Stop listening (waits for the thread, at most a few seconds)."""
        self._stop.set()
        self._thread.join(STOP_CHECK_S * 8)
