"""The maintenance job's re-validation of the library's stalest entries,
with the validation code (``Library.validate_page``, what ValidateJob runs
page by page) and its issues' reading and ranking.

library.db keeps no validation time per entry (its issues are kept per
validation run), so staleness is kept by a cursor: the setting
``maintenance.revalidate_cursor`` (``{"location": id, "after": entry id}``)
says where the last maintenance stopped; each run goes on from there through
the indexed locations in id order, each in entry id order, and round again,
so the entries it reaches are those no maintenance has checked for longest.
The cursor is stored when the step ends; a run killed before that goes on
from its own checkpoint, and a run that failed leaves the cursor where it
was (those entries are reached again next time).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import LocationNotFound
from ..jobs import PhaseContext
from ..library import Library, Location
from ..validation import Issue, most_severe, run_issues
from ._types import IssueRow

if TYPE_CHECKING:
    from .._defaults import ValidationMode

#: Where the last maintenance stopped (a library setting).
CURSOR_SETTING = "maintenance.revalidate_cursor"
#: Issues kept in the output (all are counted).
SAMPLES_KEPT = 100

Report = Callable[[PhaseContext, int, int | None, str], None]


def _eligible(library: Library) -> list[Location]:
    """The locations whose entries can be checked: indexed, root there (a
    missing root would report every entry missing: a drive unmounted)."""
    return [
        loc
        for loc in library.locations()
        if loc.indexed_at is not None and os.path.isdir(os.fsencode(loc.path))
    ]


def revalidate_step(
    ctx: PhaseContext,
    library: Library,
    *,
    want: int,
    mode: ValidationMode,
    page: int,
    threads: int | None,
    report: Report,
) -> None:
    """Check the ``want`` stalest entries (see the module's docstring),
    ``page`` at a time with a checkpoint after each; counts go to
    ``ctx.shared`` (``revalidated``, ``by_category``, ``runs``)."""
    locations = _eligible(library)
    if ctx.state is None:
        cursor = library.setting(CURSOR_SETTING) or {}
        total = sum(library.entry_count(loc) for loc in locations)
        ctx.checkpoint(
            {
                "location": int(cursor.get("location", 0)),
                "after": int(cursor.get("after", 0)),
                "done": 0,
                # At most every entry once per run.
                "want": min(want, total),
            }
        )
    state = ctx.state
    by_category: dict[str, int] = ctx.shared.setdefault("by_category", {})
    runs: list[list[Any]] = ctx.shared.setdefault("runs", [])
    # Locations visited in a row without an entry checked: once every one
    # was, there is nothing left (entries removed since the count).
    idle = 0
    while state["done"] < state["want"] and locations and idle <= len(locations):
        ahead = [loc for loc in locations if loc.id >= state["location"]]
        location = ahead[0] if ahead else locations[0]  # past the last: round again
        if location.id != state["location"]:
            state.update(location=location.id, after=0)
        run_id = f"{ctx.id}.{location.id}"
        report(ctx, state["done"], state["want"], location.path)
        try:
            done = library.validate_page(
                location,
                run_id,
                after_id=state["after"],
                limit=min(page, state["want"] - state["done"]),
                mode=mode,
                threads=threads,
            )
        except LocationNotFound:
            done = None  # removed meanwhile
        if done is None or done.checked == 0:
            # This location is done: on to the next one.
            idle += 1
            state.update(location=location.id + 1, after=0)
            locations = _eligible(library)
            continue
        idle = 0
        if [location.id, run_id] not in runs:
            runs.append([location.id, run_id])
        for category, n in done.found.items():
            by_category[category] = by_category.get(category, 0) + n
        ctx.shared["revalidated"] = ctx.shared.get("revalidated", 0) + done.checked
        ctx.add_items(done.checked, nbytes=done.bytes)
        state.update(after=done.last_id, done=state["done"] + done.checked)
        ctx.checkpoint(state)
    library.set_setting(CURSOR_SETTING, {"location": state["location"], "after": state["after"]})
    report(ctx, state["done"], state["want"], "entries re-validated")


def revalidation_issues_of(library: Library, runs: list[tuple[int, str]]) -> Iterator[Issue]:
    """Every issue of the given ``(location id, run id)`` re-validations
    (a location removed since is passed over)."""
    for location_id, run_id in runs:
        try:
            library.location(location_id)
        except LocationNotFound:
            continue
        yield from run_issues(library, location_id, run_id)


def samples_of(library: Library, runs: list[tuple[int, str]]) -> list[IssueRow]:
    """The most severe issues of these re-validations, as stored rows."""
    worst = most_severe(revalidation_issues_of(library, runs), SAMPLES_KEPT)
    return [(os.fsencode(i.path), i.category.value, i.detail, i.entry_id) for i in worst]
