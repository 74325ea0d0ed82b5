"""Page sizes that keep a long loop's pages near a target duration.

A job works in pages (one Rust call, one transaction, one checkpoint each):
pause, cancel and progress happen between pages. A fixed page is a guess: on
a warm cache 2,000 files take 10 ms (the checkpoints then cost more than the
work), on a cold disk a second or more (progress freezes, a pause waits).
:class:`Pager` sizes the next page from the rate of the last ones.
"""

from __future__ import annotations

#: The duration a page aims at: several progress updates a second, a pause
#: honoured within about that long, checkpoints a small share of the time.
TARGET_S = 0.2


class Pager:
    """The size of the next page, between ``least`` and ``most`` items."""

    __slots__ = ("least", "most", "size", "target_s")

    def __init__(
        self, first: int, *, least: int = 64, most: int = 65_536, target_s: float = TARGET_S
    ) -> None:
        self.least = max(1, least)
        self.most = max(self.least, most)
        self.size = min(max(first, self.least), self.most)
        self.target_s = target_s

    def measured(self, items: int, seconds: float) -> int:
        """Record that the last page did ``items`` in ``seconds``; returns the
        next page's size. It grows at most 2x per page (one fast page, a
        cached directory say, must not make the next one huge) and shrinks
        as far as the rate says."""
        if items > 0 and seconds > 0:
            ideal = items * self.target_s / seconds
            self.size = int(min(max(ideal, self.least), self.size * 2, self.most))
        return self.size
