"""The PostgreSQL job store's statements and the writes made inside its
transactions: claims, a run's end and what it entails (a cancel's cascade,
a schedule's next occurrence, a task's step), children, tasks. The functions
take an open cursor inside a transaction the store began (see _connect).

The rules are jobs.db's (``phasekit/jobs/sqlite/``); what differs is how
they hold under concurrency: SQLite serialises every writer, PostgreSQL
locks rows. Where a rule reads other rows than the ones it writes (no two
jobs with one conflict key run at once; one child per key; one unfinished
joined job), the transaction first takes an advisory lock on the key, so
writers of the same key queue and each sees what the one before committed.
"""

from __future__ import annotations

import time
import zlib
from typing import TYPE_CHECKING, Any

from ...errors import (
    CorruptStateError,
    InvalidInputError,
    JobNotFound,
    JobStoreError,
    LeaseLostError,
)
from .._codec import decode, encode, new_id
from .._model import JobRecord, JobStatus, RunStart, TaskRecord
from .._progress import JobProgress
from .._schedule import next_run
from ._schema import LOCK_NAMESPACE

if TYPE_CHECKING:
    import psycopg

    Cursor = psycopg.Cursor[Any]

#: First keys of the advisory locks on conflict keys, parents (their child
#: keys) and owners (held by a live owner's session: see _owners).
KEY_LOCKS, PARENT_LOCKS, OWNER_LOCKS = LOCK_NAMESPACE + 1, LOCK_NAMESPACE + 2, LOCK_NAMESPACE + 3

FINISHED_SQL = "(" + ", ".join(f"'{s.value}'" for s in JobStatus if s.finished) + ")"

COLUMNS = (
    "id, name, status, priority, parent_id, depends_on, created_at, updated_at, error, state,"
    " run_every_s, next_run_at, schedule_id, child_key, conflict_key, tenant, scope, task_id,"
    " task_step"
)

#: What starting a run needs: the record, the newest checkpoint's data and
#: number, the stored progress, the lease epoch.
RUN_START = (
    f"{COLUMNS}, (SELECT data FROM job_checkpoints c WHERE c.job_id = jobs.id"
    " ORDER BY seq DESC LIMIT 1), (SELECT MAX(seq) FROM job_checkpoints c"
    " WHERE c.job_id = jobs.id), progress, lease"
)

#: A queued job whose conflict key no running job holds (but its own parent).
KEY_FREE = (
    "(conflict_key IS NULL OR NOT EXISTS (SELECT 1 FROM jobs r"
    " WHERE r.conflict_key = jobs.conflict_key AND r.status = 'running'"
    " AND r.id IS DISTINCT FROM jobs.parent_id))"
)

#: A queued job of a task whose earlier steps all completed.
STEP_OPEN = (
    "(task_id IS NULL OR NOT EXISTS (SELECT 1 FROM jobs p"
    " WHERE p.task_id = jobs.task_id AND p.task_step < jobs.task_step"
    " AND p.status NOT IN ('completed', 'completed_with_errors')))"
)


def b(text: str | None) -> bytes | None:
    """A ``str`` (a path's surrogate escapes included) as the bytes of a bytea column."""
    return None if text is None else text.encode("utf-8", "surrogateescape")


def s(blob: bytes | None) -> str | None:
    """What :func:`b` stored, back as the ``str``."""
    return None if blob is None else bytes(blob).decode("utf-8", "surrogateescape")


def check_text(value: str | None, what: str) -> str | None:
    """``value`` if PostgreSQL's text can hold it (UTF-8, no NUL), else InvalidInputError."""
    if value is None or (value.isascii() and "\0" not in value):
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInputError(f"{what} must be valid UTF-8 text, got {value!r}") from None
    if "\0" in value:
        raise InvalidInputError(f"{what} must not hold a NUL character, got {value!r}")
    return value


def scalar(cur: Cursor, sql: str, args: tuple[Any, ...] = ()) -> Any:
    """The one value of a query that always returns one row (an aggregate,
    a function call)."""
    row = cur.execute(sql, args).fetchone()
    if row is None:  # not for a query that always returns a row
        raise JobStoreError(f"no row from: {sql}")
    return row[0]


def lock_key(cur: Cursor, space: int, key: str | bytes) -> None:
    """Take the advisory lock on ``key`` in ``space`` until the transaction ends."""
    data = key if isinstance(key, bytes) else key.encode("utf-8", "surrogateescape")
    cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", (space, zlib.crc32(data) & 0x7FFFFFFF))


def record(row: tuple[Any, ...]) -> JobRecord:
    """A JobRecord from a row of COLUMNS."""
    return JobRecord(
        row[0],
        row[1],
        JobStatus(row[2]),
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        s(row[8]),
        bytes(row[9]),
        row[10],
        row[11],
        row[12],
        s(row[13]),
        s(row[14]),
        row[15],
        row[16],
        row[17],
        row[18],
    )


def run_start(row: tuple[Any, ...]) -> RunStart:
    """A RunStart from a row of RUN_START (the checkpoint decoded by its run)."""
    *fields, blob, seq, progress, lease = row
    percent = None
    if progress is not None:
        try:
            percent = JobProgress.from_dict(decode(progress)).percent
        except CorruptStateError:
            percent = None  # unreadable progress only loses the floor
    return RunStart(
        record(tuple(fields)),
        None if seq is None else int(seq),
        None if blob is None else bytes(blob),
        percent,
        int(lease),
    )


def check_lease(job_id: str, lease: int, row: tuple[Any, ...] | None) -> None:
    """LeaseLostError unless ``row`` (the job's lease and status) is running under ``lease``."""
    if row is None:
        raise LeaseLostError(f"job {job_id} is gone: this run's writes are refused")
    current, status = int(row[0]), row[1]
    if current != lease or status != "running":
        raise LeaseLostError(
            f"job {job_id} is no longer this run's (its claim {lease}; now claim {current},"
            f" {status}): resumed elsewhere or stopped from outside; this run gives it up"
        )


def fence(cur: Cursor, job_id: str, lease: int) -> None:
    """LeaseLostError unless ``job_id`` runs under ``lease``; the row stays
    locked to the transaction's end, so no claim moves it meanwhile."""
    # A running job is in the hot partition; elsewhere only to say why not.
    row = cur.execute(
        "SELECT lease, status FROM jobs_active WHERE id = %s FOR UPDATE", (job_id,)
    ).fetchone()
    if row is None:
        row = cur.execute("SELECT lease, status FROM jobs WHERE id = %s", (job_id,)).fetchone()
    check_lease(job_id, lease, row)


# --- claims -----------------------------------------------------------------------


def ready_page(excluded: bool, tenants: bool) -> str:
    """SQL of ``(id, name, priority, tenant)`` of queued jobs that may start
    now, in dispatch order. Arguments: now, [excluded names], [tenants], limit, offset."""
    only = " AND name <> ALL(%s)" if excluded else ""
    if tenants:
        only += " AND tenant = ANY(%s)"
    return (
        "SELECT id, name, priority, tenant FROM jobs WHERE status = 'queued'"
        f" AND (next_run_at IS NULL OR next_run_at <= %s){only}"
        " AND (depends_on IS NULL OR EXISTS (SELECT 1 FROM jobs d WHERE d.id = jobs.depends_on"
        " AND d.status IN ('completed', 'completed_with_errors')))"
        f" AND {KEY_FREE} AND {STEP_OPEN}"
        " ORDER BY priority DESC, created_at, id LIMIT %s OFFSET %s"
    )


#: A claim's update. Queued jobs are in the hot partition, which it names
#: (as ``jobs``, the name the shared conditions use): no lookup in the other.
_CLAIM = (
    "UPDATE jobs_active AS jobs SET status = 'running', updated_at = %s, owner = %s,"
    " lease = lease + 1, started_at = COALESCE(started_at, %s) WHERE {where}"
    f" AND status = 'queued' AND {STEP_OPEN} RETURNING id, {{returning}}"
)

#: The jobs among the asked ids that no other transaction holds now: a
#: claimer skips the rows another claimer is taking (SKIP LOCKED) instead
#: of waiting to find them taken (workers reading one ready page at once).
_FREE_UNKEYED = (
    "id IN (SELECT f.id FROM jobs_active f WHERE f.id = ANY(%s) AND f.status = 'queued'"
    " AND f.conflict_key IS NULL FOR UPDATE SKIP LOCKED)"
)


def claim(
    cur: Cursor, job_ids: list[str], now: float, owner: str | None, returning: str = "id"
) -> list[Any]:
    """Mark the queued jobs among ``job_ids`` running by ``owner`` with a new
    lease epoch; a row of ``returning`` per job claimed, in the order asked.

    Jobs without a conflict key are claimed in one statement, but for those
    another transaction is claiming (skipped, as taken); a keyed job after
    the advisory lock on its key, then checked free (so two transactions
    never both start a job of one key), one at a time (so two keyed jobs
    claimed together do not both start either)."""
    cur.execute(
        _CLAIM.format(where=_FREE_UNKEYED, returning=returning),
        (now, owner, now, job_ids),
    )
    claimed = {row[0]: row[1:] for row in cur.fetchall()}
    rest = [job_id for job_id in job_ids if job_id not in claimed]
    if rest:
        cur.execute(
            "SELECT id, conflict_key FROM jobs_active WHERE id = ANY(%s) AND status = 'queued'"
            " AND conflict_key IS NOT NULL",
            (rest,),
        )
        keyed = {row[0]: bytes(row[1]) for row in cur.fetchall()}
        for key in sorted(set(keyed.values())):  # one order: no deadlock between claimers
            lock_key(cur, KEY_LOCKS, key)
        for job_id in rest:
            if job_id not in keyed:
                continue
            cur.execute(
                _CLAIM.format(where=f"id = %s AND {KEY_FREE}", returning=returning),
                (now, owner, now, job_id),
            )
            row = cur.fetchone()
            if row is not None:
                claimed[job_id] = row[1:]
    return [claimed[job_id] for job_id in job_ids if job_id in claimed]


# --- a run's end and what it entails ---------------------------------------------


_NONE, _EMPTY_LIST, _EMPTY_DICT = encode(None), encode([]), encode({})


#: A run's end ready to write: ``(job id, status, end, the UPDATE's values)``.
Prepared = tuple[str, JobStatus, dict[str, Any], tuple[Any, ...]]


def prepare_ends(ends: list[tuple[str, JobStatus, dict[str, Any]]]) -> list[Prepared]:
    """Runs' ends (``end``: JobBackend.finish's keyword arguments, with its
    ``lease``) encoded for :func:`finish_many`, before its transaction
    opens: encoding a large output inside it would keep the rows locked
    meanwhile, and could pass the server's idle-in-transaction limit
    (_connect.SESSION_SETTINGS). TypeError for a value that cannot be
    stored."""
    now = time.time()
    return [(j, status, end, _end_values(j, status, end, now)) for j, status, end in ends]


def finish(cur: Cursor, prepared: Prepared) -> None:
    """Record a run's end (see :func:`prepare_ends`); fenced by its lease
    when given (LeaseLostError), JobNotFound without one."""
    lost = finish_many(cur, [prepared], missing_ok=False)
    if lost:
        raise lost[0][1]


def finish_many(
    cur: Cursor,
    ends: list[Prepared],
    *,
    missing_ok: bool = True,
) -> list[tuple[str, LeaseLostError]]:
    """Record the ends of several runs (each ``(job_id, status, end)``,
    ``end["lease"]`` fencing it when given): the ends refused for a lost
    lease, with why; the others are recorded. A job with no row and no
    lease raises JobNotFound unless ``missing_ok``.

    Three round trips whatever the number of ends: the rows are locked and
    their leases checked in one query (in id order, as every writer locking
    several rows does: no deadlock), the updates go in one pipeline, and only
    the ends that entail more (a cancel's cascade, a schedule, a task) take
    their own statements."""
    ids = [job_id for job_id, _, _, _ in ends]
    # A run's job is running, in the hot partition: looked up there, and in
    # the whole table only for the ids not found (a late end, a command's).
    lookup = (
        "SELECT id, status, run_every_s IS NOT NULL, task_id, lease FROM {table}"
        " WHERE id = ANY(%s) ORDER BY id FOR UPDATE"
    )
    cur.execute(lookup.format(table="jobs_active"), (ids,))
    rows = {row[0]: row for row in cur.fetchall()}
    if len(rows) < len(set(ids)):
        cur.execute(lookup.format(table="jobs"), ([i for i in ids if i not in rows],))
        rows.update((row[0], row) for row in cur.fetchall())
    lost: list[tuple[str, LeaseLostError]] = []
    recorded = []
    for job_id, status, end, values in ends:
        row, lease = rows.get(job_id), end.get("lease")
        try:
            if lease is not None:
                check_lease(job_id, lease, None if row is None else (row[4], row[1]))
        except LeaseLostError as exc:
            lost.append((job_id, exc))
            continue
        if row is None:
            if missing_ok:
                continue
            raise JobNotFound(f"no job with id {job_id!r}")
        recorded.append((job_id, status, values, row))
    if not recorded:
        return lost
    cur.executemany(
        "UPDATE jobs SET status = %s, error = %s, traceback = %s, output = %s, warnings = %s,"
        " errors = %s, metrics = %s, updated_at = %s, request = NULL,"
        " progress = COALESCE(%s, progress),"
        " finished_at = CASE WHEN %s THEN %s ELSE finished_at END,"
        " warning_count = %s, error_count = %s WHERE id = %s",
        [values for _, _, values, _ in recorded],
    )
    for job_id, status, values, row in recorded:
        before = JobStatus(row[1])
        ended(cur, job_id, before.finished, bool(row[2]), status, values[_NOW], row[3])
    return lost


#: Where the time of the end is in :func:`_end_values`' tuple.
_NOW = 7


def _end_values(job_id: str, status: JobStatus, end: dict[str, Any], now: float) -> tuple[Any, ...]:
    output, warnings, errors = end.get("output"), end.get("warnings"), end.get("errors")
    metrics, progress = end.get("metrics"), end.get("progress")
    return (
        status.value,
        b(end.get("error")),
        b(end.get("traceback")),
        _NONE if output is None else encode(output),
        encode(warnings) if warnings else _EMPTY_LIST,
        encode(errors) if errors else _EMPTY_LIST,
        encode(metrics) if metrics else _EMPTY_DICT,
        now,
        None if progress is None else encode(progress),
        status.finished,
        now,
        len(warnings or ()),
        len(errors or ()),
        job_id,
    )


def ended(
    cur: Cursor,
    job_id: str,
    was_finished: bool,
    scheduled: bool,
    status: JobStatus,
    now: float,
    task_id: str | None,
) -> None:
    """What a job's first reaching a finished status entails, in its
    transaction (its history row is the schema's triggers' work)."""
    if not status.finished or was_finished:
        return
    if status is JobStatus.CANCELLED:
        cancel_waiting(cur, job_id, now)
    elif scheduled:
        schedule_next(cur, job_id, now)
    if task_id is not None:
        task_job_ended(cur, task_id, job_id, status.value, now)


#: Every descendant ``d(id)`` of the job bound to %s.
DESCENDANTS = (
    "WITH RECURSIVE d(id) AS (SELECT id FROM jobs WHERE parent_id = %s"
    " UNION SELECT jobs.id FROM jobs JOIN d ON jobs.parent_id = d.id)"
)


def cancel_waiting(cur: Cursor, job_id: str, now: float) -> None:
    """Cancel the queued and paused descendants of ``job_id``."""
    cur.execute(
        f"{DESCENDANTS} UPDATE jobs SET status = 'cancelled', updated_at = %s, finished_at = %s"
        " WHERE id IN (SELECT id FROM d) AND status IN ('queued', 'paused')",
        (job_id, now, now),
    )


def schedule_next(cur: Cursor, job_id: str, now: float) -> None:
    """Queue the next occurrence of scheduled job ``job_id`` (same schedule,
    conflict key, tenant and scope; the next slot after now)."""
    cur.execute("SELECT run_every_s, next_run_at, created_at FROM jobs WHERE id = %s", (job_id,))
    row = cur.fetchone()
    if row is None or row[0] is None:
        return
    every, planned, created_at = row
    cur.execute(
        "INSERT INTO jobs (id, name, state, status, priority, depends_on, run_every_s,"
        " next_run_at, schedule_id, created_at, updated_at, conflict_key, tenant, scope)"
        " SELECT %s, name, state, 'queued', priority, depends_on, run_every_s, %s,"
        " COALESCE(schedule_id, id), %s, %s, conflict_key, tenant, scope FROM jobs WHERE id = %s",
        (
            new_id(),
            next_run(planned if planned is not None else created_at, every, now),
            now,
            now,
            job_id,
        ),
    )


def task_job_ended(cur: Cursor, task_id: str, job_id: str, status: str, now: float) -> None:
    """A job of ``task_id`` finished: a failure or cancel stops the task (its
    waiting jobs cancelled), the last completion completes it."""
    if status in ("failed", "cancelled"):
        cur.execute("SELECT task_step, name, error FROM jobs WHERE id = %s", (job_id,))
        row = cur.fetchone()
        step, job_name, error = row if row is not None else (None, "?", None)
        why = f"step {None if step is None else step + 1} ({job_name}): job {job_id} {status}"
        if error is not None:
            why += f": {s(error)}"
        cur.execute(
            "UPDATE tasks SET status = %s, error = %s, updated_at = %s, finished_at = %s"
            " WHERE id = %s AND status = 'running'",
            (status, b(why), now, now, task_id),
        )
        if cur.rowcount:
            cur.execute(
                "UPDATE jobs SET status = 'cancelled', updated_at = %s, finished_at = %s,"
                " error = %s WHERE task_id = %s AND status IN ('queued', 'paused')"
                " RETURNING id",
                (now, now, b(f"task {task_id} stopped: {why}"), task_id),
            )
            for (other,) in cur.fetchall():
                cancel_waiting(cur, other, now)  # a paused job's children go with it
        return
    cur.execute(
        f"SELECT 1 FROM jobs WHERE task_id = %s AND status NOT IN {FINISHED_SQL} LIMIT 1",
        (task_id,),
    )
    if cur.fetchone() is None:
        cur.execute(
            "UPDATE tasks SET status = 'completed', updated_at = %s, finished_at = %s"
            " WHERE id = %s AND status = 'running'",
            (now, now, task_id),
        )


# --- children and tasks ------------------------------------------------------------


def create_child(
    cur: Cursor,
    parent_id: str,
    key: str,
    name: str,
    blob: bytes,
    priority: int | None,
    conflict_key: str | None,
    scope: str | None,
) -> tuple[str, bool]:
    """Queue a child of ``parent_id`` under ``key`` unless it has one
    (the parent's advisory lock makes two creators of one key queue)."""
    lock_key(cur, PARENT_LOCKS, parent_id)
    cur.execute(
        "SELECT id, name FROM jobs WHERE parent_id = %s AND child_key = %s", (parent_id, b(key))
    )
    row = cur.fetchone()
    if row is not None:
        if row[1] != name:
            raise InvalidInputError(
                f"child key {key!r} of job {parent_id} is already used by a {row[1]!r} job"
            )
        return str(row[0]), False
    cur.execute("SELECT priority, tenant, scope FROM jobs WHERE id = %s", (parent_id,))
    parent = cur.fetchone()
    if parent is None:
        raise JobNotFound(f"no job with id {parent_id!r}")
    child_id, now = new_id(), time.time()
    cur.execute(
        "INSERT INTO jobs (id, name, state, status, priority, parent_id, child_key, created_at,"
        " updated_at, conflict_key, tenant, scope)"
        " VALUES (%s, %s, %s, 'queued', %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            child_id,
            name,
            blob,
            parent[0] if priority is None else priority,
            parent_id,
            b(key),
            now,
            now,
            b(conflict_key),
            parent[1],
            parent[2] if scope is None else scope,
        ),
    )
    return child_id, True


def create_task(
    cur: Cursor,
    *,
    tenant: str,
    name: str,
    scope: str | None,
    definition: bytes,
    steps: list[list[tuple[str, bytes, str | None, str | None]]],
    priority: int,
    now: float,
) -> tuple[str, list[list[str]]]:
    """Insert a task and every job of its steps; its id and its jobs' ids."""
    task_id = new_id()
    cur.execute(
        "INSERT INTO tasks (id, tenant, name, scope, definition, steps, status, created_at,"
        " updated_at) VALUES (%s, %s, %s, %s, %s, %s, 'running', %s, %s)",
        (task_id, tenant, name, scope, definition, len(steps), now, now),
    )
    ids: list[list[str]] = []
    rows = []
    created = now
    for step, jobs in enumerate(steps):
        step_ids = []
        for job_name, blob, conflict_key, job_scope in jobs:
            job_id = new_id()
            created += 1e-6  # a task's jobs start in the order they were planned
            rows.append(
                (
                    job_id,
                    job_name,
                    blob,
                    priority,
                    created,
                    now,
                    b(conflict_key),
                    tenant,
                    job_scope,
                    task_id,
                    step,
                )
            )
            step_ids.append(job_id)
        ids.append(step_ids)
    cur.executemany(
        "INSERT INTO jobs (id, name, state, status, priority, created_at, updated_at,"
        " conflict_key, tenant, scope, task_id, task_step)"
        " VALUES (%s, %s, %s, 'queued', %s, %s, %s, %s, %s, %s, %s, %s)",
        rows,
    )
    return task_id, ids


TASK_COLUMNS = (
    "id, tenant, name, scope, definition, steps, status, error, created_at, updated_at, finished_at"
)


def task_record(row: tuple[Any, ...], jobs: list[tuple[Any, ...]]) -> TaskRecord:
    """A TaskRecord from a row of TASK_COLUMNS and its jobs'
    ``(id, name, status, task_step, progress)``, by step and age."""
    from ..sqlite._tasks import task_record as sqlite_task_record

    # The same rules as jobs.db's; only the error column differs (bytea here).
    row = (*row[:7], s(row[7]), *row[8:])
    return sqlite_task_record(
        (*row[:4], bytes(row[4]), *row[5:]),
        [(j[0], j[1], j[2], j[3], None if j[4] is None else bytes(j[4])) for j in jobs],
    )
