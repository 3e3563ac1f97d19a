/**
 * runs:start, updateStatus, getDashboard, list, listAll, getLatestForWorkOrder(AsOperator),
 * getTimeline(AsOperator). Who may call what: auth.test.ts.
 */
import { describe, expect, test, vi } from "vitest";
import { api, internal } from "./_generated/api";
import type { Id } from "./_generated/dataModel";
import { moveWorkOrder } from "./lib/lifecycle";
import { WORK_TRANSITIONS, classifyWorkTransition, isTerminalWorkStatus } from "./lib/transitions";
import { WORK_STATUSES } from "./lib/validators";
import {
  asUser,
  expectConvexError,
  newTest,
  NOW,
  REPO,
  seedRun,
  seedWorkOrder,
  startArgs,
  type T,
  useFixedClock,
  userIdOf,
} from "./test.setup";

useFixedClock();

async function countRows(t: T, table: "runs" | "events" | "workflow_requests") {
  return await t.run(async (ctx) => (await ctx.db.query(table).take(1000)).length);
}

async function getRun(t: T, runId: Id<"runs">) {
  const run = await t.run((ctx) => ctx.db.get("runs", runId));
  if (run === null) throw new Error("run vanished");
  return run;
}

async function getOrder(t: T, id: Id<"workflow_requests">) {
  return await t.query(internal.workOrders.getAsOperator, { workflowRequestId: id });
}

describe("runs:start", () => {
  test("records a running run, moves the order to running and links its workflow", async () => {
    const t = newTest();
    const { workOrderId } = await seedWorkOrder(t);
    vi.setSystemTime(NOW + 5000);
    const runId = await t.mutation(internal.runs.start, startArgs(workOrderId));
    expect(await getRun(t, runId)).toMatchObject({
      workflowRequestId: workOrderId,
      userId: userIdOf("user-1"),
      temporalWorkflowId: `work-order-${workOrderId}`,
      temporalRunId: "run-1",
      taskQueue: "jangar",
      workerId: "worker-a",
      repo: REPO,
      branch: "codex/fix-flaky-test",
      status: "running",
      startedAt: NOW,
      updatedAt: NOW + 5000,
    });
    const order = await getOrder(t, workOrderId);
    expect(order.status).toBe("running");
    expect(order.temporalWorkflowId).toBe(`work-order-${workOrderId}`);
    expect(order.updatedAt).toBe(NOW + 5000);
  });

  test("idempotent on (temporalWorkflowId, temporalRunId): one row, same id, counted once", async () => {
    const t = newTest();
    const { workOrderId } = await seedWorkOrder(t);
    const first = await t.mutation(internal.runs.start, startArgs(workOrderId));
    const second = await t.mutation(internal.runs.start, startArgs(workOrderId));
    expect(second).toBe(first);
    expect(await countRows(t, "runs")).toBe(1);
    const { counts } = await t.query(internal.runs.getDashboard, {});
    expect(counts.running).toBe(1);
  });

  test("a second Temporal run of a running order is a new run", async () => {
    const t = newTest();
    const { workOrderId } = await seedWorkOrder(t);
    const a = await t.mutation(internal.runs.start, startArgs(workOrderId, "1"));
    const b = await t.mutation(internal.runs.start, startArgs(workOrderId, "2"));
    expect(a).not.toBe(b);
    expect(await countRows(t, "runs")).toBe(2);
  });

  test("the same workflow run for another work order is a CONFLICT", async () => {
    const t = newTest();
    const { workOrderId } = await seedWorkOrder(t);
    const { workOrderId: other } = await seedWorkOrder(t);
    await t.mutation(internal.runs.start, startArgs(workOrderId));
    await expectConvexError(
      t.mutation(internal.runs.start, { ...startArgs(workOrderId), workflowRequestId: other }),
      "CONFLICT",
    );
  });

  test.each(["succeeded", "failed", "canceled"] as const)(
    "a %s work order refuses a new run with INVALID_TRANSITION and writes nothing",
    async (status) => {
      const t = newTest();
      const { workOrderId } = await seedWorkOrder(t);
      await t.run((ctx) => ctx.db.patch("workflow_requests", workOrderId, { status }));
      const err = await expectConvexError(
        t.mutation(internal.runs.start, startArgs(workOrderId)),
        "INVALID_TRANSITION",
      );
      expect(err.message).toContain(`cannot move from ${status} to running`);
      expect(await countRows(t, "runs")).toBe(0);
      expect((await getOrder(t, workOrderId)).temporalWorkflowId).toBeUndefined();
    },
  );

  test("validation and NOT_FOUND", async () => {
    const t = newTest();
    const { workOrderId } = await seedWorkOrder(t);
    const base = startArgs(workOrderId);
    for (const args of [
      { ...base, temporalWorkflowId: "" },
      { ...base, temporalRunId: " " },
      { ...base, taskQueue: "" },
      { ...base, workerId: "" },
      { ...base, repo: "a b" },
      { ...base, branch: "" },
      { ...base, startedAt: -1 },
    ]) {
      await expectConvexError(t.mutation(internal.runs.start, args), "INVALID_ARGUMENT");
    }
    await t.run((ctx) => ctx.db.delete("workflow_requests", workOrderId));
    await expectConvexError(t.mutation(internal.runs.start, base), "NOT_FOUND");
    expect(await countRows(t, "runs")).toBe(0);
  });
});

describe("runs:updateStatus", () => {
  // Every (from, to) pair of the lib table, through the real mutation.
  const pairs = WORK_STATUSES.flatMap((from) => WORK_STATUSES.map((to) => [from, to] as const));

  test.each(pairs)("run %s -> %s follows the transition table", async (from, to) => {
    const t = newTest();
    const { runId } = await seedRun(t);
    await t.run((ctx) => ctx.db.patch("runs", runId, { status: from }));
    const kind = classifyWorkTransition(from, to);
    if (kind === "refused") {
      const err = await expectConvexError(
        t.mutation(internal.runs.updateStatus, { runId, status: to }),
        "INVALID_TRANSITION",
      );
      expect(err.message).toContain(`cannot move from ${from} to ${to}`);
      expect((await getRun(t, runId)).status).toBe(from);
      return;
    }
    const result = await t.mutation(internal.runs.updateStatus, { runId, status: to });
    expect(result).toEqual({ runId, status: to, changed: kind === "allowed" });
    expect((await getRun(t, runId)).status).toBe(to);
    expect(kind === "allowed").toBe(WORK_TRANSITIONS[from].includes(to));
  });

  test("a terminal status sets endedAt (given, else now), failureReason, prUrl, commitSha", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    vi.setSystemTime(NOW + 60_000);
    const result = await t.mutation(internal.runs.updateStatus, {
      runId,
      status: "succeeded",
      prUrl: "https://github.com/proompteng/lab/pull/42",
      commitSha: "0123456789abcdef0123456789abcdef01234567",
    });
    expect(result).toEqual({ runId, status: "succeeded", changed: true });
    expect(await getRun(t, runId)).toMatchObject({
      status: "succeeded",
      endedAt: NOW + 60_000,
      updatedAt: NOW + 60_000,
      prUrl: "https://github.com/proompteng/lab/pull/42",
      commitSha: "0123456789abcdef0123456789abcdef01234567",
    });

    const { runId: failedRun } = await seedRun(t);
    await t.mutation(internal.runs.updateStatus, {
      runId: failedRun,
      status: "failed",
      endedAt: NOW + 1234,
      failureReason: { type: "ActivityError", message: "codex exited 1", attempts: 3 },
    });
    expect(await getRun(t, failedRun)).toMatchObject({
      status: "failed",
      endedAt: NOW + 1234,
      failureReason: { type: "ActivityError", message: "codex exited 1", attempts: 3 },
    });
  });

  test("a non-terminal move leaves endedAt unset", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    await t.run((ctx) => ctx.db.patch("runs", runId, { status: "queued" }));
    await t.mutation(internal.runs.updateStatus, { runId, status: "running", endedAt: NOW });
    expect((await getRun(t, runId)).endedAt).toBeUndefined();
  });

  test("repeating the current status is a no-op that ignores the other fields", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    await t.mutation(internal.runs.updateStatus, { runId, status: "succeeded", endedAt: NOW + 1 });
    const before = await getRun(t, runId);
    const again = await t.mutation(internal.runs.updateStatus, {
      runId,
      status: "succeeded",
      endedAt: NOW + 2,
      prUrl: "https://example.com/late",
    });
    expect(again).toEqual({ runId, status: "succeeded", changed: false });
    expect(await getRun(t, runId)).toEqual(before);
  });

  test("succeeded -> running is refused with a typed error", async () => {
    const t = newTest();
    const { runId, workOrderId } = await seedRun(t);
    await t.mutation(internal.runs.updateStatus, { runId, status: "succeeded" });
    const err = await expectConvexError(
      t.mutation(internal.runs.updateStatus, { runId, status: "running" }),
      "INVALID_TRANSITION",
    );
    expect(err.message).toBe(
      `run ${runId} cannot move from succeeded to running: succeeded is terminal and final`,
    );
    expect((await getOrder(t, workOrderId)).status).toBe("succeeded");
  });

  test.each(["succeeded", "failed", "canceled"] as const)(
    "run %s is mirrored onto its running work order",
    async (status) => {
      const t = newTest();
      const { runId, workOrderId } = await seedRun(t);
      vi.setSystemTime(NOW + 9000);
      await t.mutation(internal.runs.updateStatus, { runId, status });
      const order = await getOrder(t, workOrderId);
      expect(order.status).toBe(status);
      expect(order.updatedAt).toBe(NOW + 9000);
    },
  );

  test("the mirror respects the work order's table: a canceled order stays canceled", async () => {
    const t = newTest();
    const { runId, workOrderId } = await seedRun(t);
    await t.run((ctx) => ctx.db.patch("workflow_requests", workOrderId, { status: "canceled" }));
    const result = await t.mutation(internal.runs.updateStatus, { runId, status: "succeeded" });
    expect(result.changed).toBe(true);
    expect((await getOrder(t, workOrderId)).status).toBe("canceled");
  });

  test("validation: bad commitSha, blank prUrl, bad endedAt, 2 MiB failureReason", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    const before = await getRun(t, runId);
    for (const args of [
      { runId, status: "failed" as const, commitSha: "xyz" },
      { runId, status: "failed" as const, prUrl: "" },
      { runId, status: "failed" as const, endedAt: Number.NaN },
    ]) {
      await expectConvexError(t.mutation(internal.runs.updateStatus, args), "INVALID_ARGUMENT");
    }
    const err = await expectConvexError(
      t.mutation(internal.runs.updateStatus, {
        runId,
        status: "failed",
        failureReason: "x".repeat(2 * 1024 * 1024),
      }),
      "TOO_LARGE",
    );
    expect(err.message).toContain("failureReason is 2097154 bytes serialized");
    expect(await getRun(t, runId)).toEqual(before);
  });

  test("a missing run is NOT_FOUND", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    await t.run((ctx) => ctx.db.delete("runs", runId));
    await expectConvexError(
      t.mutation(internal.runs.updateStatus, { runId, status: "failed" }),
      "NOT_FOUND",
    );
  });
});

describe("work order transitions (the same lib table)", () => {
  const pairs = WORK_STATUSES.flatMap((from) => WORK_STATUSES.map((to) => [from, to] as const));

  test.each(pairs)("work order %s -> %s", async (from, to) => {
    const t = newTest();
    const { workOrderId } = await seedWorkOrder(t);
    await t.run((ctx) => ctx.db.patch("workflow_requests", workOrderId, { status: from }));
    const kind = classifyWorkTransition(from, to);
    const attempt = t.run(async (ctx) => {
      const order = await ctx.db.get("workflow_requests", workOrderId);
      return await moveWorkOrder(ctx, order!, to, "throw", NOW + 1);
    });
    if (kind === "refused") {
      await expectConvexError(attempt, "INVALID_TRANSITION");
      expect((await getOrder(t, workOrderId)).status).toBe(from);
      // In mirror mode the refusal is skipped, not thrown.
      const skipped = await t.run(async (ctx) => {
        const order = await ctx.db.get("workflow_requests", workOrderId);
        return await moveWorkOrder(ctx, order!, to, "skip", NOW + 1);
      });
      expect(skipped).toBe(false);
      expect((await getOrder(t, workOrderId)).status).toBe(from);
    } else {
      expect(await attempt).toBe(kind === "allowed");
      expect((await getOrder(t, workOrderId)).status).toBe(to);
    }
    expect(isTerminalWorkStatus(from) && kind === "allowed").toBe(false);
  });
});

describe("runs:getDashboard", () => {
  test("counts by status after a series of transitions, and the most recent runs", async () => {
    const t = newTest();
    const runs: Id<"runs">[] = [];
    for (let i = 0; i < 6; i++) runs.push((await seedRun(t, NOW + i * 1000)).runId);
    await t.mutation(internal.runs.updateStatus, { runId: runs[0], status: "succeeded" });
    await t.mutation(internal.runs.updateStatus, { runId: runs[1], status: "failed" });
    await t.mutation(internal.runs.updateStatus, { runId: runs[2], status: "canceled" });
    await t.mutation(internal.runs.updateStatus, { runId: runs[3], status: "succeeded" });
    // No-ops and refusals do not move the counters.
    await t.mutation(internal.runs.updateStatus, { runId: runs[3], status: "succeeded" });
    await expectConvexError(
      t.mutation(internal.runs.updateStatus, { runId: runs[0], status: "running" }),
      "INVALID_TRANSITION",
    );
    await expectConvexError(
      t.mutation(internal.runs.updateStatus, { runId: runs[1], status: "succeeded" }),
      "INVALID_TRANSITION",
    );

    const dashboard = await t.query(internal.runs.getDashboard, {});
    expect(dashboard.counts).toEqual({
      queued: 0,
      running: 2,
      succeeded: 2,
      failed: 1,
      canceled: 1,
    });
    expect(dashboard.recent.map((r) => r._id)).toEqual([...runs].reverse());

    const limited = await t.query(internal.runs.getDashboard, { limit: 2 });
    expect(limited.recent.map((r) => r._id)).toEqual([runs[5], runs[4]]);
    await expectConvexError(
      t.query(internal.runs.getDashboard, { limit: 101 }),
      "INVALID_ARGUMENT",
    );
  });

  test("an empty deployment answers zero counts", async () => {
    const t = newTest();
    expect(await t.query(internal.runs.getDashboard, {})).toEqual({
      counts: { queued: 0, running: 0, succeeded: 0, failed: 0, canceled: 0 },
      recent: [],
      usage: { inputTokens: 0, cachedInputTokens: 0, outputTokens: 0, agentMs: 0 },
    });
  });
});

describe("runs:list, runs:listAll and the latest run of an order", () => {
  test("list: the caller's runs newest first, optionally by status, bounded", async () => {
    const t = newTest();
    const a = (await seedRun(t, NOW + 1000)).runId;
    const b = (await seedRun(t, NOW + 2000)).runId;
    const c = (await seedRun(t, NOW + 3000)).runId;
    const theirs = (await seedRun(t, NOW + 4000, "user-2")).runId;
    await t.mutation(internal.runs.updateStatus, { runId: b, status: "failed" });
    const user = asUser(t, "user-1");
    expect((await user.query(api.runs.list, {})).map((r) => r._id)).toEqual([c, b, a]);
    expect((await user.query(api.runs.list, { status: "running" })).map((r) => r._id)).toEqual([
      c,
      a,
    ]);
    expect((await user.query(api.runs.list, { status: "failed" })).map((r) => r._id)).toEqual([b]);
    expect(await user.query(api.runs.list, { status: "queued" })).toEqual([]);
    expect((await user.query(api.runs.list, { limit: 1 })).map((r) => r._id)).toEqual([c]);
    await expectConvexError(user.query(api.runs.list, { limit: 0 }), "INVALID_ARGUMENT");
    expect((await asUser(t, "user-2").query(api.runs.list, {})).map((r) => r._id)).toEqual([
      theirs,
    ]);
    // Operators see every user's runs.
    expect((await t.query(internal.runs.listAll, {})).map((r) => r._id)).toEqual([theirs, c, b, a]);
    expect((await t.query(internal.runs.listAll, { status: "failed" })).map((r) => r._id)).toEqual([
      b,
    ]);
    expect((await t.query(internal.runs.listAll, { limit: 2 })).map((r) => r._id)).toEqual([
      theirs,
      c,
    ]);
    await expectConvexError(t.query(internal.runs.listAll, { limit: 101 }), "INVALID_ARGUMENT");
  });

  test("the latest run of a work order, or null; the operator's variant for any order", async () => {
    const t = newTest();
    const { workOrderId, user } = await seedWorkOrder(t);
    const args = { workflowRequestId: workOrderId };
    expect(await user.query(api.runs.getLatestForWorkOrder, args)).toBe(null);
    expect(await t.query(internal.runs.getLatestForWorkOrderAsOperator, args)).toBe(null);
    await t.mutation(internal.runs.start, { ...startArgs(workOrderId, "1"), startedAt: NOW });
    const later = await t.mutation(internal.runs.start, {
      ...startArgs(workOrderId, "2"),
      startedAt: NOW + 10,
    });
    expect((await user.query(api.runs.getLatestForWorkOrder, args))?._id).toBe(later);
    expect((await t.query(internal.runs.getLatestForWorkOrderAsOperator, args))?._id).toBe(later);
    await expectConvexError(
      t.query(internal.runs.getLatestForWorkOrderAsOperator, { workflowRequestId: "nope" }),
      "NOT_FOUND",
    );
  });
});

describe("runs:updateStatus usage", () => {
  test("usage, agentMs, finalMessage and prNumber are stored; the totals move by the change", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    const { runId: other } = await seedRun(t);
    await t.mutation(internal.runs.updateStatus, {
      runId,
      status: "succeeded",
      usage: { inputTokens: 1000, cachedInputTokens: 200, outputTokens: 50 },
      agentMs: 12_000,
      finalMessage: "Added NOTES.md.",
      prNumber: 12,
    });
    expect(await getRun(t, runId)).toMatchObject({
      inputTokens: 1000,
      cachedInputTokens: 200,
      outputTokens: 50,
      agentMs: 12_000,
      finalMessage: "Added NOTES.md.",
      prNumber: 12,
    });
    // A repeat is a no-op: counted once.
    await t.mutation(internal.runs.updateStatus, {
      runId,
      status: "succeeded",
      usage: { inputTokens: 1000, cachedInputTokens: 200, outputTokens: 50 },
    });
    // Usage reported while running, then its final figures: the totals hold the final ones.
    await t.run((ctx) => ctx.db.patch("runs", other, { status: "queued" }));
    await t.mutation(internal.runs.updateStatus, {
      runId: other,
      status: "running",
      usage: { inputTokens: 10, cachedInputTokens: 0, outputTokens: 1 },
      agentMs: 100,
    });
    await t.mutation(internal.runs.updateStatus, {
      runId: other,
      status: "failed",
      usage: { inputTokens: 30, cachedInputTokens: 5, outputTokens: 3 },
      agentMs: 400,
    });
    const { usage } = await t.query(internal.runs.getDashboard, {});
    expect(usage).toEqual({
      inputTokens: 1030,
      cachedInputTokens: 205,
      outputTokens: 53,
      agentMs: 12_400,
    });
  });

  test("negative or fractional counts and an oversized final message are refused", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    for (const args of [
      { usage: { inputTokens: -1, cachedInputTokens: 0, outputTokens: 0 } },
      { usage: { inputTokens: 1.5, cachedInputTokens: 0, outputTokens: 0 } },
      { agentMs: -5 },
      { prNumber: 0 },
    ]) {
      await expectConvexError(
        t.mutation(internal.runs.updateStatus, { runId, status: "failed", ...args }),
        "INVALID_ARGUMENT",
      );
    }
    await expectConvexError(
      t.mutation(internal.runs.updateStatus, {
        runId,
        status: "failed",
        finalMessage: "m".repeat(70_000),
      }),
      "TOO_LARGE",
    );
    expect((await getRun(t, runId)).status).toBe("running");
  });
});

describe("runs:getTimeline", () => {
  test("steps, artifacts and events in time order; 250 events paged by cursor", async () => {
    const t = newTest();
    const { runId, workOrderId, user } = await seedRun(t);
    // Steps recorded out of order; one never started.
    for (const [name, startedAt] of [
      ["push", NOW + 3000],
      ["clone", NOW + 1000],
      ["pr", undefined],
      ["codex", NOW + 2000],
    ] as const) {
      await t.mutation(internal.steps.appendOrUpdate, {
        runId,
        name,
        kind: "activity",
        status: startedAt === undefined ? "pending" : "running",
        startedAt,
      });
    }
    for (const [key, createdAt] of [
      ["log", NOW + 20],
      ["diff", NOW + 10],
      ["pr", NOW + 30],
    ] as const) {
      await t.mutation(internal.artifacts.add, {
        runId,
        type: key,
        url: `https://example.com/${key}`,
        label: key,
        idempotencyKey: key,
        createdAt,
      });
    }
    // 250 events, appended in reverse time order.
    for (let i = 249; i >= 0; i--) {
      await t.mutation(internal.events.append, {
        runId,
        workflowRequestId: workOrderId,
        type: "system",
        data: { i },
        idempotencyKey: `event-${i}`,
        createdAt: NOW + i,
      });
    }

    const pages = [];
    let cursor: string | null = null;
    for (;;) {
      const page: Awaited<ReturnType<typeof t.query<typeof api.runs.getTimeline>>> =
        await user.query(api.runs.getTimeline, { runId, cursor, limit: 100 });
      pages.push(page);
      if (page.isDone) break;
      cursor = page.continueCursor;
      if (pages.length > 5) throw new Error("pagination did not finish");
    }
    // The 250 appended events, plus the state changes the run and its three started steps
    // wrote themselves: 254, in pages of 100.
    expect(pages.map((p) => p.events.length)).toEqual([100, 100, 54]);
    const all = pages.flatMap((p) => p.events);
    expect(all.map((e) => e.createdAt)).toEqual([...all.map((e) => e.createdAt)].sort());
    const seen = all.filter((e) => e.type === "system").map((e) => (e.data as { i: number }).i);
    expect(seen).toEqual(Array.from({ length: 250 }, (_, i) => i));

    const first = pages[0];
    expect(first.run._id).toBe(runId);
    expect(first.workOrder?._id).toBe(workOrderId);
    expect(first.steps.map((s) => s.name)).toEqual(["clone", "codex", "push", "pr"]);
    expect(first.artifacts.map((a) => a.label)).toEqual(["diff", "log", "pr"]);
    // The operator's variant answers the same timeline for any run.
    expect(await t.query(internal.runs.getTimelineAsOperator, { runId, limit: 100 })).toEqual(
      first,
    );

    const defaults = await user.query(api.runs.getTimeline, { runId });
    expect(defaults.events).toHaveLength(100);
    expect(defaults.isDone).toBe(false);
    const big = await user.query(api.runs.getTimeline, { runId, cursor: null, limit: 500 });
    expect(big.events).toHaveLength(254);
    expect(big.isDone).toBe(true);
  });

  test("limit bounds and NOT_FOUND", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    await expectConvexError(
      asUser(t).query(api.runs.getTimeline, { runId, limit: 501 }),
      "INVALID_ARGUMENT",
    );
    await t.run((ctx) => ctx.db.delete("runs", runId));
    await expectConvexError(asUser(t).query(api.runs.getTimeline, { runId }), "NOT_FOUND");
    // Not an id at all (a typo on the command line): the same code, not a validator error.
    await expectConvexError(
      asUser(t).query(api.runs.getTimeline, { runId: "not-a-run" }),
      "NOT_FOUND",
    );
    await expectConvexError(
      t.query(internal.runs.getTimelineAsOperator, { runId: "not-a-run" }),
      "NOT_FOUND",
    );
  });
});
