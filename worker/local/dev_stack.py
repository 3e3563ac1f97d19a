"""``jangar dev``: the embedded local stack in the foreground.

Starts the Temporal dev server (SQLite under the data directory) and the local Convex backend
(its journal and stored files under ``<data dir>/convex``; it verifies user tokens signed with
the development key under ``<data dir>/auth``, see worker/local/dev_auth.py), so a restart keeps
every workflow, session, order, run and file, and ids are never handed out twice; then the
worker with its dispatcher in this process, allowed to clone local repositories. Ctrl-C or
SIGTERM stops the worker gracefully, then the two servers by PID.
A signal that arrives while the servers are still starting stops them too.

Ports: ``--temporal-port`` and ``--convex-port`` 0 pick free ports, ``--health-port`` 0 too
(the bound port is printed once the worker runs), ``--metrics-port`` 0 turns metrics off.
Everything the stack prints on stdout is ``KEY=value`` lines a shell can export (the Temporal and
Convex addresses, the admin key, the ``JANGAR_AUTH_*`` provider the backend trusts and the data
directory ``jangar token`` reads the key from), and ``#`` comments with the PIDs of the servers
it started.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from pydantic import SecretStr

from worker.local.dev_auth import AuthBackend, start_auth_backend
from worker.local.local_convex import DEV_ADMIN_KEY
from worker.local.processes import ManagedProcess, start_temporal_dev_server
from worker.runtime.workers import install_stop_signals, run_worker
from worker.settings import Settings


def _out(text: str) -> None:
    print(text, flush=True)


async def run_dev_stack(args: argparse.Namespace, settings: Settings) -> int:
    data_dir = (Path(args.data_dir) if args.data_dir else settings.data_dir).resolve()
    admin_key = settings.convex_key.get_secret_value() if settings.convex_key else DEV_ADMIN_KEY
    stop = asyncio.Event()
    install_stop_signals(stop)  # before anything starts: a SIGTERM now still cleans up
    temporal: ManagedProcess | None = None
    convex: AuthBackend | None = None
    try:
        temporal = await asyncio.to_thread(
            start_temporal_dev_server, data_dir / "temporal", port=args.temporal_port
        )
        if stop.is_set():
            return 0
        convex = await asyncio.to_thread(
            start_auth_backend, data_dir, port=args.convex_port, admin_key=admin_key
        )
        if stop.is_set():
            return 0
        update: dict[str, object] = {
            "temporal_address": temporal.address,
            "convex_url": convex.url,
            "convex_self_hosted_url": None,
            "convex_deployment": None,
            "convex_deploy_key": None,
            "convex_admin_key": SecretStr(admin_key),
            "data_dir": data_dir,
            "log_format": "console",
            # A laptop stack works on local repositories (the sample of `make run`, a checkout).
            "allow_local_repos": True,
        }
        if "health_host" not in settings.model_fields_set:
            update["health_host"] = "127.0.0.1"  # a laptop stack is not served to the network
        if args.health_port is not None:
            update["health_port"] = args.health_port
        if getattr(args, "metrics_port", None) is not None:
            update["metrics_port"] = args.metrics_port
        stack = settings.model_copy(update=update)
        auth = "".join(f"{name}={value}\n" for name, value in convex.issuer.env().items())
        _out(
            "jangar dev stack (export these to use `jangar submit`, `repos`, `runs`, `token`)\n"
            f"TEMPORAL_ADDRESS={temporal.address}\n"
            f"CONVEX_URL={convex.url}\n"
            f"CONVEX_ADMIN_KEY={admin_key}\n"
            f"TEMPORAL_TASK_QUEUE={stack.temporal_task_queue}\n"
            f"{auth}"
            f"JANGAR_DATA_DIR={data_dir}\n"
            f"# Temporal dev server pid {temporal.pid}, SQLite under {data_dir / 'temporal'}\n"
            f"# local Convex backend pid {convex.pid}, data under {data_dir / 'convex'}\n"
            f"# chat users sign in with a development token: jangar token --user ID\n"
            f"# workspaces, logs and diffs under {data_dir}"
        )

        def started(health_port: int) -> None:
            metrics = (
                f"http://{stack.health_host}:{stack.metrics_port}/metrics"
                if stack.metrics_port
                else "off"
            )
            _out(
                f"# worker running: health http://{stack.health_host}:{health_port}/readyz, "
                f"metrics {metrics}\n"
                "# ready; Ctrl-C stops everything"
            )

        await run_worker(stack, stop=stop, on_started=started)
    finally:
        if convex is not None:
            convex.stop()
        if temporal is not None:
            temporal.stop()
        if temporal is not None or convex is not None:
            print("jangar dev stack stopped", file=sys.stderr, flush=True)
    return 0
