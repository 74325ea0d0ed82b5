"""Values as JSON is written: one conversion for the outputs of every job
type and the records without a shape of their own (the command line prints
them; a web server or an application reuses the same shapes)."""

from __future__ import annotations

import dataclasses
import enum
import os
from typing import Any


def json_ready(value: Any) -> Any:
    """Dataclasses as dicts of their fields, enums as their values, bytes
    (paths) as ``str``, tuples as lists, recursively. A ``str`` path that is
    not UTF-8 keeps its surrogate escapes, which ``json.dumps`` writes as
    ``\\udcXX``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: json_ready(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return os.fsdecode(value)  # a path
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    return value
