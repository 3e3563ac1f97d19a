/**
 * Identity and ownership for the public functions.
 *
 * The user is whoever signed the caller's token: `ctx.auth.getUserIdentity().tokenIdentifier`
 * (`<issuer>|<subject>`, unique across providers), never an argument. `userQuery` and
 * `userMutation` resolve it before the handler runs (an anonymous call fails with
 * UNAUTHENTICATED) and put it on `ctx.userId`.
 *
 * Ownership is checked on the document read: a session by its `userId`, a work order and a run
 * by the `userId` copied onto them when they were created. The `getOwn*OrThrow` helpers take the
 * id as the caller sent it (a string) and answer a malformed id, a missing document and another
 * user's document with the same NOT_FOUND, so ids of other users' documents reveal nothing.
 */
import { customCtx, customMutation, customQuery } from "convex-helpers/server/customFunctions";
import type { Doc, TableNames } from "../_generated/dataModel";
import { mutation, query, type QueryCtx } from "../_generated/server";
import { fail } from "./errors";

/** The caller's user id, or UNAUTHENTICATED for an anonymous call. */
export async function requireUserId(ctx: Pick<QueryCtx, "auth">): Promise<string> {
  const identity = await ctx.auth.getUserIdentity();
  if (identity === null) {
    fail(
      "UNAUTHENTICATED",
      "this function needs a signed-in user: send `Authorization: Bearer <token>` from the " +
        "deployment's identity provider (see convex/auth.config.ts)",
    );
  }
  return identity.tokenIdentifier;
}

const withUser = customCtx(async (ctx: Pick<QueryCtx, "auth">) => ({
  userId: await requireUserId(ctx),
}));

/** A public query that runs only for a signed-in user, with `ctx.userId`. */
export const userQuery = customQuery(query, withUser);

/** A public mutation that runs only for a signed-in user, with `ctx.userId`. */
export const userMutation = customMutation(mutation, withUser);

const WHAT: Record<"chat_sessions" | "workflow_requests" | "runs", string> = {
  chat_sessions: "chat session",
  workflow_requests: "work order",
  runs: "run",
};

type Owned = "chat_sessions" | "workflow_requests" | "runs";

/** The NOT_FOUND every lookup of a session, work order or run answers, whatever the reason. */
export function notFound(table: Owned, id: string): never {
  fail("NOT_FOUND", `${WHAT[table]} ${JSON.stringify(id.slice(0, 80))} does not exist`);
}

/** A document of `table` named by a caller's string, or null if it is not an id of it. */
export async function getByString<Table extends TableNames>(
  ctx: QueryCtx,
  table: Table,
  id: string,
): Promise<Doc<Table> | null> {
  const normalized = ctx.db.normalizeId(table, id);
  return normalized === null ? null : await ctx.db.get(table, normalized);
}

async function getOwnOrThrow<Table extends Owned>(
  ctx: QueryCtx,
  userId: string,
  table: Table,
  id: string,
): Promise<Doc<Table>> {
  const doc = await getByString(ctx, table, id);
  if (doc === null || doc.userId !== userId) notFound(table, id);
  return doc;
}

export async function getOwnSessionOrThrow(
  ctx: QueryCtx & { userId: string },
  sessionId: string,
): Promise<Doc<"chat_sessions">> {
  return await getOwnOrThrow(ctx, ctx.userId, "chat_sessions", sessionId);
}

export async function getOwnWorkOrderOrThrow(
  ctx: QueryCtx & { userId: string },
  workflowRequestId: string,
): Promise<Doc<"workflow_requests">> {
  return await getOwnOrThrow(ctx, ctx.userId, "workflow_requests", workflowRequestId);
}

export async function getOwnRunOrThrow(
  ctx: QueryCtx & { userId: string },
  runId: string,
): Promise<Doc<"runs">> {
  return await getOwnOrThrow(ctx, ctx.userId, "runs", runId);
}

/** For operators (internal functions): the document, or NOT_FOUND, ownership not checked. */
export async function getAnyOrThrow<Table extends Owned>(
  ctx: QueryCtx,
  table: Table,
  id: string,
): Promise<Doc<Table>> {
  const doc = await getByString(ctx, table, id);
  if (doc === null) notFound(table, id);
  return doc;
}
