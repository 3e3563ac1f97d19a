"""Timeouts and retry policies for every activity the job calls, written out in one place.

Persistence writes are retried for as long as a job may reasonably wait for Convex: backoff
capped at 30 s, for up to ``CONVEX_PATIENCE`` (6 hours) in total; an outage shorter than that
delays the record, it never loses it. Errors no retry can fix (validation, unknown ids, refused
transitions, oversize payloads, malformed requests) are non-retryable and surface at once.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

from activities.contract import ERROR_CODES
from activities.persistence import CONVEX_REQUEST_ERROR
from workflows.models import JobLimits

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

# Job steps: a few attempts for transient trouble (network, git remote hiccups); the activities
# raise non-retryable errors for what a retry cannot fix (bad repo, bad branch, auth).
JOB_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=3,
)
# The agent is expensive: one retry, for a worker that crashed mid-run. Its non-zero exit and
# its time limit are results, not errors, so they are never retried.
AGENT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=2,
)
HEARTBEAT_TIMEOUT = timedelta(seconds=60)
# Cancellation reaches an activity with a heartbeat's answer; the SDK sends heartbeats at most
# this often, so it bounds how long a cancelled agent keeps running (the SDK default is 48 s).
HEARTBEAT_THROTTLE = timedelta(seconds=2)
# A workspace activity waits this long for the worker that holds the workspace; after that the
# worker is taken as lost and the step fails with type "WorkerLost".
WORKSPACE_SCHEDULE_TO_START = timedelta(minutes=10)

# Start-to-close of the steps whose work has a time limit of its own: that limit plus a margin
# for stopping the process group and writing the log, so the activity reports its own time-out
# as a result before Temporal times the attempt out.
AGENT_STOP_MARGIN = timedelta(seconds=120)
CHECK_STOP_MARGIN = timedelta(seconds=60)
PULL_REQUEST_START_TO_CLOSE = timedelta(minutes=2)
CAPTURE_DIFF_START_TO_CLOSE = timedelta(minutes=5)


def agent_start_to_close(limits: JobLimits) -> timedelta:
    """The agent step's start-to-close: its time limit plus the stop margin."""
    return timedelta(seconds=limits.agent_timeout_seconds) + AGENT_STOP_MARGIN


def check_start_to_close(limits: JobLimits) -> timedelta:
    """One check step's start-to-close: its time limit plus the stop margin."""
    return timedelta(seconds=limits.check_timeout_seconds) + CHECK_STOP_MARGIN


def git_start_to_close(limits: JobLimits) -> timedelta:
    """A git step's start-to-close (prepare, commit and push): the git time limit."""
    return timedelta(seconds=limits.git_timeout_seconds)
