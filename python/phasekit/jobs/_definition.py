"""Job definitions: a job is a dataclass registered under a stable name.

Its fields are its input and are persisted with the job (so a job can be
resumed in another process), except fields marked :func:`transient`.
"""

from __future__ import annotations

import dataclasses
import importlib
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar, dataclass_transform

from ..errors import CorruptStateError, JobDefinitionError, UnknownJobError
from ._scope import DEFAULT_ITEM_LIMIT, derived_scope

if TYPE_CHECKING:
    from ._context import JobContext

#: Entry-point group through which other packages contribute jobs.
ENTRY_POINT_GROUP = "phasekit.jobs"

#: phasekit's own jobs, by name, and the module that registers each: every
#: registry imports them on demand, so a process that imported only
#: ``phasekit.library`` still runs (never fails) a job another process
#: queued. (They are declared as entry points too, for tools that list them.)
BUILTIN_JOBS = {
    "phasekit.index": "phasekit.indexing",
    "phasekit.dupes": "phasekit.dupes",
    "phasekit.validate": "phasekit.validation",
    "phasekit.copy": "phasekit.fileops",
    "phasekit.move": "phasekit.fileops",
    "phasekit.delete": "phasekit.fileops",
    "phasekit.thumbs": "phasekit.thumbs",
    "phasekit.maintenance": "phasekit.maintenance",
}

J = TypeVar("J", bound="Job[Any]")
#: The type of a job's output (what ``run`` returns, ``JobHandle.output()`` gives).
OutputT = TypeVar("OutputT")


def transient(
    *, default: Any = dataclasses.MISSING, default_factory: Any = dataclasses.MISSING
) -> Any:
    """A job field that is not persisted (a handle, a cache); it needs a default."""
    if default is dataclasses.MISSING and default_factory is dataclasses.MISSING:
        raise JobDefinitionError("a transient field needs a default or default_factory")
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={"persist": False}
    )


class Job(Generic[OutputT]):
    """Base class of every job. Subclass it (``Job[MyOutput]`` types the
    output), then decorate with :func:`job`."""

    job_name: ClassVar[str] = ""
    #: The dataclass of the job's structured progress ``data``, if it reports one.
    progress_type: ClassVar[type[Any] | None] = None
    #: The dataclass of the job's output, if it returns one (stored as a mapping).
    output_type: ClassVar[type[Any] | None] = None

    def run(self, ctx: JobContext) -> OutputT:
        """Do the work; return the job's output (msgpack-able) or None.

        Call ``ctx.checkpoint(state)`` at safe points with the frontier of the
        work, and start from ``ctx.load_state()`` when it is not None.
        """
        raise NotImplementedError(f"{type(self).__qualname__} must implement run(ctx)")

    #: The field holding the job's items (a list: paths, entry ids...), if
    #: it has one: a job holding more than :attr:`item_limit` of them is
    #: split into several jobs under one task when submitted (see
    #: :meth:`JobManager.submit`).
    items_field: ClassVar[str | None] = None
    #: The most items one job of this type holds (2,000 unless a type says).
    item_limit: ClassVar[int] = DEFAULT_ITEM_LIMIT

    def scope(self) -> str:
        """What the job acts on: ``location:<id>``, ``entries`` or
        ``global``, stored with it (jobs are listed by scope). The default
        derives it from the fields: ``location_id`` set means that location,
        items (``items_field``, ``paths`` or ``sources``) mean entries, and
        anything else the whole library. Override to say otherwise."""
        return derived_scope(self)

    def conflict_key(self) -> str | None:
        """Jobs with the same key never run at the same time, in one process
        or several: the second waits, queued, until the first stops (a child
        is not kept waiting by its own parent). Dispatching a job whose key,
        type and input equal those of a queued or running job returns that
        job instead of queueing a second one (a user clicking "rescan"
        twice). None (the default): no constraint. The library's jobs use
        ``"location:<id>"``: an index and a validation of one location never
        overlap."""
        return None

    def to_state(self) -> dict[str, Any]:
        """The persisted fields, as stored in jobs.db (which refuses, with a
        TypeError naming the type, a value msgpack cannot store)."""
        return {name: getattr(self, name) for name in _persisted(type(self))}

    @classmethod
    def from_state(cls: type[J], state: Any) -> J:
        """Rebuild a job from :meth:`to_state`; transient fields get their defaults."""
        if not isinstance(state, dict):
            raise CorruptStateError(f"job {cls.job_name!r}: stored input is not a mapping")
        unknown = state.keys() - _persisted(cls)
        if unknown:
            raise CorruptStateError(
                f"job {cls.job_name!r}: stored input has unknown fields {sorted(unknown)}"
            )
        try:
            return cls(**state)
        except TypeError as exc:
            raise CorruptStateError(
                f"job {cls.job_name!r}: stored input does not fit: {exc}"
            ) from exc


#: The persisted field names of each job class: ``dataclasses.fields`` is
#: slow, and every dispatch and every run goes through them.
_PERSISTED: weakref.WeakKeyDictionary[type[Job[Any]], dict[str, None]] = weakref.WeakKeyDictionary()


def _persisted(cls: type[Job[Any]]) -> dict[str, None]:
    """The names of ``cls``'s persisted fields, in order (a dict as an ordered set)."""
    names = _PERSISTED.get(cls)
    if names is None:
        names = dict.fromkeys(
            f.name
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.metadata.get("persist", True)
        )
        _PERSISTED[cls] = names
    return names


class JobRegistry:
    """Maps stable job names to job classes.

    A name not registered yet is looked up, on first need, among phasekit's
    built-in jobs (imported then) and the ``phasekit.jobs`` entry points of
    installed packages (loaded once).
    """

    def __init__(self) -> None:
        self._jobs: dict[str, type[Job[Any]]] = {}
        self._entry_points_loaded = False
        self._builtins_loaded = False
        self._version = 0

    def register(self, name: str, cls: type[Job[Any]]) -> None:
        if not name or not name.replace("_", "").replace(".", "").replace("-", "").isalnum():
            raise JobDefinitionError(
                f"job name {name!r}: use letters, digits, '_', '-' and '.' only"
            )
        if not (isinstance(cls, type) and issubclass(cls, Job)):
            raise JobDefinitionError(f"{cls!r} is not a subclass of phasekit.jobs.Job")
        existing = self._jobs.get(name)
        if existing is not None and existing is not cls:
            raise JobDefinitionError(
                f"job name {name!r} is already registered by "
                f"{existing.__module__}.{existing.__qualname__}"
            )
        if existing is None:
            self._jobs[name] = cls
            self._version += 1

    def get(self, name: str) -> type[Job[Any]]:
        """The class registered as ``name``; built-in jobs are imported and
        entry points loaded on the first miss. :class:`UnknownJobError` if
        no module known to this process defines it."""
        cls = self._jobs.get(name)
        if cls is None:
            cls = self._find(name)
        if cls is None:
            known = ", ".join(sorted(self._jobs)) or "none"
            raise UnknownJobError(
                f"no job named {name!r} is known in this process (known: {known}); "
                "register it with @job, or install the package that declares it "
                f"under the {ENTRY_POINT_GROUP!r} entry point"
            )
        return cls

    def knows(self, name: str) -> bool:
        """True if :meth:`get` finds ``name`` (loading what it needs to)."""
        return name in self._jobs or self._find(name) is not None

    @property
    def version(self) -> int:
        """Grows whenever a job is registered: a name unknown before may be
        known now."""
        return self._version

    def _find(self, name: str) -> type[Job[Any]] | None:
        if name in BUILTIN_JOBS and self is default_registry:
            importlib.import_module(BUILTIN_JOBS[name])
        elif name in BUILTIN_JOBS:
            self._load_builtins()
        cls = self._jobs.get(name)
        if cls is None and not self._entry_points_loaded:
            self.load_entry_points()
            cls = self._jobs.get(name)
        return cls

    def _load_builtins(self) -> None:
        """Import phasekit's own jobs and register them here too (they
        register themselves in the default registry when imported)."""
        if self._builtins_loaded:
            return
        self._builtins_loaded = True
        for name, module in BUILTIN_JOBS.items():
            importlib.import_module(module)
            cls = default_registry._jobs.get(name)
            if cls is not None and self is not default_registry:
                self._jobs.setdefault(name, cls)

    def load_entry_points(self) -> list[str]:
        """Import the jobs other packages declare under ``phasekit.jobs``.

        A package whose entry point fails to import is skipped and reported in
        the returned list (``"name: error"``); the others load.
        """
        # Imported here: importlib.metadata costs more at start-up than the
        # rest of the job system, and most processes never look.
        from importlib.metadata import entry_points

        self._entry_points_loaded = True
        failures = []
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                loaded = ep.load()
            except Exception as exc:  # a broken plugin must not break the others
                failures.append(f"{ep.name}: {exc!r}")
                continue
            if isinstance(loaded, type) and issubclass(loaded, Job):
                self.register(loaded.job_name or ep.name, loaded)
        return failures

    def __contains__(self, name: object) -> bool:
        return name in self._jobs

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._jobs))


#: The registry :func:`job` uses unless told otherwise.
default_registry = JobRegistry()


@dataclass_transform(field_specifiers=(dataclasses.field, transient))
def job(name: str, *, registry: JobRegistry | None = None) -> Callable[[type[J]], type[J]]:
    """Class decorator: make ``cls`` a dataclass (if it is not one) and register it.

    >>> @job("thumbnail")
    ... class Thumbnail(Job):
    ...     path: str
    ...     size: int = 256
    """

    def decorate(cls: type[J]) -> type[J]:
        if not dataclasses.is_dataclass(cls):
            cls = dataclasses.dataclass(cls)
        cls.job_name = name
        (registry or default_registry).register(name, cls)
        return cls

    return decorate
