"""jobs.db's layout: its migrations, by the version each produces.

:func:`phasekit.jobs._sqlite.migrate` applies them, one version per
transaction, when a store opens an older file.
"""

from __future__ import annotations

_SCHEMA_V1 = """
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    state BLOB NOT NULL,
    status TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    progress BLOB,
    parent_id TEXT REFERENCES jobs(id),
    created_at REAL NOT NULL,
    started_at REAL,
    updated_at REAL NOT NULL,
    finished_at REAL,
    error TEXT,
    warnings BLOB,
    errors BLOB,
    metrics BLOB,
    output BLOB
);
CREATE INDEX jobs_status ON jobs(status, priority DESC, created_at);
CREATE TABLE job_checkpoints (
    job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    version INTEGER NOT NULL,
    data BLOB NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (job_id, seq)
);
CREATE TABLE job_history (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    error TEXT,
    output BLOB,
    metrics BLOB
);
CREATE INDEX job_history_finished ON job_history(finished_at);
"""

_V2 = """
ALTER TABLE jobs ADD COLUMN depends_on TEXT REFERENCES jobs(id);
ALTER TABLE jobs ADD COLUMN run_every_s REAL;
ALTER TABLE jobs ADD COLUMN next_run_at REAL;
CREATE INDEX jobs_depends_on ON jobs(depends_on);
"""

_V3 = """
ALTER TABLE jobs ADD COLUMN child_key TEXT;
ALTER TABLE jobs ADD COLUMN schedule_id TEXT;
CREATE UNIQUE INDEX jobs_child_key ON jobs(parent_id, child_key) WHERE child_key IS NOT NULL;
CREATE INDEX jobs_parent ON jobs(parent_id);
CREATE INDEX jobs_schedule ON jobs(schedule_id) WHERE schedule_id IS NOT NULL;
CREATE INDEX jobs_finished ON jobs(finished_at) WHERE finished_at IS NOT NULL;
ALTER TABLE job_history ADD COLUMN parent_id TEXT;
ALTER TABLE job_history ADD COLUMN schedule_id TEXT;
ALTER TABLE job_history ADD COLUMN started_at REAL;
ALTER TABLE job_history ADD COLUMN warning_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE job_history ADD COLUMN error_count INTEGER NOT NULL DEFAULT 0;
"""

_V4 = """
CREATE INDEX jobs_next_run ON jobs(next_run_at) WHERE next_run_at IS NOT NULL;
DROP INDEX jobs_status;
CREATE INDEX jobs_status ON jobs(status, priority DESC, created_at, id);
"""

_V5 = """
ALTER TABLE jobs ADD COLUMN request TEXT;
ALTER TABLE jobs ADD COLUMN owner TEXT;
"""

_V6 = """
DROP INDEX jobs_depends_on;
CREATE INDEX jobs_depends_on ON jobs(depends_on) WHERE depends_on IS NOT NULL;
DROP INDEX jobs_parent;
CREATE INDEX jobs_parent ON jobs(parent_id) WHERE parent_id IS NOT NULL;
"""

_V7 = """
ALTER TABLE jobs ADD COLUMN warning_count INTEGER;
ALTER TABLE jobs ADD COLUMN error_count INTEGER;
ALTER TABLE jobs ADD COLUMN history_pending INTEGER;
DROP INDEX jobs_finished;
CREATE INDEX jobs_finished ON jobs(history_pending, finished_at) WHERE finished_at IS NOT NULL;
"""

_V8 = """
ALTER TABLE jobs ADD COLUMN conflict_key TEXT;
ALTER TABLE jobs ADD COLUMN traceback TEXT;
CREATE INDEX jobs_conflict ON jobs(conflict_key, status) WHERE conflict_key IS NOT NULL;
"""

#: The history row of a job keeps no copy of the output (it is read from the
#: job's row: see _history). A finished job's row is not expected to change,
#: but one that leaves its finished status (set back to queued or running)
#: may be given another output; this trigger keeps the output its history row
#: stands for first. The rule in SQL, because every path that changes a
#: status (set_status, move, finish) then keeps it, in the same statement.
_V9 = """
CREATE TRIGGER jobs_history_keeps_its_output AFTER UPDATE OF status ON jobs
WHEN old.status IN ('completed', 'completed_with_errors', 'failed', 'cancelled')
    AND new.status NOT IN ('completed', 'completed_with_errors', 'failed', 'cancelled')
BEGIN
    UPDATE job_history SET output = COALESCE(output, old.output) WHERE id = old.id;
END;
"""

#: Workers and leases. Each manager (a ``phasekit worker``, or any process
#: running jobs) has a row it refreshes every heartbeat (see _owners): a
#: process that stops refreshing it, although alive (stopped, swapped out),
#: is taken for dead once its heartbeat is stale, and its jobs are resumed
#: elsewhere. ``lease`` counts the claims of a job: a run writes with the
#: number its claim gave it, and a write whose number is no longer the job's
#: is refused (a fencing token), so the stalled run, when it goes on, cannot
#: overwrite the run that took its job over.
_V10 = """
ALTER TABLE jobs ADD COLUMN lease INTEGER NOT NULL DEFAULT 0;
CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at REAL NOT NULL,
    heartbeat_at REAL NOT NULL,
    stale_after_s REAL NOT NULL,
    info BLOB
);
"""

#: The event log: every status and progress change of every job, whichever
#: process made it, in the order the changes committed (ids only grow: the
#: writes of all processes are serialised by SQLite's write lock, and an id
#: is taken inside the transaction that makes the change, so a reader never
#: sees an id before the ones below it). Written by triggers, so every path
#: that changes a job (a claim, a finish, a compare-and-set move, a progress
#: write, a new job) logs it in the same transaction. AUTOINCREMENT: ids are
#: never reused, even once the oldest events are pruned.
_V11 = """
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    job_id TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    progress BLOB,
    parent_id TEXT,
    owner TEXT
);
CREATE TRIGGER events_new_job AFTER INSERT ON jobs
BEGIN
    INSERT INTO events (at, kind, job_id, name, status, progress, parent_id, owner)
    VALUES (new.updated_at, 'status', new.id, new.name, new.status, NULL, new.parent_id,
            new.owner);
END;
CREATE TRIGGER events_status AFTER UPDATE OF status ON jobs
WHEN new.status IS NOT old.status
BEGIN
    INSERT INTO events (at, kind, job_id, name, status, progress, parent_id, owner)
    VALUES (new.updated_at, 'status', new.id, new.name, new.status, new.progress,
            new.parent_id, new.owner);
END;
CREATE TRIGGER events_progress AFTER UPDATE OF progress ON jobs
WHEN new.status IS old.status AND new.progress IS NOT old.progress
BEGIN
    INSERT INTO events (at, kind, job_id, name, status, progress, parent_id, owner)
    VALUES (new.updated_at, 'progress', new.id, new.name, new.status, new.progress,
            new.parent_id, new.owner);
END;
"""

#: Tenants, scopes and tasks. Every job belongs to a tenant (``default`` for
#: embedded use: the rows of earlier versions get it) and has a scope
#: (``location:<id>``, ``entries`` or ``global``; NULL in rows of earlier
#: versions, which did not record one). A task is an ordered list of steps,
#: each one or more jobs: every job of every step is stored when the task
#: starts (``task_id``, ``task_step``), and a job of step k is ready only
#: once every job of the task's earlier steps completed (see _claims), so no
#: process has to be alive when a step ends for the next one to start. The
#: task's row holds what the jobs do not: its definition, and how it ended.
#: The event log carries the tenant, scope and task of each change (its
#: triggers are replaced to write them).
_V12 = """
ALTER TABLE jobs ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE jobs ADD COLUMN scope TEXT;
ALTER TABLE jobs ADD COLUMN task_id TEXT;
ALTER TABLE jobs ADD COLUMN task_step INTEGER;
CREATE INDEX jobs_task ON jobs(task_id, task_step) WHERE task_id IS NOT NULL;
CREATE INDEX jobs_tenant ON jobs(tenant, created_at);
ALTER TABLE job_history ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE job_history ADD COLUMN scope TEXT;
ALTER TABLE job_history ADD COLUMN task_id TEXT;
CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    scope TEXT,
    definition BLOB NOT NULL,
    steps INTEGER NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX tasks_tenant ON tasks(tenant, created_at);
ALTER TABLE events ADD COLUMN tenant TEXT NOT NULL DEFAULT 'default';
ALTER TABLE events ADD COLUMN scope TEXT;
ALTER TABLE events ADD COLUMN task_id TEXT;
DROP TRIGGER events_new_job;
DROP TRIGGER events_status;
DROP TRIGGER events_progress;
CREATE TRIGGER events_new_job AFTER INSERT ON jobs
BEGIN
    INSERT INTO events (at, kind, job_id, name, status, progress, parent_id, owner,
                        tenant, scope, task_id)
    VALUES (new.updated_at, 'status', new.id, new.name, new.status, NULL, new.parent_id,
            new.owner, new.tenant, new.scope, new.task_id);
END;
CREATE TRIGGER events_status AFTER UPDATE OF status ON jobs
WHEN new.status IS NOT old.status
BEGIN
    INSERT INTO events (at, kind, job_id, name, status, progress, parent_id, owner,
                        tenant, scope, task_id)
    VALUES (new.updated_at, 'status', new.id, new.name, new.status, new.progress,
            new.parent_id, new.owner, new.tenant, new.scope, new.task_id);
END;
CREATE TRIGGER events_progress AFTER UPDATE OF progress ON jobs
WHEN new.status IS old.status AND new.progress IS NOT old.progress
BEGIN
    INSERT INTO events (at, kind, job_id, name, status, progress, parent_id, owner,
                        tenant, scope, task_id)
    VALUES (new.updated_at, 'progress', new.id, new.name, new.status, new.progress,
            new.parent_id, new.owner, new.tenant, new.scope, new.task_id);
END;
"""

#: Migrations by the version they produce. Version 1 is the first layout;
#: version 2 added dependencies and interval schedules; version 3 added child
#: keys, schedule ids and a fuller history; version 4 an index for the next
#: scheduled start and the full dispatch order in the status index; version 5
#: a stop request (pause or cancel a job running in another process) and the
#: owner (the manager) of a running job; version 6 makes the dependency and
#: parent indices partial (most jobs have neither: a dispatch writes less);
#: version 7 lets a finished job's history row be written later, in a batch
#: (the mark, and the warning and error counts the row needs; see _history),
#: and puts the mark first in the index of finished jobs: one index finds
#: both the marked jobs and, once none is, the jobs old enough to prune.
#: version 8 adds the conflict key (jobs that must not run at the same time:
#: see Job.conflict_key) and the traceback of a failed run (for
#: ``phasekit jobs show --debug``; the job's error stays a message);
#: version 9 stores a finished job's output once, in its row (the history
#: row's output stays NULL; the trigger above keeps it when the row changes).
#: An earlier phasekit refuses a version 9 file rather than list its history
#: without outputs. Version 10 adds the workers table and each job's lease
#: epoch (see above); version 11 the event log (see above); version 12
#: tenants, scopes and tasks (see above). Never edit a shipped entry: add a
#: new one.
MIGRATIONS: dict[int, str] = {
    1: _SCHEMA_V1,
    2: _V2,
    3: _V3,
    4: _V4,
    5: _V5,
    6: _V6,
    7: _V7,
    8: _V8,
    9: _V9,
    10: _V10,
    11: _V11,
    12: _V12,
}
SCHEMA_VERSION = max(MIGRATIONS)
