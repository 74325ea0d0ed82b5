"""Serving the app with uvicorn, stopping cleanly: the event streams never
end on their own, so a stop (Ctrl-C, SIGTERM, :meth:`Server.stop`) first
tells them to end, then lets uvicorn close the connections."""

from __future__ import annotations

from types import FrameType

import uvicorn
from starlette.applications import Starlette

from ._context import Dashboard

#: How long a stop waits for the requests still running (s).
GRACE_S = 2


class Server(uvicorn.Server):
    """uvicorn's server for one dashboard app."""

    def __init__(self, app: Starlette, host: str, port: int, log_level: str = "warning") -> None:
        board = app.state.dashboard
        assert isinstance(board, Dashboard)
        self.board = board
        config = uvicorn.Config(
            app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=GRACE_S
        )
        super().__init__(config)

    def stop(self) -> None:
        """End the event streams and stop serving (from any thread)."""
        self.board.stopping.set()
        self.should_exit = True

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal: the streams end at their next poll, so the connections
        # close well within the grace period.
        self.board.stopping.set()
        super().handle_exit(sig, frame)
