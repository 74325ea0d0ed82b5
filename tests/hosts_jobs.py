"""Jobs of tests/test_postgres_hosts.py, imported by its workers (``--import
hosts_jobs``) besides tests/jobs_fixture.py."""

from __future__ import annotations

import os
from typing import Any

from jobs_fixture import CountJob
from phasekit.jobs import JobContext, job


@job("test.hosts.count")
class LeasedCountJob(CountJob):
    """A :class:`~jobs_fixture.CountJob` whose output says which run
    recorded it: the run's lease epoch and its process."""

    def run(self, ctx: JobContext) -> Any:
        output = super().run(ctx)
        return {**output, "lease": ctx.lease, "pid": os.getpid()}
