"""The Jangar worker's top layer, by role.

- ``worker.runtime``: the worker process (Temporal workers, dispatcher, health, metrics).
- ``worker.cli``: the ``jangar`` command line (submit, runs, replay, ...).
- ``worker.local``: the local stack for development and tests (``jangar dev``).

Shared by the three: ``worker.settings`` (every environment variable), ``worker.logging`` (the
one structlog setup) and ``worker.factories`` (activities, clients and configs built from the
settings). Nothing under ``activities/`` or ``workflows/`` imports from here.
"""
