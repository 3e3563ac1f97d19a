/**
 * Shared validators and the TypeScript types derived from them.
 *
 * The schema, every function's `args`/`returns` and the transition tables all use these, so a
 * status cannot be spelled two ways: the original project stored statuses as free strings and
 * drifted. Each union also has a `const` list for table-driven code and tests.
 */
import { v, type Infer } from "convex/values";

/** Status of a work order (`workflow_requests`) and of a run: one lifecycle for both. */
export const workStatus = v.union(
  v.literal("queued"),
  v.literal("running"),
  v.literal("succeeded"),
  v.literal("failed"),
  v.literal("canceled"),
);
export type WorkStatus = Infer<typeof workStatus>;
export const WORK_STATUSES = [
  "queued",
  "running",
  "succeeded",
  "failed",
  "canceled",
] as const satisfies readonly WorkStatus[];

/**
 * Status of a step. The seed has pending|running|succeeded|failed; `canceled` (the run was
 * canceled while the step was pending or running) and `skipped` (a step the run decided not to
 * execute, e.g. a check turned off for the work order) are added.
 */
export const stepStatus = v.union(
  v.literal("pending"),
  v.literal("running"),
  v.literal("succeeded"),
  v.literal("failed"),
  v.literal("canceled"),
  v.literal("skipped"),
);
export type StepStatus = Infer<typeof stepStatus>;
export const STEP_STATUSES = [
  "pending",
  "running",
  "succeeded",
  "failed",
  "canceled",
  "skipped",
] as const satisfies readonly StepStatus[];

export const stepKind = v.union(v.literal("activity"), v.literal("hook"), v.literal("check"));
export type StepKind = Infer<typeof stepKind>;
export const STEP_KINDS = ["activity", "hook", "check"] as const satisfies readonly StepKind[];

export const artifactType = v.union(
  v.literal("pr"),
  v.literal("diff"),
  v.literal("file"),
  v.literal("log"),
  v.literal("screenshot"),
);
export type ArtifactType = Infer<typeof artifactType>;
export const ARTIFACT_TYPES = [
  "pr",
  "diff",
  "file",
  "log",
  "screenshot",
] as const satisfies readonly ArtifactType[];

export const eventType = v.union(
  v.literal("state_change"),
  v.literal("comment"),
  v.literal("system"),
);
export type EventType = Infer<typeof eventType>;
export const EVENT_TYPES = [
  "state_change",
  "comment",
  "system",
] as const satisfies readonly EventType[];

export const messageRole = v.union(v.literal("user"), v.literal("assistant"), v.literal("system"));
export type MessageRole = Infer<typeof messageRole>;
export const MESSAGE_ROLES = [
  "user",
  "assistant",
  "system",
] as const satisfies readonly MessageRole[];

/** Counts by run status, as returned by runs:getDashboard (every status present, 0 if none). */
export const statusCounts = v.object({
  queued: v.number(),
  running: v.number(),
  succeeded: v.number(),
  failed: v.number(),
  canceled: v.number(),
});
export type StatusCounts = Infer<typeof statusCounts>;

/** `{changed}` answers of the idempotent writers: false means the call wrote nothing. */
export const changedResult = v.object({ changed: v.boolean() });

/** Cursor argument of paginated reads: absent or null starts at the beginning. */
export const optionalCursor = v.optional(v.union(v.string(), v.null()));
