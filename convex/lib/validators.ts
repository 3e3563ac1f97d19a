/**
 * Shared validators and the TypeScript types derived from them.
 *
 * The schema, every function's `args`/`returns` and the transition tables all use these, so a
 * status cannot be spelled two ways: the original project stored statuses as free strings and
 * drifted. The lists come from convex/lib/contract.json (through the generated contract.ts),
 * the same source the Python side's activities/contract.py is generated from.
 */
import { v, type Infer } from "convex/values";
import { literals } from "convex-helpers/validators";
import {
  ARTIFACT_TYPES,
  EVENT_TYPES,
  MESSAGE_ROLES,
  STEP_KINDS,
  STEP_STATUSES,
  WORK_STATUSES,
} from "./contract";

export { ARTIFACT_TYPES, EVENT_TYPES, MESSAGE_ROLES, STEP_KINDS, STEP_STATUSES, WORK_STATUSES };

/** Status of a work order (`workflow_requests`) and of a run: one lifecycle for both. */
export const workStatus = literals(...WORK_STATUSES);
export type WorkStatus = Infer<typeof workStatus>;

/**
 * Status of a step. The seed has pending|running|succeeded|failed; `canceled` (the run was
 * canceled while the step was pending or running) and `skipped` (a step the run decided not to
 * execute, e.g. a check turned off for the work order) are added.
 */
export const stepStatus = literals(...STEP_STATUSES);
export type StepStatus = Infer<typeof stepStatus>;

export const stepKind = literals(...STEP_KINDS);
export type StepKind = Infer<typeof stepKind>;

export const artifactType = literals(...ARTIFACT_TYPES);
export type ArtifactType = Infer<typeof artifactType>;

export const eventType = literals(...EVENT_TYPES);
export type EventType = Infer<typeof eventType>;

export const messageRole = literals(...MESSAGE_ROLES);
export type MessageRole = Infer<typeof messageRole>;

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
