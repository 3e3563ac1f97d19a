/**
 * Work orders: what every way of creating one shares (the chat's createFromMessage, the
 * operator's submitAsOperator, retry), and what the worker needs to run one.
 *
 * Every rule the job's input enforces is checked here, before anything is written, so no order
 * can be created that the worker would refuse (see jobRules.ts). The registry (`repositories`)
 * says which repositories chat orders may name and the checks each runs.
 */
import type { Doc, Id } from "../_generated/dataModel";
import type { MutationCtx, QueryCtx } from "../_generated/server";
import { MAX_ID_LENGTH } from "./contract";
import { fail } from "./errors";
import { requireText } from "./guards";
import {
  checkRepo,
  classifyRepo,
  optionalBranchName,
  repoLookupKeys,
  requireChecks,
  requireDistinctBranches,
  requirePrompt,
  requireSummary,
} from "./jobRules";

/** The registry entry for `repo` (any accepted spelling of it), or null. */
export async function findRepository(
  ctx: QueryCtx,
  repo: string,
): Promise<Doc<"repositories"> | null> {
  for (const url of repoLookupKeys(repo)) {
    const entry = await ctx.db
      .query("repositories")
      .withIndex("by_url", (q) => q.eq("url", url))
      .unique();
    if (entry !== null) return entry;
  }
  return null;
}

/** What an order's fields must satisfy; all checked before anything is written. */
export type OrderFields = {
  summary: string;
  repo: string;
  prompt: string;
  branchHint?: string;
  baseBranch?: string;
  checks?: string[];
};

/**
 * Check `fields` against every rule the job's input enforces (INVALID_ARGUMENT naming the
 * first problem). `repository` (the registry entry, if any) supplies the base branch the job
 * would use when the order names none.
 */
export function checkOrderFields(
  fields: OrderFields,
  repository: Doc<"repositories"> | null,
): OrderFields {
  requireSummary(fields.summary);
  classifyRepo(fields.repo);
  requirePrompt("the prompt (the trigger message's content)", fields.prompt);
  optionalBranchName("branchHint", fields.branchHint);
  optionalBranchName("baseBranch", fields.baseBranch);
  requireDistinctBranches(fields.branchHint, fields.baseBranch ?? repository?.baseBranch);
  requireChecks(fields.checks);
  return fields;
}

/** FORBIDDEN unless `repo` is registered; the message says how an operator registers it. */
export async function requireRegistered(ctx: QueryCtx, repo: string): Promise<Doc<"repositories">> {
  const entry = await findRepository(ctx, repo);
  if (entry === null) {
    const checked = checkRepo(repo);
    if ("problem" in checked) {
      // Not a location a job accepts (so never registered): not echoed, it may hold a secret.
      fail(
        "FORBIDDEN",
        `repository is not registered, and ${checked.problem}: jobs may only target ` +
          "repositories an operator added with `jangar repos add <url>`.",
      );
    }
    fail(
      "FORBIDDEN",
      `repository ${JSON.stringify(repo)} is not registered: jobs may only target ` +
        `repositories an operator added with \`jangar repos add ${repo}\`.`,
    );
  }
  return entry;
}

/** The newest order of `sessionId` for `repo`: the one a follow-up continues. */
export async function latestOrderFor(
  ctx: QueryCtx,
  sessionId: Id<"chat_sessions">,
  repo: string,
): Promise<Doc<"workflow_requests"> | null> {
  return await ctx.db
    .query("workflow_requests")
    .withIndex("by_session_and_repo_and_created_at", (q) =>
      q.eq("sessionId", sessionId).eq("repo", repo),
    )
    .order("desc")
    .first();
}

export type NewOrder = {
  sessionId: Id<"chat_sessions">;
  triggerMessageId: Id<"chat_messages">;
  userId: string;
  summary: string;
  repo: string;
  branchHint?: string;
  baseBranch?: string;
  checks?: string[];
  freshStart?: boolean;
  retryOfWorkOrderId?: Id<"workflow_requests">;
  /** Given: used as is (a retry keeps its original's parent). Absent: the newest earlier
   * order of the session for the same repository, unless `freshStart`. */
  parentWorkOrderId?: Id<"workflow_requests"> | null;
};

/** Insert a queued order (its fields already checked). */
export async function insertWorkOrder(
  ctx: MutationCtx,
  order: NewOrder,
  now: number,
): Promise<Id<"workflow_requests">> {
  let parent = order.parentWorkOrderId ?? undefined;
  if (order.parentWorkOrderId === undefined && order.freshStart !== true) {
    parent = (await latestOrderFor(ctx, order.sessionId, order.repo))?._id;
  }
  return await ctx.db.insert("workflow_requests", {
    sessionId: order.sessionId,
    userId: order.userId,
    triggerMessageId: order.triggerMessageId,
    summary: order.summary,
    repo: order.repo,
    ...(order.branchHint !== undefined ? { branchHint: order.branchHint } : {}),
    ...(order.baseBranch !== undefined ? { baseBranch: order.baseBranch } : {}),
    ...(order.checks !== undefined ? { checks: order.checks } : {}),
    ...(order.freshStart !== undefined ? { freshStart: order.freshStart } : {}),
    ...(order.retryOfWorkOrderId !== undefined
      ? { retryOfWorkOrderId: order.retryOfWorkOrderId }
      : {}),
    ...(parent !== undefined ? { parentWorkOrderId: parent } : {}),
    status: "queued",
    createdAt: now,
    updatedAt: now,
  });
}

/** A user id given by an operator (submitAsOperator): non-blank, bounded. */
export function requireUserIdArg(userId: string): string {
  return requireText("userId", userId, MAX_ID_LENGTH);
}

/** The prompt of an order: its trigger message's content (the summary if it was removed). */
export async function promptOf(ctx: QueryCtx, order: Doc<"workflow_requests">): Promise<string> {
  const message = await ctx.db.get("chat_messages", order.triggerMessageId);
  // Messages are never deleted by this project; the summary keeps the order runnable if one
  // was removed by hand.
  return message?.content ?? order.summary;
}

/**
 * The order as the job runs it, with its prompt: `checks` and `baseBranch` are the order's own
 * when it has them (an operator's order), else the registry entry's.
 */
export async function orderForJob(
  ctx: QueryCtx,
  order: Doc<"workflow_requests">,
  repository?: Doc<"repositories"> | null,
): Promise<Doc<"workflow_requests"> & { prompt: string }> {
  const entry = repository === undefined ? await findRepository(ctx, order.repo) : repository;
  const checks = order.checks ?? entry?.checks;
  const baseBranch = order.baseBranch ?? entry?.baseBranch;
  return {
    ...order,
    ...(checks !== undefined ? { checks } : {}),
    ...(baseBranch !== undefined ? { baseBranch } : {}),
    prompt: await promptOf(ctx, order),
  };
}
