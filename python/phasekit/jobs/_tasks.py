"""Tasks: ordered steps, each a job type with its parameters, run one step
after the other for one tenant and scope; and the split of a job holding
more items than its type allows into several jobs under one task.

A definition is code (:class:`TaskDefinition`) or data, for servers that
keep their pipelines in files: ``TaskDefinition.from_json(text)``,
``from_toml(text)``, ``load(path)``::

    name = "import"
    [[steps]]
    job = "phasekit.index"
    params = { mode = "content" }
    [[steps]]
    job = "phasekit.thumbs"

When a task starts, every job of every step is stored with it (see
``phasekit/jobs/sqlite/_schema.py``, version 12): a step's jobs become ready
once every job of the steps before completed, and the first job that fails
or is cancelled stops the task (its waiting jobs are cancelled). No process
has to be alive at the moment a step ends for the next one to start.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError, JobDefinitionError, UnknownJobError
from ._scope import ENTRIES, GLOBAL, check_scope, split_items

if TYPE_CHECKING:
    from ._backend import JobBackend
    from ._definition import Job, JobRegistry

#: A planned job: its type's name, persisted input, conflict key and scope.
PlannedJob = tuple[str, dict[str, Any], "str | None", str]


@dataclass(frozen=True, slots=True)
class TaskStep:
    """One step of a task: a job type (its registered name) and the fields
    its jobs get. A field the task supplies (``location_id`` from a location
    scope, the items of an entries task) is filled in unless given here."""

    job: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.job, "params": dict(self.params)}


@dataclass(frozen=True, slots=True)
class TaskDefinition:
    """A named, ordered list of steps."""

    name: str
    steps: tuple[TaskStep, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidInputError(f"a task needs a name, got {self.name!r}")
        if not self.steps:
            raise InvalidInputError(f"task {self.name!r} has no steps")
        for step in self.steps:
            if not isinstance(step, TaskStep):
                raise InvalidInputError(f"task {self.name!r}: {step!r} is not a TaskStep")
            if not isinstance(step.job, str) or not step.job:
                raise InvalidInputError(f"task {self.name!r}: a step needs a job type name")
            if not isinstance(step.params, dict):
                raise InvalidInputError(
                    f"task {self.name!r}, step {step.job!r}: params must be a table, "
                    f"got {step.params!r}"
                )

    @classmethod
    def from_dict(cls, value: Any) -> TaskDefinition:
        """From ``{"name": ..., "steps": [{"job": ..., "params": {...}}, ...]}``."""
        if not isinstance(value, dict):
            raise InvalidInputError(f"a task definition is a table, got {type(value).__name__}")
        unknown = value.keys() - {"name", "steps"}
        if unknown:
            raise InvalidInputError(f"task definition: unknown keys {sorted(unknown)}")
        steps = value.get("steps")
        if not isinstance(steps, list):
            raise InvalidInputError("task definition: 'steps' must be a list of steps")
        parsed = []
        for i, step in enumerate(steps, 1):
            if not isinstance(step, dict) or not isinstance(step.get("job"), str):
                raise InvalidInputError(f"task definition, step {i}: needs a 'job' name")
            extra = step.keys() - {"job", "params"}
            if extra:
                raise InvalidInputError(f"task definition, step {i}: unknown keys {sorted(extra)}")
            parsed.append(TaskStep(step["job"], step.get("params") or {}))
        return cls(value.get("name", ""), tuple(parsed))

    @classmethod
    def from_json(cls, text: str | bytes) -> TaskDefinition:
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise InvalidInputError(f"task definition: not JSON: {exc}") from exc
        return cls.from_dict(value)

    @classmethod
    def from_toml(cls, text: str) -> TaskDefinition:
        try:
            value = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidInputError(f"task definition: not TOML: {exc}") from exc
        return cls.from_dict(value)

    @classmethod
    def load(cls, path: str | Path) -> TaskDefinition:
        """From a ``.json`` or ``.toml`` file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInputError(f"cannot read task definition {path}: {exc}") from exc
        if path.suffix.lower() == ".json":
            return cls.from_json(text)
        if path.suffix.lower() == ".toml":
            return cls.from_toml(text)
        raise InvalidInputError(f"task definition {path}: use a .json or .toml file")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "steps": [step.to_dict() for step in self.steps]}


@dataclass(frozen=True, slots=True)
class Submission:
    """What submitting work created: its jobs, and the task holding them
    when it was split (or started as a task)."""

    job_ids: list[str]
    task_id: str | None
    #: True when one job's items were split into several jobs.
    split: bool

    @property
    def job_count(self) -> int:
        return len(self.job_ids)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "job_ids": list(self.job_ids),
            "job_count": self.job_count,
            "split": self.split,
        }


def plan_split(job: Job[Any], scope: str | None) -> list[PlannedJob] | None:
    """The jobs ``job`` splits into (at most its type's item limit each),
    or None when it fits in one."""
    parts = split_items(job)
    if len(parts) == 1:
        return None
    return [_planned(part, scope) for part in parts]


def plan_task(
    definition: TaskDefinition,
    registry: JobRegistry,
    *,
    scope: str | None,
    items: list[Any] | None,
) -> tuple[str, list[list[PlannedJob]]]:
    """The task's scope and its jobs, by step: each step's job built from
    its parameters, then split by its type's item limit. The location of a
    ``location:<id>`` scope and the task's ``items`` are filled in where the
    job type takes them and the step does not say (a step whose type takes
    no items runs as its parameters say). Every step is checked before
    anything is stored (unknown job types, bad parameters)."""
    if scope is not None:
        check_scope(scope)
    if items is not None and scope not in (None, ENTRIES):
        raise InvalidInputError(f"a task over items has the 'entries' scope, not {scope!r}")
    location_id = int(scope.split(":", 1)[1]) if scope and scope.startswith("location:") else None
    if scope is None and items is not None:
        scope = ENTRIES
    steps: list[list[PlannedJob]] = []
    took_items = False
    for number, step in enumerate(definition.steps, 1):
        where = f"task {definition.name!r}, step {number} ({step.job})"
        try:
            cls = registry.get(step.job)
        except UnknownJobError as exc:
            raise UnknownJobError(f"{where}: {exc}") from exc
        params = dict(step.params)
        fields = cls.__dataclass_fields__  # type: ignore[attr-defined]
        if location_id is not None and "location_id" in fields:
            params.setdefault("location_id", location_id)
        if items is not None and cls.items_field is not None:
            params.setdefault(cls.items_field, list(items))
            took_items = True
        try:
            job = cls(**params)
        except (TypeError, JobDefinitionError) as exc:
            raise InvalidInputError(f"{where}: bad params: {exc}") from exc
        steps.append([_planned(part, scope) for part in split_items(job)])
    if items is not None and not took_items:
        raise InvalidInputError(f"task {definition.name!r}: none of its steps takes items")
    if scope is None:
        scope = steps[0][0][3]
    return scope, steps


def _planned(job: Job[Any], scope: str | None) -> PlannedJob:
    job_scope = job.scope() if scope is None or scope == GLOBAL else scope
    return job.job_name, job.to_state(), job.conflict_key(), check_scope(job_scope)


def split_definition(job: Job[Any], parts: int) -> dict[str, Any]:
    """What a split job's task stores as its definition: one step, the
    job's fields but its items, and how it was split."""
    items_field = type(job).items_field
    params = {k: v for k, v in job.to_state().items() if k != items_field}
    return {
        "name": job.job_name,
        "steps": [{"job": job.job_name, "params": params}],
        "split": {"field": items_field, "jobs": parts},
    }


def store_task(
    backend: JobBackend,
    name: str,
    definition: dict[str, Any],
    steps: list[list[PlannedJob]],
    *,
    tenant: str,
    scope: str,
    priority: int,
) -> Submission:
    """Store a planned task and its jobs in one write; what was created."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidInputError(f"priority must be an int, got {priority!r}")
    task_id, ids = backend.create_task(
        name,
        definition,
        [list(jobs) for jobs in steps],
        tenant=tenant,
        scope=scope,
        priority=priority,
    )
    job_ids = [job_id for step_ids in ids for job_id in step_ids]
    return Submission(job_ids, task_id, any(len(step_ids) > 1 for step_ids in ids))
