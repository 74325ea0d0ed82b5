"""Library entries follow what a copy, a move or a delete did to the files
of the library's locations.

Once the files are in place, each location a target lies in is scanned
again (the indexer's walk, sweep and sizes: :class:`phasekit.library.Scan`).
Between its walk and its sweep, the files a copy or move placed take the
cas_id and checksum of their sources (``Library.carry_content``, matched
by relative place, size and mtime): the same bytes need no hashing, and a
content identity keeps its first-seen time, since its source entry still
holds it when it is carried. Then the locations the moved or deleted paths
lay in are scanned and swept, and identities nothing uses any more go.

A scan compares with the disk and a sweep removes only what is gone from
it, so this step is idempotent: a run killed here redoes it from its start,
and an index of the same location running meanwhile does no harm. Files
that came from outside the library get entries without a cas_id; the next
content index of their location identifies them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..library import Library, Location


@dataclass(frozen=True)
class Place:
    """Where a path lies in the library: its location and its path relative
    to the location's root (``b""``: the root itself)."""

    location: Location
    rel: bytes


def _real(path: str) -> str:
    """``path`` with its folder's symlinks resolved, not its own: a moved
    symlink is the link, not what it points to."""
    parent, name = os.path.split(path.rstrip("/") or "/")
    return os.path.join(os.path.realpath(parent), name) if name else os.path.realpath(path)


def places_of(locations: Iterable[Location], path: str) -> list[Place]:
    """Every location holding ``path`` (compared by real path): one, or
    several where locations are nested (each has entries for it)."""
    real = _real(path)
    out = []
    for location in locations:
        root = os.path.realpath(location.path).rstrip("/")
        if real == (root or "/"):
            out.append(Place(location, b""))
        elif real.startswith(root + "/"):
            out.append(Place(location, os.fsencode(real[len(root) + 1 :])))
    return out


def holds_location(locations: Iterable[Location], path: str) -> Location | None:
    """A location whose root is ``path`` or lies inside it."""
    real = _real(path).rstrip("/") or "/"
    for location in locations:
        root = os.path.realpath(location.path)
        if root == real or root.startswith(real.rstrip("/") + "/"):
            return location
    return None


def rescan(library: Library, location: Location, before_sweep: Callable[[], int]) -> int:
    """Scan ``location`` again; ``before_sweep`` runs between the walk and
    the sweep (while what a move left behind still has its entries).
    Returns what ``before_sweep`` returned."""
    with library.scan(location, fresh=False) as scan:
        for _ in scan:
            # Problems the walk meets (an unreadable folder) belong to the
            # location's index, which reports them; this job's files are
            # those it placed, with their own errors already recorded.
            continue
        done = before_sweep()
        scan.sweep()
        scan.aggregate()
    library.link_identities(location)
    return done


#: Seconds before the job began from which a file counts as placed by it:
#: a filesystem's ctime comes from a coarse clock, up to a tick (4-10 ms)
#: behind time.time().
CLOCK_SLACK_S = 0.05


def follow(
    library: Library,
    moved: Iterable[tuple[str, str]],
    removed: Iterable[str],
    *,
    renamed: Iterable[tuple[str, str]] = (),
    since: float,
    report: Callable[[str], None],
    warn: Callable[[str], None],
) -> int:
    """Bring the entries of the library in step with the disk after files
    went from each ``(source, target)`` of ``moved`` (a copy or a move, file
    by file: the sources may be gone) or of ``renamed`` (a move by one
    rename of the whole tree: nothing else is under its target), and after
    ``removed`` went, in a job that began at ``since`` (unix seconds).
    Returns the files whose content identity was carried to a copy. A
    location whose root is gone (deleted with force, unmounted) keeps its
    entries as they are, with a warning."""
    locations = library.locations()
    carries: dict[int, list[tuple[Place, Place, float]]] = {}
    touched: dict[int, Location] = {}
    # A file placed by the job has a ctime from after its start; a renamed
    # tree keeps its files' ctimes, and is all from its source.
    placed = [(s, t, since - CLOCK_SLACK_S) for s, t in moved]
    for source, target, placed_since in [*placed, *((s, t, 0.0) for s, t in renamed)]:
        sources = places_of(locations, source)
        for to in places_of(locations, target):
            touched.setdefault(to.location.id, to.location)
            if sources:
                carries.setdefault(to.location.id, []).append((to, sources[0], placed_since))
    # Then where the moved and deleted paths were (their entries go).
    gone: dict[int, Location] = {}
    for path in removed:
        for at in places_of(locations, path):
            if at.location.id not in touched:
                gone.setdefault(at.location.id, at.location)
    carried = 0
    for location_id, location in [*touched.items(), *gone.items()]:
        if not os.path.isdir(location.path):
            warn(
                f"location {location_id}: its root {location.path} is gone; its entries were "
                "left as they are (remove the location, or index it again once it is back)"
            )
            continue
        report(f"updating the entries of location {location_id} ({location.path})")
        pairs = carries.get(location_id, [])
        carried += rescan(
            library,
            location,
            # Called by rescan before this loop moves on (no late binding).
            lambda: sum(
                library.carry_content(
                    (to.location, to.rel), (from_.location, from_.rel), placed_since
                )
                for to, from_, placed_since in pairs  # noqa: B023
            ),
        )
    return carried


__all__ = ["Place", "follow", "holds_location", "places_of"]
