"""Timeouts and retry policies for every activity the job calls, written out in one place.

Persistence writes are retried for as long as a job may reasonably wait for Convex: backoff
capped at 30 s, for up to ``CONVEX_PATIENCE`` (6 hours) in total; an outage shorter than that
delays the record, it never loses it. Errors no retry can fix (validation, unknown ids, refused
transitions, oversize payloads, malformed requests) are non-retryable and surface at once.

Workspace steps heartbeat; a worker that stops (SIGKILL, a lost node) is noticed within the
job's heartbeat timeout (``JobLimits.heartbeat_timeout_seconds``, a worker setting) and the
step is retried on any worker, from its checkpoint.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from temporalio.common import RetryPolicy

from activities.contract import ERROR_CODES
from activities.job_loader import INVALID_WORK_ORDER
from activities.models import JobLimits
from activities.persistence import CONVEX_REQUEST_ERROR

# Every ConvexError code (convex/lib/contract.json) and a request Convex cannot take: a retry
# cannot fix them, so they fail at once instead of being retried for CONVEX_PATIENCE.
NON_RETRYABLE_PERSISTENCE_ERRORS = [*ERROR_CODES, CONVEX_REQUEST_ERROR]

CONVEX_PATIENCE = timedelta(hours=6)
PERSISTENCE_START_TO_CLOSE = timedelta(seconds=30)
PERSISTENCE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,  # unlimited within CONVEX_PATIENCE
    non_retryable_error_types=NON_RETRYABLE_PERSISTENCE_ERRORS,
)

# load_job reads Convex: as patient as the records, but an order it cannot run fails at once.
LOAD_JOB_START_TO_CLOSE = timedelta(seconds=60)
LOAD_JOB_RETRY = dataclasses.replace(
    PERSISTENCE_RETRY,
    non_retryable_error_types=[*NON_RETRYABLE_PERSISTENCE_ERRORS, INVALID_WORK_ORDER],
)

# Job steps: a few attempts for transient trouble (network, git remote hiccups, a lost worker
# or one handing over); the activities raise non-retryable errors for what a retry cannot fix
# (bad repo, auth), and the agent's non-zero exit, time limit and budget are results, never
# retried.
JOB_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=4,
)
# Cancellation reaches an activity with a heartbeat's answer; the SDK sends heartbeats at most
# this often, so it bounds how long a cancelled agent keeps running (the SDK default is 48 s).
HEARTBEAT_THROTTLE = timedelta(seconds=2)

# Start-to-close of the steps whose work has a time limit of its own: that limit plus a margin
# for stopping the processes and uploading the log and the checkpoint, so the activity reports
# its own time-out as a result before Temporal times the attempt out.
AGENT_STOP_MARGIN = timedelta(minutes=10)
CHECK_STOP_MARGIN = timedelta(minutes=5)
GIT_STEP_MARGIN = timedelta(minutes=5)
PULL_REQUEST_START_TO_CLOSE = timedelta(minutes=2)

# The webhook: a few retries over at most two minutes, so a receiver that is down delays the
# run's final status by that much at most.
WEBHOOK_START_TO_CLOSE = timedelta(seconds=30)
WEBHOOK_SCHEDULE_TO_CLOSE = timedelta(minutes=2)
WEBHOOK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=5,
    non_retryable_error_types=["WebhookRefused"],
)


def heartbeat_timeout(limits: JobLimits) -> timedelta:
    """How long a workspace step may go without a heartbeat before it is retried elsewhere."""
    return timedelta(seconds=limits.heartbeat_timeout_seconds)


def agent_start_to_close(limits: JobLimits) -> timedelta:
    """The agent step's start-to-close: its time limit plus the stop margin."""
    return timedelta(seconds=limits.agent_timeout_seconds) + AGENT_STOP_MARGIN


def check_start_to_close(limits: JobLimits) -> timedelta:
    """One check step's start-to-close: its time limit plus the stop margin."""
    return timedelta(seconds=limits.check_timeout_seconds) + CHECK_STOP_MARGIN


def git_start_to_close(limits: JobLimits) -> timedelta:
    """A git step's start-to-close (prepare, push): the git time limit plus a margin (a step
    runs several git commands, and may rebuild the workspace first)."""
    return timedelta(seconds=limits.git_timeout_seconds) + GIT_STEP_MARGIN
