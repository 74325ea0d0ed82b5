"""What the library's jobs share: their library and location, looked up from
the running job's context, with the errors that fail the job clearly; the
checks of their input; their conflict key."""

from __future__ import annotations

from ..errors import InvalidInputError, LocationNotFound
from ..jobs import FatalError, PhaseContext
from ._library import Library
from ._types import Location


def location_key(location_id: int) -> str:
    """The conflict key of the jobs that work on one location: two of them
    never run at the same time (see ``Job.conflict_key``)."""
    return f"location:{location_id}"


def check_id(field: str, value: object) -> None:
    """A job field holding a library id: an int (a ``Location`` has ``.id``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        hint = " (pass location.id)" if hasattr(value, "id") else ""
        raise InvalidInputError(f"{field} must be an int id, not {value!r}{hint}")


def check_count(field: str, value: object, *, optional: bool = False) -> None:
    """A job field holding a count of at least 1 (None allowed if ``optional``)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{field} must be an int >= 1, not {value!r}")


def library_of(ctx: PhaseContext, job: str) -> Library:
    """The library the job runs in; a job run outside one fails."""
    library = ctx.job_ctx.library
    if not isinstance(library, Library):
        raise FatalError(f"{job} needs a library: run it through Library.jobs()")
    return library


def location_of(library: Library, location_id: int) -> Location:
    """A location the job works on; one removed meanwhile fails the job."""
    try:
        return library.location(location_id)
    except LocationNotFound as exc:
        raise FatalError(
            f"location {location_id} does not exist (never added, or removed since the "
            "job was queued)"
        ) from exc
