/**
 * The operator's repository registry: which repositories jobs may target, and how each runs.
 *
 * Internal only (the admin or deploy key: `jangar repos add|list|remove`). A chat order must
 * name a registered repository (workOrders:createFromMessage answers FORBIDDEN otherwise) and
 * carries no commands: its checks, and its base branch when it names none, come from the entry
 * when the job is dispatched. Entries are keyed by the normalized URL (scheme and host in lower
 * case, trailing slashes removed; see convex/lib/jobRules.ts), and found under either spelling
 * of a `.git` suffix.
 */
import { v } from "convex/values";
import { internalMutation, internalQuery } from "./_generated/server";
import { fail } from "./lib/errors";
import { optionalWholeNumber, requireUrl } from "./lib/guards";
import { classifyRepo, normalizeRepoUrl, optionalBranchName, requireChecks } from "./lib/jobRules";
import { findRepository } from "./lib/orders";
import schema from "./schema";

/** Most entries repositories:list returns. */
export const REPOSITORY_LIST_LIMIT = 1000;

const repositoryDoc = schema.doc("repositories");

/**
 * Register a repository, or replace its entry (matched by normalized URL, either `.git`
 * spelling): the entry afterwards holds exactly the given settings (`checks` default none,
 * the network flags default false). Answers the entry's id and whether it was new.
 */
export const add = internalMutation({
  args: {
    url: v.string(),
    checks: v.optional(v.array(v.string())),
    baseBranch: v.optional(v.string()),
    agentNetwork: v.optional(v.boolean()),
    checkNetwork: v.optional(v.boolean()),
    maxTokens: v.optional(v.number()),
    maxAgentMinutes: v.optional(v.number()),
    maxConcurrentRuns: v.optional(v.number()),
    webhookUrl: v.optional(v.string()),
  },
  returns: v.object({ repositoryId: v.id("repositories"), created: v.boolean() }),
  handler: async (ctx, args) => {
    classifyRepo(args.url);
    const checks = requireChecks(args.checks) ?? [];
    const entry = {
      checks,
      agentNetwork: args.agentNetwork ?? true,
      checkNetwork: args.checkNetwork ?? false,
      baseBranch: optionalBranchName("baseBranch", args.baseBranch),
      maxTokens: optionalWholeNumber("maxTokens", args.maxTokens, 1),
      maxAgentMinutes: optionalWholeNumber("maxAgentMinutes", args.maxAgentMinutes, 1),
      maxConcurrentRuns: optionalWholeNumber("maxConcurrentRuns", args.maxConcurrentRuns, 1),
      webhookUrl:
        args.webhookUrl === undefined ? undefined : requireUrl("webhookUrl", args.webhookUrl),
    };
    if (entry.webhookUrl !== undefined && !/^https?:\/\//i.test(entry.webhookUrl)) {
      fail("INVALID_ARGUMENT", "webhookUrl must be an http:// or https:// URL.");
    }
    const now = Date.now();
    const existing = await findRepository(ctx, args.url);
    if (existing !== null) {
      await ctx.db.replace("repositories", existing._id, {
        url: existing.url,
        ...entry,
        createdAt: existing.createdAt,
        updatedAt: now,
      });
      return { repositoryId: existing._id, created: false };
    }
    const repositoryId = await ctx.db.insert("repositories", {
      url: normalizeRepoUrl(args.url),
      ...entry,
      createdAt: now,
      updatedAt: now,
    });
    return { repositoryId, created: true };
  },
});

/** Every entry, by URL (at most REPOSITORY_LIST_LIMIT). */
export const list = internalQuery({
  args: {},
  returns: v.array(repositoryDoc),
  handler: async (ctx) =>
    await ctx.db.query("repositories").withIndex("by_url").order("asc").take(REPOSITORY_LIST_LIMIT),
});

/** The entry for `url` (either `.git` spelling), or null. */
export const get = internalQuery({
  args: { url: v.string() },
  returns: v.union(repositoryDoc, v.null()),
  handler: async (ctx, args) => {
    classifyRepo(args.url);
    return await findRepository(ctx, args.url);
  },
});

/**
 * Remove the entry for `url`. Orders already created keep running with the checks they had
 * (an operator order's own) or, for chat orders not yet dispatched, the worker's defaults; new
 * chat orders for it are refused. Answers whether there was an entry.
 */
export const remove = internalMutation({
  args: { url: v.string() },
  returns: v.object({ removed: v.boolean() }),
  handler: async (ctx, args) => {
    classifyRepo(args.url);
    const existing = await findRepository(ctx, args.url);
    if (existing === null) return { removed: false };
    await ctx.db.delete("repositories", existing._id);
    return { removed: true };
  },
});
