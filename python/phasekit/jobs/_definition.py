"""Job definitions: a job is a dataclass registered under a stable name.

Its fields are its input and are persisted with the job (so a job can be
resumed in another process), except fields marked :func:`transient`.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, dataclass_transform

from ..errors import CorruptStateError, JobDefinitionError, UnknownJobError

if TYPE_CHECKING:
    from ._context import JobContext

#: Entry-point group through which other packages contribute jobs.
ENTRY_POINT_GROUP = "phasekit.jobs"

J = TypeVar("J", bound="Job")


def transient(
    *, default: Any = dataclasses.MISSING, default_factory: Any = dataclasses.MISSING
) -> Any:
    """A job field that is not persisted (a handle, a cache); it needs a default."""
    if default is dataclasses.MISSING and default_factory is dataclasses.MISSING:
        raise JobDefinitionError("a transient field needs a default or default_factory")
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={"persist": False}
    )


class Job:
    """Base class of every job. Subclass it, then decorate with :func:`job`."""

    job_name: ClassVar[str] = ""
    #: The dataclass of the job's structured progress ``data``, if it reports one.
    progress_type: ClassVar[type[Any] | None] = None
    #: The dataclass of the job's output, if it returns one (stored as a mapping).
    output_type: ClassVar[type[Any] | None] = None

    def run(self, ctx: JobContext) -> Any:
        """Do the work; return the job's output (msgpack-able) or None.

        Call ``ctx.checkpoint(state)`` at safe points with the frontier of the
        work, and start from ``ctx.load_state()`` when it is not None.
        """
        raise NotImplementedError(f"{type(self).__qualname__} must implement run(ctx)")

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
_PERSISTED: weakref.WeakKeyDictionary[type[Job], dict[str, None]] = weakref.WeakKeyDictionary()


def _persisted(cls: type[Job]) -> dict[str, None]:
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
    """Maps stable job names to job classes."""

    def __init__(self) -> None:
        self._jobs: dict[str, type[Job]] = {}
        self._entry_points_loaded = False

    def register(self, name: str, cls: type[Job]) -> None:
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
        self._jobs[name] = cls

    def get(self, name: str) -> type[Job]:
        """The class registered as ``name`` (entry points are loaded on first miss)."""
        cls = self._jobs.get(name)
        if cls is None and not self._entry_points_loaded:
            self.load_entry_points()
            cls = self._jobs.get(name)
        if cls is None:
            known = ", ".join(sorted(self._jobs)) or "none"
            raise UnknownJobError(f"no job named {name!r} is registered (known: {known})")
        return cls

    def load_entry_points(self) -> list[str]:
        """Import the jobs other packages declare under ``phasekit.jobs``.

        A package whose entry point fails to import is skipped and reported in
        the returned list (``"name: error"``); the others load.
        """
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
