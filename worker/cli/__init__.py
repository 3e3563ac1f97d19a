"""The ``jangar`` command line (console script ``jangar = worker.cli:main``)."""

from worker.cli.main import main

__all__ = ["main"]
