"""Progress bars for the CLI: on a terminal only, never in pipes or --json runs."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm

from ._closing import Closing


class Progress(Closing):
    """A tqdm bar on stderr when stderr is a terminal; a no-op otherwise."""

    def __init__(
        self, desc: str, *, total: int | None = None, unit: str = "it", enabled: bool | None = None
    ) -> None:
        show = sys.stderr.isatty() if enabled is None else enabled
        self._bar: tqdm[Any] | None = (
            tqdm(
                desc=desc,
                total=total,
                unit=unit,
                unit_scale=True,
                file=sys.stderr,
                dynamic_ncols=True,
                leave=False,
            )
            if show
            else None
        )

    def update(self, n: int, **postfix: str) -> None:
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix(postfix, refresh=False)
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
