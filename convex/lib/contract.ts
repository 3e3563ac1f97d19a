/** Generated from convex/lib/contract.json (tools/contract.py, `make codegen`); do not edit. */

export const WORK_STATUSES = [
  "queued",
  "running",
  "succeeded",
  "failed",
  "canceled",
] as const;
export type WorkStatus = (typeof WORK_STATUSES)[number];

export const STEP_STATUSES = [
  "pending",
  "running",
  "succeeded",
  "failed",
  "canceled",
  "skipped",
] as const;
export type StepStatus = (typeof STEP_STATUSES)[number];

export const STEP_KINDS = [
  "activity",
  "hook",
  "check",
] as const;
export type StepKind = (typeof STEP_KINDS)[number];

export const ARTIFACT_TYPES = [
  "pr",
  "diff",
  "file",
  "log",
  "screenshot",
] as const;
export type ArtifactType = (typeof ARTIFACT_TYPES)[number];

export const EVENT_TYPES = [
  "state_change",
  "comment",
  "system",
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export const MESSAGE_ROLES = [
  "user",
  "assistant",
  "system",
] as const;
export type MessageRole = (typeof MESSAGE_ROLES)[number];

export const ERROR_CODES = [
  "NOT_FOUND",
  "INVALID_TRANSITION",
  "TOO_LARGE",
  "INVALID_ARGUMENT",
  "CONFLICT",
  "UNAUTHENTICATED",
  "FORBIDDEN",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Longest id or short name: user, session, work order, worker, task queue, step name. */
export const MAX_ID_LENGTH = 256;
/** Longest git branch name a job accepts (base branch or branch hint). */
export const MAX_BRANCH_LENGTH = 200;
/** Longest title, summary, label, check command or failure text, in characters. */
export const MAX_TEXT_LENGTH = 4096;
/** Longest URL or repository location, in characters. */
export const MAX_URL_LENGTH = 4096;
/** Longest prompt a job runs, in characters (the trigger message's content). */
export const MAX_PROMPT_CHARS = 100000;
/** Longest job title (the pull request title); a longer summary is cut to it. */
export const MAX_JOB_TITLE_LENGTH = 300;
/** Most check commands one job runs. */
export const MAX_CHECKS = 50;
/** Most events one events:appendBatch call writes. */
export const MAX_EVENT_BATCH = 100;
/** Longest idempotency key, in characters. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 512;
/** Largest serialized payload, data, metadata or failureReason, in bytes. */
export const MAX_VALUE_BYTES = 65536;
/** Largest chat message content, in UTF-8 bytes. */
export const MAX_CONTENT_BYTES = 262144;
