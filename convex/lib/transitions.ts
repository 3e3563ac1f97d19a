/**
 * The one transition table for work orders and runs, and the ordering of step statuses.
 *
 * Temporal retries activities, so every status write may arrive twice or late. These rules make
 * that harmless: repeating the current status is a no-op, terminal statuses are final, and a
 * step never moves backwards. Functions and tests both read the tables below, so the rules
 * live in exactly one place.
 */
import type { StepStatus, WorkStatus } from "./validators";

/** Allowed moves for a work order or a run. A status not listed as a target is refused. */
export const WORK_TRANSITIONS: Readonly<Record<WorkStatus, readonly WorkStatus[]>> = {
  queued: ["running", "failed", "canceled"],
  running: ["succeeded", "failed", "canceled"],
  succeeded: [],
  failed: [],
  canceled: [],
};

export const TERMINAL_WORK_STATUSES: readonly WorkStatus[] = ["succeeded", "failed", "canceled"];

export function isTerminalWorkStatus(status: WorkStatus): boolean {
  return TERMINAL_WORK_STATUSES.includes(status);
}

/** How a requested status relates to the current one. */
export type WorkTransition = "same" | "allowed" | "refused";

/** Classify `from -> to` by the table: same status is a no-op, not an error. */
export function classifyWorkTransition(from: WorkStatus, to: WorkStatus): WorkTransition {
  if (from === to) return "same";
  return WORK_TRANSITIONS[from].includes(to) ? "allowed" : "refused";
}

/** A sentence saying why `from -> to` is refused, for the INVALID_TRANSITION message. */
export function describeRefusal(entity: string, from: WorkStatus, to: WorkStatus): string {
  const allowed = WORK_TRANSITIONS[from];
  const why = isTerminalWorkStatus(from)
    ? `${from} is terminal and final`
    : `from ${from} only ${allowed.join(", ")} are allowed`;
  return `${entity} cannot move from ${from} to ${to}: ${why}`;
}

/**
 * Rank of each step status: pending < running < terminal. All terminal statuses share the top
 * rank, so one terminal status never replaces another.
 */
export const STEP_STATUS_RANK: Readonly<Record<StepStatus, number>> = {
  pending: 0,
  running: 1,
  succeeded: 2,
  failed: 2,
  canceled: 2,
  skipped: 2,
};

export const TERMINAL_STEP_STATUSES: readonly StepStatus[] = [
  "succeeded",
  "failed",
  "canceled",
  "skipped",
];

export function isTerminalStepStatus(status: StepStatus): boolean {
  return STEP_STATUS_RANK[status] === 2;
}

/**
 * How a step update relates to the stored status:
 * - "advance": the new status ranks higher (pending -> running -> terminal); apply it.
 * - "same": the same non-terminal status again; only its other fields may be filled in.
 * - "stale": a lower rank (a late `running` after `succeeded`), a second terminal status, or
 *   anything after a terminal status; ignored, nothing is written.
 */
export type StepTransition = "advance" | "same" | "stale";

export function classifyStepTransition(from: StepStatus, to: StepStatus): StepTransition {
  if (isTerminalStepStatus(from)) return "stale";
  if (from === to) return "same";
  return STEP_STATUS_RANK[to] > STEP_STATUS_RANK[from] ? "advance" : "stale";
}
