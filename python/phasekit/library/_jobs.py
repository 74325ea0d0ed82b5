"""What the library's jobs share: their library and location, looked up from
the running job's context, with the errors that fail the job clearly."""

from __future__ import annotations

from ..errors import LocationNotFound
from ..jobs import FatalError, PhaseContext
from ._library import Library
from ._types import Location


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
        raise FatalError(f"location {location_id} no longer exists") from exc
