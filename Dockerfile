# syntax=docker/dockerfile:1
#
# The Jangar worker image: `jangar worker` (Temporal worker + dispatcher + health/metrics
# endpoints) with git (jobs clone repositories), the Codex CLI (the agent each job runs),
# bubblewrap (the sandbox every agent and check runs in, activities/sandbox.py) and tini (an
# init that reaps, so the worker is not PID 1).
#
# The sandbox needs unprivileged user namespaces, and the container must let the worker make
# them: the runtime's default seccomp profile and AppArmor profile forbid it, and a masked /proc
# stops bwrap from mounting a fresh one. The worker probes the sandbox at start and refuses to
# run jobs when it does not work (the message says why). What to grant, and why nothing more,
# is in deploy/README.md ("The sandbox in a container"); JANGAR_SANDBOX=off runs jobs without it.
#
# Model credentials are NOT baked in. Pass them at run time as secrets, in the environment:
#   OPENAI_API_KEY / CODEX_API_KEY (codex exec reads an API key from the environment), or a
#   config.toml/auth.json placed in CODEX_HOME (/home/jangar/.codex, mount a Secret there).
# See deploy/README.md for compose and Kubernetes.
#
# Every base image is pinned to an exact version; bump them here, in one place.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG NODE_IMAGE=node:22.21.1-bookworm-slim

# --- Codex CLI (npm) -------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS codex
# Pinned: `npm view @openai/codex version` -> 0.171.0. Bump deliberately (the worker parses
# its --json event stream).
ARG CODEX_VERSION=0.171.0
RUN npm install --global --no-audit --no-fund --loglevel=error "@openai/codex@${CODEX_VERSION}" \
    && codex --version

# --- Python package ----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what `pip install .` needs: the build reads pyproject.toml and README.md (the long
# description) and packages worker/, workflows/, activities/.
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY workflows ./workflows
COPY activities ./activities
RUN python -m venv /opt/jangar \
    && /opt/jangar/bin/pip install . \
    && /opt/jangar/bin/jangar --help >/dev/null

# --- Runtime -----------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# bubblewrap: the sandbox (not setuid in Debian: it relies on user namespaces). tini: PID 1.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       git ca-certificates openssh-client bubblewrap tini \
    && rm -rf /var/lib/apt/lists/* \
    && bwrap --version && tini --version

# Node runtime + the globally installed Codex CLI from the codex stage (no npm needed at run time).
COPY --from=codex /usr/local/bin/node /usr/local/bin/node
COPY --from=codex /usr/local/lib/node_modules/@openai /usr/local/lib/node_modules/@openai
RUN ln -s /usr/local/lib/node_modules/@openai/codex/bin/codex.js /usr/local/bin/codex \
    && codex --version

COPY --from=build /opt/jangar /opt/jangar

# A fixed numeric UID so Kubernetes can verify runAsNonRoot without a runAsUser override.
RUN groupadd --system --gid 10001 jangar \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/jangar --create-home \
       --shell /usr/sbin/nologin jangar \
    && mkdir -p /var/lib/jangar /home/jangar/.codex \
    && chown -R 10001:10001 /var/lib/jangar /home/jangar

ENV PATH=/opt/jangar/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/jangar \
    CODEX_HOME=/home/jangar/.codex \
    JANGAR_DATA_DIR=/var/lib/jangar \
    HEALTH_PORT=8080 \
    METRICS_PORT=9464

USER 10001:10001
WORKDIR /home/jangar

# 8080: GET /livez, GET /readyz.  9464: Prometheus /metrics from the Temporal runtime.
EXPOSE 8080 9464

# Liveness only: readiness (Temporal + Convex reachable) is the orchestrator's business, and a
# container marked unhealthy because Convex blipped would be restarted for nothing.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HEALTH_PORT', '8080') + '/livez', timeout=4)"]

# `docker run IMAGE` runs `jangar worker`; `docker run IMAGE dispatcher` (or replay, runs list)
# runs another subcommand of the same console script. tini is PID 1: it forwards SIGTERM to the
# worker (which drains gracefully) and reaps whatever a job's processes leave re-parented to it
# (with the sandbox off, a double-forked leftover; with it on, nothing outlives its step, but a
# reaper costs nothing). Without an init the worker would be PID 1 and collect zombies.
ENTRYPOINT ["tini", "--", "jangar"]
CMD ["worker"]
