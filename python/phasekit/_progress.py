"""Progress bars for the CLI: on a terminal only, never in pipes or --json runs."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tqdm import tqdm

from ._closing import Closing


class Progress(Closing):
    """A tqdm bar on stderr when stderr is a terminal; a no-op otherwise.

    :meth:`update` counts (a walk without a known end); :meth:`show` draws a
    job's progress: a percentage bar once the percent is known, else a
    counter with the rate."""

    def __init__(
        self, desc: str, *, total: int | None = None, unit: str = "it", enabled: bool | None = None
    ) -> None:
        show = sys.stderr.isatty() if enabled is None else enabled
        self._bar: tqdm[Any] | None = None
        if show:
            # Imported only when a bar is drawn: output piped or in JSON never
            # pays for it at start-up.
            from tqdm import tqdm

            self._bar = tqdm(
                desc=desc,
                total=total,
                unit=unit,
                unit_scale=True,
                file=sys.stderr,
                dynamic_ncols=True,
                leave=False,
            )

    @property
    def shown(self) -> bool:
        """Whether a bar is drawn (stderr is a terminal)."""
        return self._bar is not None

    def update(self, n: int, **postfix: str) -> None:
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix(postfix, refresh=False)
            self._bar.update(n)

    def show(
        self, percent: float | None, count: int | None, rate: float | None, **postfix: str
    ) -> None:
        """A job's latest progress: ``percent`` of the whole job (None while
        indeterminate), the current phase's ``count`` and ``rate``."""
        bar = self._bar
        if bar is None:
            return
        if count is not None:
            postfix["done"] = f"{count:,}"
        if rate:
            postfix["rate"] = f"{rate:,.0f}/s"
        bar.set_postfix(postfix, refresh=False)
        if percent is None:
            bar.total = None
            bar.n = count or 0
        else:
            bar.total = 100
            bar.unit = "%"
            bar.n = round(percent, 1)
        bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
