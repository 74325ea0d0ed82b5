"""Exit statuses of the command line (``phasekit validate`` adds its own
meanings to 1 and 2; see phasekit/cli/validate.py)."""

from __future__ import annotations

#: Done; a job failed, was cancelled, or a scan missed a root.
EXIT_OK, EXIT_FAILED = 0, 1
#: Bad input or a library that cannot be used (argparse uses 2 too).
EXIT_USAGE = 2
#: A job stopped because the disk under the library is full (EX_TEMPFAIL:
#: try again once space is freed).
EXIT_STOPPED = 75
#: After an interruption (as for SIGINT).
EXIT_INTERRUPTED = 130
