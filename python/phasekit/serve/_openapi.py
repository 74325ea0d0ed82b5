"""``GET /api/openapi.json``: the API described for clients and tools
(OpenAPI 3.1), written by hand next to the routes it describes; a test
checks that it lists every route the app serves under ``/api/``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._actions import MAX_PRIORITY, MIN_PRIORITY
from ._http import JSON

_ERROR = {"$ref": "#/components/responses/Error"}
_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}
_ARRAY: dict[str, Any] = {"type": "array", "items": _OBJECT}


def _query(name: str, description: str, kind: str = "string") -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": kind},
    }


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _ok(description: str, schema: dict[str, Any], *, status: str = "200") -> dict[str, Any]:
    return {
        status: {"description": description, "content": {"application/json": {"schema": schema}}},
        "400": _ERROR,
        "401": _ERROR,
        "404": _ERROR,
    }


def _paged(description: str) -> dict[str, Any]:
    """The answers of a listing read in pages: a full page names where the
    next one starts (X-Next-Cursor, and a Link header with rel="next"); 400
    for a cursor that is not one."""
    responses = _ok(description, _ARRAY)
    responses["200"]["headers"] = {
        "X-Next-Cursor": {
            "description": "after a full page: the cursor of the next one",
            "schema": {"type": "string"},
        },
        "Link": {
            "description": 'after a full page: <URL of the next page>; rel="next"',
            "schema": {"type": "string"},
        },
    }
    return responses


def _action(
    summary: str,
    description: str,
    params: list[dict[str, Any]],
    body: dict[str, Any] | None,
    status: str = "200",
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "description": description + " Needs the X-CSRF-Token header unless the request"
        " authenticates with Authorization: Bearer. A read-only token gets 403.",
        "parameters": [
            *params,
            {
                "name": "X-CSRF-Token",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
            },
        ],
        "responses": {
            **_ok("what was done", _OBJECT, status=status),
            "403": _ERROR,
            "409": _ERROR,
            "413": _ERROR,
            "415": _ERROR,
        },
    }
    if body is not None:
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": body}}}
    return op


_JOB_FILTERS = [
    _query("status", "only jobs of this status (a finished one lists finished jobs)"),
    _query("type", "only jobs of this type (e.g. phasekit.index)"),
    _query("tenant", "only this tenant's jobs (a tenant's token sees its own only)"),
    _query("scope", "global, entries or location:ID"),
    _query("task", "only this task's jobs"),
    _query("q", "text searched in id, type, status, phase, tenant, scope, task, error"),
    _query("all", "list finished jobs too", "boolean"),
    _query("limit", "at most this many (default 500)", "integer"),
]

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "phasekit dashboard API",
        "version": "1",
        "description": "The jobs of a phasekit library. Shapes are those of the command"
        " line's --json output; paths are os.fsdecode strings (a byte that is not UTF-8"
        " is a \\udcXX escape).",
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "cookie": {"type": "apiKey", "in": "cookie", "name": "phasekit_token"},
        },
        "responses": {
            "Error": {
                "description": "refused; nothing was changed",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "error": {
                                    "type": "object",
                                    "properties": {
                                        "status": {"type": "integer"},
                                        "message": {"type": "string"},
                                    },
                                }
                            },
                        }
                    }
                },
            }
        },
    },
    "security": [{"bearer": []}, {"cookie": []}, {}],
    "paths": {
        "/api/openapi.json": {
            "get": {
                "summary": "this document",
                "security": [{}],
                "responses": _ok("OpenAPI 3.1", _OBJECT),
            }
        },
        "/api/session": {
            "get": {
                "summary": "the caller's tenant, whether it may only read, its CSRF token"
                " and the newest event id",
                "responses": _ok("the session", _OBJECT),
            }
        },
        "/api/jobs": {
            "get": {
                "summary": "jobs (phasekit jobs list --json), in pages",
                "parameters": [
                    *_JOB_FILTERS,
                    _query("after", "the X-Next-Cursor of the page before (opaque)"),
                ],
                "responses": _paged("job rows"),
            }
        },
        "/api/jobs/{job_id}": {
            "get": {
                "summary": "one job: phases with history, progress, errors, output, timing"
                " (phasekit jobs show --json)",
                "parameters": [
                    _path("job_id", "the job's id"),
                    _query("debug", "include the traceback of a failure", "boolean"),
                ],
                "responses": _ok("the job", _OBJECT),
            }
        },
        "/api/jobs/{job_id}/{action}": {
            "post": _action(
                "pause, resume, cancel or retry a job",
                "pause: a queued job at once, a running one at its next safe point; resume: a"
                " paused job is queued; cancel: with its unfinished descendants; retry: a failed"
                " or cancelled job is queued again as a new job.",
                [
                    _path("job_id", "the job's id"),
                    {
                        "name": "action",
                        "in": "path",
                        "required": True,
                        "schema": {
                            "type": "string",
                            "enum": ["pause", "resume", "cancel", "retry"],
                        },
                    },
                ],
                None,
            )
        },
        "/api/history": {
            "get": {
                "summary": "finished jobs (phasekit jobs history --json)",
                "parameters": [
                    _query("type", "job type"),
                    _query("tenant", "tenant"),
                    _query("limit", "default 100", "integer"),
                    _query("before", "the X-Next-Cursor of the page before (opaque)"),
                ],
                "responses": _paged("history entries"),
            }
        },
        "/api/tasks": {
            "get": {
                "summary": "tasks (phasekit tasks list --json)",
                "parameters": [
                    _query("tenant", "tenant"),
                    _query("limit", "default 100", "integer"),
                ],
                "responses": _ok("tasks", _ARRAY),
            }
        },
        "/api/tasks/{task_id}": {
            "get": {
                "summary": "a task (phasekit tasks show --json)",
                "parameters": [_path("task_id", "the task's id")],
                "responses": _ok("the task", _OBJECT),
            }
        },
        "/api/workers": {
            "get": {
                "summary": "workers with heartbeats (phasekit jobs workers --json)",
                "responses": _ok("workers", _ARRAY),
            }
        },
        "/api/locations": {
            "get": {"summary": "locations with their totals", "responses": _ok("locations", _ARRAY)}
        },
        "/api/locations/{location_id}/index": {
            "post": _action(
                "queue an index of a location",
                "The library's workers (phasekit worker) run it; joins an index of it already"
                " waiting.",
                [_path("location_id", "the location's id")],
                {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "priority": {
                            "type": "integer",
                            "minimum": MIN_PRIORITY,
                            "maximum": MAX_PRIORITY,
                        },
                        "tenant": {"type": "string", "description": "the operator only"},
                    },
                },
                status="202",
            )
        },
        "/api/jobs/{job_id}/checkpoints": {
            "get": {
                "summary": "the checkpoints a job took: how many, and the newest (the store"
                " keeps that one): when, its size, its phase, its contents when small JSON",
                "parameters": [_path("job_id", "the job's id")],
                "responses": _ok("the checkpoints", _OBJECT),
            }
        },
        "/api/jobs/{job_id}/timing": {
            "get": {
                "summary": "a job's timing: when created and started, and per phase its"
                " attempts, seconds and share",
                "parameters": [_path("job_id", "the job's id")],
                "responses": _ok("the timing", _OBJECT),
            }
        },
        "/api/jobs/bulk": {
            "post": _action(
                "pause, resume, cancel or retry many jobs",
                "All or report: a malformed or refused request changes nothing; otherwise"
                " each id is tried as the single action tries it (tenant, state) and the"
                " answer reports each: ok with what the single action answers, or its status"
                " (404, 409) and message.",
                [],
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["action", "ids"],
                    "properties": {
                        "action": {
                            "type": "string",
                            "enum": ["pause", "resume", "cancel", "retry"],
                        },
                        "ids": {
                            "type": "array",
                            "items": {"type": "string"},
                            "minItems": 1,
                            "maxItems": 1000,
                        },
                    },
                },
            )
        },
        "/api/locations/{location_id}/thumbnails": {
            "get": {
                "summary": "a page of a location's entries that have a thumbnail, in entry"
                " order (every token sees locations); next: the after of the next page",
                "parameters": [
                    _path("location_id", "the location's id"),
                    _query("after", "entries after this entry id (default 0)", "integer"),
                    _query("limit", "at most this many (default 100, at most 500)", "integer"),
                    _query("variant", "the thumbnail variant (default grid)"),
                ],
                "responses": _ok("a page of thumbnails", _OBJECT),
            }
        },
        "/api/thumbnails/{cas_id}/{variant}": {
            "get": {
                "summary": "a thumbnail of a content (as phasekit thumbs makes it)",
                "parameters": [
                    _path("cas_id", "the content's identity"),
                    _path("variant", "the variant (e.g. grid)"),
                ],
                "responses": {
                    "200": {
                        "description": "the image",
                        "content": {
                            "image/webp": {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                    "401": _ERROR,
                    "404": _ERROR,
                },
            }
        },
        "/api/duplicates": {
            "get": {
                "summary": "the newest completed duplicate search: groups, wasted bytes",
                "parameters": [_query("location", "of this location only", "integer")],
                "responses": _ok("the summary", _OBJECT),
            }
        },
        "/api/events": {
            "get": {
                "summary": "every job change as server-sent events; resumes after Last-Event-ID",
                "parameters": [
                    _query("after", "start after this event id", "integer"),
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "event: job, id: the event's seq, data: the"
                        " event (phasekit events --json); event: gap if the events"
                        " after the id asked for were pruned",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "400": _ERROR,
                    "401": _ERROR,
                },
            }
        },
    },
}


async def openapi(request: Request) -> Response:
    """The document (no token needed: it says nothing of the library)."""
    return JSON(DOCUMENT)


def routes() -> list[Route]:
    """The document's route."""
    return [Route("/api/openapi.json", openapi, methods=["GET"])]
