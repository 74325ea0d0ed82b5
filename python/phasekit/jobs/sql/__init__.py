"""SQL both job stores share (phasekit/jobs/sqlite/ and phasekit/jobs/postgres/):
the listing queries, written once in each database's placeholder style."""
