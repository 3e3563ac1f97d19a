"""``python -m worker.cli``: the same as the ``jangar`` console script."""

from worker.cli.main import main

main()
