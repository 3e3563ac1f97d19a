/** workOrders:createFromMessage, listBySession, get, listQueued, markDispatched. */
import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import { api, internal } from "./_generated/api";
import { MAX_CHECKS } from "./workOrders";
import { expectConvexError, newTest, seedMessage, seedWorkOrder, startArgs } from "./test.setup";

const NOW_PLUS = 1_700_000_090_000;

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(1_700_000_000_000);
});
afterEach(() => {
  vi.useRealTimers();
});

async function workOrderCount(t: ReturnType<typeof newTest>) {
  return await t.run(async (ctx) => (await ctx.db.query("workflow_requests").take(200)).length);
}

describe("workOrders:createFromMessage", () => {
  test("creates a queued order with every field", async () => {
    const t = newTest();
    const { sessionId, messageId } = await seedMessage(t);
    vi.setSystemTime(1_700_000_050_000);
    const id = await t.mutation(api.workOrders.createFromMessage, {
      sessionId,
      triggerMessageId: messageId,
      summary: "Fix the flaky test",
      repo: "proompteng/lab",
      branchHint: "codex/flaky",
      baseBranch: "main",
      checks: ["pytest", "ruff check ."],
    });
    const doc = await t.query(api.workOrders.get, { workflowRequestId: id });
    expect(doc).toMatchObject({
      sessionId,
      triggerMessageId: messageId,
      summary: "Fix the flaky test",
      repo: "proompteng/lab",
      branchHint: "codex/flaky",
      baseBranch: "main",
      checks: ["pytest", "ruff check ."],
      status: "queued",
      createdAt: 1_700_000_050_000,
      updatedAt: 1_700_000_050_000,
    });
    expect(doc.temporalWorkflowId).toBeUndefined();
  });

  test("one order per trigger message: a second call returns the first id", async () => {
    const t = newTest();
    const { sessionId, messageId } = await seedMessage(t);
    const args = { sessionId, triggerMessageId: messageId, summary: "s", repo: "o/r" };
    const first = await t.mutation(api.workOrders.createFromMessage, args);
    const second = await t.mutation(api.workOrders.createFromMessage, {
      ...args,
      summary: "other",
    });
    expect(second).toBe(first);
    expect(await workOrderCount(t)).toBe(1);
  });

  test("a message from another session is INVALID_ARGUMENT", async () => {
    const t = newTest();
    const { messageId } = await seedMessage(t);
    const { sessionId: otherSession } = await seedMessage(t);
    const err = await expectConvexError(
      t.mutation(api.workOrders.createFromMessage, {
        sessionId: otherSession,
        triggerMessageId: messageId,
        summary: "s",
        repo: "o/r",
      }),
      "INVALID_ARGUMENT",
    );
    expect(err.message).toContain("belongs to session");
    expect(await workOrderCount(t)).toBe(0);
  });

  test("a missing session or message is NOT_FOUND", async () => {
    const t = newTest();
    const { sessionId, messageId } = await seedMessage(t);
    const args = { sessionId, triggerMessageId: messageId, summary: "s", repo: "o/r" };
    await t.run((ctx) => ctx.db.delete("chat_messages", messageId));
    await expectConvexError(t.mutation(api.workOrders.createFromMessage, args), "NOT_FOUND");
    await t.run((ctx) => ctx.db.delete("chat_sessions", sessionId));
    await expectConvexError(t.mutation(api.workOrders.createFromMessage, args), "NOT_FOUND");
  });

  test("validation: blank summary, blank or spaced repo, bad branches, too many checks", async () => {
    const t = newTest();
    const { sessionId, messageId } = await seedMessage(t);
    const base = { sessionId, triggerMessageId: messageId, summary: "s", repo: "o/r" };
    const bad = [
      { ...base, summary: "" },
      { ...base, repo: " " },
      { ...base, repo: "o/ r" },
      { ...base, branchHint: "" },
      { ...base, baseBranch: "has space" },
      { ...base, checks: [""] },
      { ...base, checks: Array.from({ length: MAX_CHECKS + 1 }, (_, i) => `c${i}`) },
    ];
    for (const args of bad) {
      await expectConvexError(
        t.mutation(api.workOrders.createFromMessage, args),
        "INVALID_ARGUMENT",
      );
    }
    expect(await workOrderCount(t)).toBe(0);
  });
});

describe("workOrders:listBySession and get", () => {
  test("newest first, bounded by limit, only that session", async () => {
    const t = newTest();
    const { sessionId } = await seedMessage(t);
    const ids = [];
    for (let i = 0; i < 4; i++) {
      vi.setSystemTime(1_700_000_000_000 + i * 1000);
      const messageId = await t.mutation(api.threads.append, {
        sessionId,
        role: "user",
        content: `task ${i}`,
      });
      ids.push(
        await t.mutation(api.workOrders.createFromMessage, {
          sessionId,
          triggerMessageId: messageId,
          summary: `task ${i}`,
          repo: "o/r",
        }),
      );
    }
    await seedWorkOrder(t);
    const all = await t.query(api.workOrders.listBySession, { sessionId });
    expect(all.map((w) => w._id)).toEqual([...ids].reverse());
    const two = await t.query(api.workOrders.listBySession, { sessionId, limit: 2 });
    expect(two.map((w) => w._id)).toEqual([ids[3], ids[2]]);
    await expectConvexError(
      t.query(api.workOrders.listBySession, { sessionId, limit: 101 }),
      "INVALID_ARGUMENT",
    );
  });

  test("get of a missing order is NOT_FOUND", async () => {
    const t = newTest();
    const { workOrderId } = await seedWorkOrder(t);
    await t.run((ctx) => ctx.db.delete("workflow_requests", workOrderId));
    await expectConvexError(
      t.query(api.workOrders.get, { workflowRequestId: workOrderId }),
      "NOT_FOUND",
    );
  });
});

describe("workOrders:listQueued", () => {
  test("queued, not yet dispatched, oldest first, with the trigger message as prompt", async () => {
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
    expect(queued[0]).toMatchObject({ status: "queued", summary: "Fix the flaky test" });
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
          triggerMessageId,
          summary: `s${i}`,
          repo: "o/r",
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
    const doc = await t.query(api.workOrders.get, { workflowRequestId: workOrderId });
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
    const doc = await t.query(api.workOrders.get, { workflowRequestId: workOrderId });
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
    expect(
      (await t.query(api.workOrders.get, { workflowRequestId: workOrderId })).failureReason,
    ).toBe("repo: not a valid repository");
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
