"""A location's thumbnails: ``GET /api/locations/{id}/thumbnails`` lists
the entries that have one, a page at a time, and ``GET
/api/thumbnails/{cas_id}/{variant}`` serves one (``image/webp``).

They are the library's thumbnails as ``phasekit thumbs`` makes them (one
set per content, under ``sidecars/``; :meth:`Library.thumbnail` finds
them): this only reads. A thumbnail that is not whole counts as missing, as
it does for the job. Locations are the library's, not a tenant's, so every
token sees them, as it sees ``/api/locations``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._context import dashboard
from ._http import JSON, MAX_ID, ApiError, blocking, query_int, whole_number

if TYPE_CHECKING:
    from ..library import Library

#: The most thumbnails one page lists.
MAX_LIMIT = 500
#: The most entries one page looks at: a location of many files and few
#: images answers in bounded time, with ``next`` to go on from.
SCAN_LIMIT = 20_000
#: How long a browser may keep a thumbnail: its URL names its content, but
#: a later ``phasekit thumbs`` may make it again at another size.
MAX_AGE_S = 300


def _variant(request: Request, library: Library) -> str:
    """The variant asked for (default ``grid``); 400 for one the library
    does not make."""
    names = [v.name for v in library.thumbnail_variants()]
    asked = request.query_params.get("variant") or ("grid" if "grid" in names else names[0])
    if asked not in names:
        raise ApiError(400, f"variant must be one of {', '.join(names)}, not {asked!r}")
    return asked


def page(
    library: Library, location_id: int, variant: str, after: int, limit: int
) -> dict[str, Any]:
    """Up to ``limit`` entries of the location, after entry id ``after``,
    whose content has a whole ``variant`` thumbnail, in entry id order;
    ``next``: the ``after`` of the next page (None: none is left)."""
    from ..errors import LocationNotFound
    from ..thumbs import IMAGE_EXTENSIONS

    try:
        location = library.location(location_id)
    except LocationNotFound:
        raise ApiError(404, f"no location with id {location_id}") from None
    items: list[dict[str, Any]] = []
    looked = 0
    last = after
    more = False
    for entry in library.entries(location, after=after, page=min(SCAN_LIMIT, 2000)):
        if len(items) == limit or looked == SCAN_LIMIT:
            more = True
            break
        looked += 1
        last = entry.id
        # The thumbnail job makes them of images only: the extension spares
        # a look on disk for every other file.
        if entry.cas_id is None or entry.extension not in IMAGE_EXTENSIONS:
            continue
        if library.thumbnail(entry.cas_id, variant) is None:
            continue
        items.append(
            {
                "entry_id": entry.id,
                "path": entry.path,
                # For display: a byte that is not UTF-8 is U+FFFD here, and
                # a \udcXX escape in ``path`` (os.fsdecode, exact).
                "name": entry.name,
                "size": entry.size,
                "cas_id": entry.cas_id,
                "url": f"/api/thumbnails/{entry.cas_id}/{variant}",
            }
        )
    return {
        "location_id": location.id,
        "variant": variant,
        "items": items,
        "next": last if more else None,
    }


async def location_thumbnails(request: Request) -> Response:
    """``GET /api/locations/{location_id}/thumbnails?after=&limit=&variant=``:
    a page of the location's entries that have a thumbnail (default 100)."""
    board = dashboard(request)
    board.access.require(request)
    text = request.path_params["location_id"]
    location_id = whole_number(text)
    if location_id is None or location_id < 1:
        raise ApiError(404, f"no location with id {text!r}")
    after = query_int(request, "after", 0, low=0, high=MAX_ID)
    limit = query_int(request, "limit", 100, low=1, high=MAX_LIMIT)
    variant = await blocking(_variant, request, board.library)
    return JSON(await blocking(page, board.library, location_id, variant, after, limit))


def _read(library: Library, cas_id: str, variant: str) -> bytes:
    """The bytes of a content's thumbnail; 404 unless the content is the
    library's and its thumbnail is whole."""
    from ..errors import InvalidInputError

    try:
        path = library.thumbnail(cas_id, variant)
    except InvalidInputError:  # not a cas_id, or not a variant name
        path = None
    # A sidecar left of a content no entry has any more is not served.
    if path is None or library.content_identity(cas_id) is None:
        raise ApiError(404, f"no {variant!r} thumbnail of {cas_id!r}")
    try:
        return path.read_bytes()
    except OSError:  # removed since (a thumbnail job's cleanup)
        raise ApiError(404, f"no {variant!r} thumbnail of {cas_id!r}") from None


async def thumbnail(request: Request) -> Response:
    """``GET /api/thumbnails/{cas_id}/{variant}``: the thumbnail (WebP)."""
    board = dashboard(request)
    board.access.require(request)
    data = await blocking(
        _read, board.library, request.path_params["cas_id"], request.path_params["variant"]
    )
    return Response(
        data,
        media_type="image/webp",
        headers={"cache-control": f"private, max-age={MAX_AGE_S}"},
    )


def routes() -> list[Route]:
    """The thumbnails' routes."""
    return [
        Route("/api/locations/{location_id}/thumbnails", location_thumbnails, methods=["GET"]),
        Route("/api/thumbnails/{cas_id}/{variant}", thumbnail, methods=["GET"]),
    ]
