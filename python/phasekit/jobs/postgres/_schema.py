"""The PostgreSQL job store's layout: its migrations, by the version each
produces (applied by :func:`phasekit.jobs.postgres._connect.migrate_tables`, one
version per transaction, under an advisory lock so processes opening a new
database at once migrate it once).

The layout mirrors jobs.db's (``phasekit/jobs/sqlite/_schema.py``, version
12) with three differences that PostgreSQL calls for:

* **Finished jobs live outside the hot table.** ``jobs`` is partitioned by
  status: ``jobs_active`` holds the queued, running and paused jobs, which
  every claim, progress write and heartbeat touches; ``jobs_done`` the
  finished ones. A job that finishes moves to ``jobs_done`` in the write that
  finishes it, so the table workers hammer stays as small as the queue and
  its vacuum short, however long the history. Reads go through ``jobs`` and
  see both. (A write racing a job's move gets a serialization failure, which
  the store retries: see _connect.)
* **Events are numbered after they commit.** A trigger writes each change to
  ``events_pending`` in the transaction that makes it; readers number the
  committed pending events, oldest first, into ``events`` (under an advisory
  lock, so numbers only grow and none is skipped: see ``phasekit_number_events``).
  A number is never given to a change that could still commit before a
  smaller one, which a sequence read inside the writing transaction cannot
  promise.
* **Text a user gives is bytes.** PostgreSQL's text must be valid UTF-8
  without NUL; an error message, a traceback, a conflict key or a child key
  may hold a file name that is neither, so those columns are ``bytea``
  (the surrogate-escaped bytes of the ``str``).

Triggers keep, as in jobs.db, what every path must do in the same
transaction: log the change, write a finished job's history row, keep the
output a history row stands for when its job leaves its finished status, and
wake listening workers (``NOTIFY phasekit_jobs``) when a job becomes queued.
"""

from __future__ import annotations

#: Namespace of phasekit's advisory locks (the first key of the two-key form).
LOCK_NAMESPACE = 0x706B  # "pk"
#: Second keys within the namespace (owners use a hash of their id, above 16).
MIGRATE_LOCK, NUMBER_EVENTS_LOCK = 1, 2
#: The table holding the layout's version (one row, one INTEGER column).
VERSION_TABLE = "phasekit_jobs_schema"

#: The channel a worker listens on to learn of queued jobs without polling.
CHANNEL = "phasekit_jobs"

_FINISHED = "('completed', 'completed_with_errors', 'failed', 'cancelled')"

#: Log a change of the row NEW (``kind``: status or progress).
_LOG = """INSERT INTO events_pending (at, kind, job_id, name, status, progress, parent_id,
            owner, tenant, scope, task_id)
        VALUES (NEW.updated_at, '{kind}', NEW.id, NEW.name, NEW.status, NEW.progress,
            NEW.parent_id, NEW.owner, NEW.tenant, NEW.scope, NEW.task_id);"""

#: The summary of the finished job NEW (replacing an earlier one of the job).
_HISTORY = """INSERT INTO job_history (id, name, status, parent_id, schedule_id,
            created_at, started_at, finished_at, error, warning_count, error_count, output,
            metrics, tenant, scope, task_id)
        VALUES (NEW.id, NEW.name, NEW.status, NEW.parent_id, NEW.schedule_id,
            NEW.created_at, NEW.started_at, COALESCE(NEW.finished_at, NEW.updated_at),
            NEW.error, COALESCE(NEW.warning_count, 0), COALESCE(NEW.error_count, 0), NULL,
            NEW.metrics, NEW.tenant, NEW.scope, NEW.task_id)
        ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, status = EXCLUDED.status,
            parent_id = EXCLUDED.parent_id, schedule_id = EXCLUDED.schedule_id,
            created_at = EXCLUDED.created_at, started_at = EXCLUDED.started_at,
            finished_at = EXCLUDED.finished_at, error = EXCLUDED.error,
            warning_count = EXCLUDED.warning_count, error_count = EXCLUDED.error_count,
            output = NULL, metrics = EXCLUDED.metrics, tenant = EXCLUDED.tenant,
            scope = EXCLUDED.scope, task_id = EXCLUDED.task_id;"""

_V1 = f"""
CREATE TABLE jobs (
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    state BYTEA NOT NULL,
    status TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    progress BYTEA,
    parent_id TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION,
    updated_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    error BYTEA,
    warnings BYTEA,
    errors BYTEA,
    metrics BYTEA,
    output BYTEA,
    depends_on TEXT,
    run_every_s DOUBLE PRECISION,
    next_run_at DOUBLE PRECISION,
    child_key BYTEA,
    schedule_id TEXT,
    request TEXT,
    owner TEXT,
    warning_count INTEGER,
    error_count INTEGER,
    conflict_key BYTEA,
    traceback BYTEA,
    lease BIGINT NOT NULL DEFAULT 0,
    tenant TEXT NOT NULL DEFAULT 'default',
    scope TEXT,
    task_id TEXT,
    task_step INTEGER
) PARTITION BY LIST (status);
CREATE TABLE jobs_active PARTITION OF jobs FOR VALUES IN ('queued', 'running', 'paused')
    WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 2000,
          autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 2000);
CREATE TABLE jobs_done PARTITION OF jobs DEFAULT;
-- A unique index on the id of each partition (a partitioned table's own
-- unique index would have to include the status): the planner knows a
-- lookup by ids returns that many rows, and takes the index even before
-- the tables have statistics (a new database, a queue filled at once).
CREATE UNIQUE INDEX jobs_active_id ON jobs_active (id);
CREATE UNIQUE INDEX jobs_done_id ON jobs_done (id);
-- The ready page: queued jobs in dispatch order, and nothing else (a claim
-- takes its job out of this index).
CREATE INDEX jobs_dispatch ON jobs_active (priority DESC, created_at, id)
    WHERE status = 'queued';
CREATE INDEX jobs_parent ON jobs (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX jobs_depends_on ON jobs (depends_on) WHERE depends_on IS NOT NULL;
CREATE INDEX jobs_schedule ON jobs (schedule_id) WHERE schedule_id IS NOT NULL;
CREATE INDEX jobs_next_run ON jobs (next_run_at) WHERE next_run_at IS NOT NULL;
CREATE INDEX jobs_conflict ON jobs (conflict_key, status) WHERE conflict_key IS NOT NULL;
CREATE INDEX jobs_task ON jobs (task_id, task_step) WHERE task_id IS NOT NULL;
CREATE INDEX jobs_tenant ON jobs (tenant, created_at);
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE job_checkpoints (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    version INTEGER NOT NULL,
    data BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE job_history (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    parent_id TEXT,
    schedule_id TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    started_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION NOT NULL,
    error BYTEA,
    warning_count INTEGER NOT NULL DEFAULT 0,
    error_count INTEGER NOT NULL DEFAULT 0,
    output BYTEA,
    metrics BYTEA,
    tenant TEXT NOT NULL,
    scope TEXT,
    task_id TEXT
);
CREATE INDEX job_history_finished ON job_history (finished_at);

CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL,
    stale_after_s DOUBLE PRECISION NOT NULL,
    info BYTEA,
    lock_key INTEGER NOT NULL
);

CREATE TABLE tasks (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    name TEXT NOT NULL,
    scope TEXT,
    definition BYTEA NOT NULL,
    steps INTEGER NOT NULL,
    status TEXT NOT NULL,
    error BYTEA,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION
);
CREATE INDEX tasks_tenant ON tasks (tenant, created_at);

CREATE TABLE events_pending (
    n BIGSERIAL PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    kind TEXT NOT NULL,
    job_id TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    progress BYTEA,
    parent_id TEXT,
    owner TEXT,
    tenant TEXT NOT NULL,
    scope TEXT,
    task_id TEXT
);
CREATE TABLE events (
    id BIGINT PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    kind TEXT NOT NULL,
    job_id TEXT NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    progress BYTEA,
    parent_id TEXT,
    owner TEXT,
    tenant TEXT NOT NULL,
    scope TEXT,
    task_id TEXT
);
CREATE INDEX events_tenant ON events (tenant, id);
CREATE TABLE event_counter (last BIGINT NOT NULL);
INSERT INTO event_counter VALUES (0);

-- A row arriving in a partition: a new job, or a job whose status moved it
-- from the other partition (an update across partitions is a delete and an
-- insert to triggers). Either way its status is new.
CREATE FUNCTION phasekit_job_arrived() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {_LOG.format(kind="status")}
    IF NEW.status IN {_FINISHED} THEN
        {_HISTORY}
    ELSIF NEW.status = 'queued' THEN
        PERFORM pg_notify('{CHANNEL}', '');
    END IF;
    RETURN NULL;
END $$;

-- A row changed within its partition.
CREATE FUNCTION phasekit_job_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        {_LOG.format(kind="status")}
        IF NEW.status = 'queued' THEN
            PERFORM pg_notify('{CHANNEL}', '');
        END IF;
    ELSIF NEW.progress IS DISTINCT FROM OLD.progress THEN
        {_LOG.format(kind="progress")}
    END IF;
    IF NEW.status IN {_FINISHED} AND NEW.finished_at IS DISTINCT FROM OLD.finished_at THEN
        {_HISTORY}  -- finished again (a late cancel): the newer summary
    END IF;
    RETURN NULL;
END $$;

-- A row leaving a partition: a finished job set back to queued or running
-- keeps, in its history row, the output that row stands for (the history row
-- of a job keeps no copy of the output: listings read it from the job's row).
-- Pruning deletes the history row first, so this finds none then.
CREATE FUNCTION phasekit_job_left() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status IN {_FINISHED} THEN
        UPDATE job_history SET output = COALESCE(output, OLD.output) WHERE id = OLD.id;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_arrived AFTER INSERT ON jobs
    FOR EACH ROW EXECUTE FUNCTION phasekit_job_arrived();
CREATE TRIGGER jobs_changed AFTER UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION phasekit_job_changed();
CREATE TRIGGER jobs_left AFTER DELETE ON jobs
    FOR EACH ROW EXECUTE FUNCTION phasekit_job_left();

-- Number the committed pending events, oldest first, after the newest
-- number given; the newest number. One numberer at a time (the advisory
-- lock, held to commit): each reads the counter and the pending events after
-- the previous one committed, so numbers only grow, none is skipped, and an
-- event committed after a reader's numbering gets a number above every
-- number that reader saw.
CREATE FUNCTION phasekit_number_events() RETURNS BIGINT LANGUAGE plpgsql AS $$
DECLARE
    base BIGINT;
    moved BIGINT;
BEGIN
    PERFORM pg_advisory_xact_lock({LOCK_NAMESPACE}, {NUMBER_EVENTS_LOCK});
    SELECT last INTO base FROM event_counter;
    WITH gone AS (DELETE FROM events_pending RETURNING *)
    INSERT INTO events (id, at, kind, job_id, name, status, progress, parent_id, owner,
                        tenant, scope, task_id)
    SELECT base + row_number() OVER (ORDER BY n), at, kind, job_id, name, status, progress,
           parent_id, owner, tenant, scope, task_id FROM gone;
    GET DIAGNOSTICS moved = ROW_COUNT;
    IF moved > 0 THEN
        UPDATE event_counter SET last = base + moved;
    END IF;
    RETURN base + moved;
END $$;
"""

#: Migrations by the version they produce. Never edit a shipped entry: add one.
MIGRATIONS: dict[int, str] = {1: _V1}
SCHEMA_VERSION = max(MIGRATIONS)
