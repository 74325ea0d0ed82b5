"""Tenants, scopes and item limits: whose a job is, what it acts on, and
how a job holding too many items is split.

A tenant is a name (``default`` for embedded use): every job, task and
query is bound to one, and another tenant's job behaves as if it did not
exist. A scope is one of ``location:<id>`` (one location), ``entries`` (an
explicit set of files or entries, across locations) or ``global`` (the
whole library); it is stored with the job, derived from the job's fields
unless given (see :meth:`Job.scope`), and jobs are listed by it.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError
from ._model import DEFAULT_TENANT

if TYPE_CHECKING:
    from ._definition import Job

#: The scope of a job acting on the whole library.
GLOBAL = "global"
#: The scope of a job acting on an explicit set of entries or files.
ENTRIES = "entries"
#: Items one job holds unless its type says otherwise (see Job.item_limit).
DEFAULT_ITEM_LIMIT = 2000

_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@:-]{0,127}")
_SCOPE = re.compile(r"global|entries|location:[1-9][0-9]*")

__all__ = [
    "DEFAULT_ITEM_LIMIT",
    "DEFAULT_TENANT",
    "ENTRIES",
    "GLOBAL",
    "check_scope",
    "check_tenant",
    "location_scope",
    "split_items",
]


def location_scope(location_id: int) -> str:
    """The scope of a job acting on one location."""
    if isinstance(location_id, bool) or not isinstance(location_id, int) or location_id < 1:
        raise InvalidInputError(f"a location id is an int >= 1, got {location_id!r}")
    return f"location:{location_id}"


def check_scope(scope: str) -> str:
    """``scope`` if it is one (``global``, ``entries``, ``location:<id>``),
    else InvalidInputError."""
    if not isinstance(scope, str) or not _SCOPE.fullmatch(scope):
        raise InvalidInputError(f"a scope is 'global', 'entries' or 'location:<id>', got {scope!r}")
    return scope


def check_tenant(tenant: str) -> str:
    """``tenant`` if it is a tenant name (letters, digits and ``_.@:-``,
    starting with a letter or digit, at most 128), else InvalidInputError."""
    if not isinstance(tenant, str) or not _TENANT.fullmatch(tenant):
        raise InvalidInputError(
            "a tenant is a name of letters, digits and '_.@:-' (starting with a letter or "
            f"digit, at most 128), got {tenant!r}"
        )
    return tenant


def derived_scope(job: Job[Any]) -> str:
    """A job's scope from its fields: a ``location_id`` set means that
    location; items (its :attr:`~Job.items_field`, or ``paths`` or
    ``sources``) mean entries; anything else, the whole library."""
    location_id = getattr(job, "location_id", None)
    if isinstance(location_id, int) and not isinstance(location_id, bool) and location_id > 0:
        return location_scope(location_id)
    for field in (type(job).items_field, "paths", "sources"):
        if field is not None and getattr(job, field, None) is not None:
            return ENTRIES
    return GLOBAL


def split_items(job: Job[Any]) -> list[Job[Any]]:
    """``job`` as jobs of at most its type's :attr:`~Job.item_limit` items
    each (in order; ``[job]`` when it holds no more, or has no items)."""
    cls = type(job)
    field = cls.items_field
    limit = cls.item_limit
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InvalidInputError(f"{cls.__qualname__}.item_limit must be an int >= 1, got {limit!r}")
    if field is None:
        return [job]
    items = getattr(job, field)
    if items is None or len(items) <= limit:
        return [job]
    items = list(items)
    return [
        dataclasses.replace(job, **{field: items[start : start + limit]})  # type: ignore[type-var]
        for start in range(0, len(items), limit)
    ]
