/**
 * Jangar's Convex schema: the seed's seven tables with its column names, plus one small
 * counter table for the dashboard.
 *
 * Additions to the seed, each for a reason:
 * - `clientMessageId` on chat_messages, `temporalRunId` on runs and `idempotencyKey` on
 *   artifacts and events: the keys that make a retried write return the first row.
 * - `baseBranch`, `checks` and `temporalWorkflowId` on workflow_requests: what the worker needs
 *   to run the order and what links it to its Temporal workflow once dispatched; `failureReason`
 *   says why the dispatcher rejected an order it could not run (workOrders:reject).
 * - `updatedAt` on runs and steps; step status gains `canceled` and `skipped`; `attempts` on
 *   steps (how many attempts the step took, when more than one ran).
 * - `storageId` on artifacts: a file kept in Convex file storage (its `url` is the one Convex
 *   serves), so logs and diffs outlive the worker that made them.
 * - `logStorageId` and `checkpointStorageId` on steps, and `file_sweeps`: which stored files a
 *   record still needs (a step's log, the workspace checkpoint a running job may restore), so
 *   files:sweep can remove the rest (a finished run's checkpoints, uploads of attempts that
 *   died before recording them).
 * - `run_status_counts`: one row per run status, kept in the same transaction as every run
 *   status change, so the dashboard reads five rows instead of counting runs.
 * - Ownership: `chat_sessions.userId` (the seed's column) is the caller's identity
 *   (`tokenIdentifier`, `<issuer>|<subject>`), copied as `userId` onto each work order and run
 *   so that every read checks ownership on the document it reads.
 * - `repositories`: the operator's registry of what jobs may target, with the checks each runs
 *   (written only by internal functions).
 * - Follow-ups and retries: `parentWorkOrderId` (the order whose branch a follow-up continues),
 *   `retryOfWorkOrderId`, `freshStart` on work orders; usage and the agent's final message on
 *   runs; `usage_totals`, one row of totals for the dashboard; `attempts` on steps.
 *
 * Index names list their fields in order, a Convex id field named by its table's role without
 * the `Id` suffix (`by_run_and_created_at` is `["runId", "createdAt"]`). Every read goes
 * through one of them; Convex appends `_creationTime` to each index, which breaks ties.
 */
import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";
import {
  artifactType,
  eventType,
  messageRole,
  stepKind,
  stepStatus,
  workStatus,
} from "./lib/validators";

export default defineSchema({
  chat_sessions: defineTable({
    userId: v.string(),
    title: v.string(),
    createdAt: v.number(),
    updatedAt: v.number(),
  }).index("by_user_and_updated_at", ["userId", "updatedAt"]),

  chat_messages: defineTable({
    sessionId: v.id("chat_sessions"),
    role: messageRole,
    content: v.string(),
    metadata: v.optional(v.any()),
    clientMessageId: v.optional(v.string()),
    createdAt: v.number(),
  })
    .index("by_session_and_created_at", ["sessionId", "createdAt"])
    .index("by_session_and_client_message_id", ["sessionId", "clientMessageId"]),

  workflow_requests: defineTable({
    sessionId: v.id("chat_sessions"),
    userId: v.string(),
    triggerMessageId: v.id("chat_messages"),
    summary: v.string(),
    repo: v.string(),
    branchHint: v.optional(v.string()),
    baseBranch: v.optional(v.string()),
    checks: v.optional(v.array(v.string())),
    status: workStatus,
    temporalWorkflowId: v.optional(v.string()),
    failureReason: v.optional(v.string()),
    parentWorkOrderId: v.optional(v.id("workflow_requests")),
    retryOfWorkOrderId: v.optional(v.id("workflow_requests")),
    freshStart: v.optional(v.boolean()),
    createdAt: v.number(),
    updatedAt: v.number(),
  })
    .index("by_trigger_message", ["triggerMessageId"])
    .index("by_session_and_created_at", ["sessionId", "createdAt"])
    .index("by_session_and_repo_and_created_at", ["sessionId", "repo", "createdAt"])
    .index("by_status_and_temporal_workflow_id_and_created_at", [
      "status",
      "temporalWorkflowId",
      "createdAt",
    ]),

  runs: defineTable({
    workflowRequestId: v.id("workflow_requests"),
    userId: v.string(),
    temporalWorkflowId: v.string(),
    temporalRunId: v.string(),
    taskQueue: v.string(),
    status: workStatus,
    workerId: v.string(),
    repo: v.string(),
    branch: v.string(),
    prUrl: v.optional(v.string()),
    commitSha: v.optional(v.string()),
    startedAt: v.number(),
    endedAt: v.optional(v.number()),
    failureReason: v.optional(v.any()),
    prNumber: v.optional(v.number()),
    inputTokens: v.optional(v.number()),
    cachedInputTokens: v.optional(v.number()),
    outputTokens: v.optional(v.number()),
    agentMs: v.optional(v.number()),
    finalMessage: v.optional(v.string()),
    updatedAt: v.number(),
  })
    .index("by_temporal_workflow_id_and_temporal_run_id", ["temporalWorkflowId", "temporalRunId"])
    .index("by_workflow_request_and_started_at", ["workflowRequestId", "startedAt"])
    .index("by_status_and_started_at", ["status", "startedAt"])
    .index("by_started_at", ["startedAt"])
    .index("by_user_and_started_at", ["userId", "startedAt"])
    .index("by_user_and_status_and_started_at", ["userId", "status", "startedAt"]),

  run_status_counts: defineTable({
    status: workStatus,
    count: v.number(),
    updatedAt: v.number(),
  }).index("by_status", ["status"]),

  usage_totals: defineTable({
    inputTokens: v.number(),
    cachedInputTokens: v.number(),
    outputTokens: v.number(),
    agentMs: v.number(),
    updatedAt: v.number(),
  }),

  file_sweeps: defineTable({
    /** Where the pass under way stopped (a `_storage` page cursor); null between passes. */
    cursor: v.union(v.string(), v.null()),
    /** When the last complete pass ended. */
    passEndedAt: v.optional(v.number()),
    updatedAt: v.number(),
  }),

  repositories: defineTable({
    url: v.string(),
    checks: v.array(v.string()),
    baseBranch: v.optional(v.string()),
    agentNetwork: v.boolean(),
    checkNetwork: v.boolean(),
    maxTokens: v.optional(v.number()),
    maxAgentMinutes: v.optional(v.number()),
    maxConcurrentRuns: v.optional(v.number()),
    webhookUrl: v.optional(v.string()),
    createdAt: v.number(),
    updatedAt: v.number(),
  }).index("by_url", ["url"]),

  steps: defineTable({
    runId: v.id("runs"),
    name: v.string(),
    kind: stepKind,
    status: stepStatus,
    startedAt: v.optional(v.number()),
    endedAt: v.optional(v.number()),
    payload: v.optional(v.any()),
    logUrl: v.optional(v.string()),
    logStorageId: v.optional(v.id("_storage")),
    checkpointStorageId: v.optional(v.id("_storage")),
    attempts: v.optional(v.number()),
    updatedAt: v.number(),
  })
    .index("by_run_and_name", ["runId", "name"])
    .index("by_run_and_started_at", ["runId", "startedAt"])
    .index("by_log_storage", ["logStorageId"])
    .index("by_checkpoint_storage", ["checkpointStorageId"]),

  artifacts: defineTable({
    runId: v.id("runs"),
    type: artifactType,
    url: v.string(),
    storageId: v.optional(v.id("_storage")),
    label: v.string(),
    idempotencyKey: v.string(),
    createdAt: v.number(),
  })
    .index("by_run_and_idempotency_key", ["runId", "idempotencyKey"])
    .index("by_run_and_created_at", ["runId", "createdAt"])
    .index("by_storage", ["storageId"]),

  events: defineTable({
    runId: v.id("runs"),
    workflowRequestId: v.id("workflow_requests"),
    type: eventType,
    data: v.optional(v.any()),
    idempotencyKey: v.string(),
    createdAt: v.number(),
  })
    .index("by_run_and_idempotency_key", ["runId", "idempotencyKey"])
    .index("by_run_and_created_at", ["runId", "createdAt"]),
});
