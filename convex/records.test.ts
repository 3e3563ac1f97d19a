/**
 * What issue 10 asks of the writers: a transition and its `state_change` event land in one
 * transaction (deduplicated by the same key), events arrive in batches, and logs and diffs are
 * files in Convex storage whose retried upload never makes a second artifact.
 */
import { describe, expect, test } from "vitest";
import { internal } from "./_generated/api";
import type { Id } from "./_generated/dataModel";
import { MAX_EVENT_BATCH } from "./lib/contract";
import {
  expectConvexError,
  newTest,
  NOW,
  seedRun,
  seedWorkOrder,
  type T,
  useFixedClock,
} from "./test.setup";

useFixedClock();

async function stateEvents(t: T, runId: Id<"runs">) {
  const events = await t.run((ctx) =>
    ctx.db
      .query("events")
      .withIndex("by_run_and_created_at", (q) => q.eq("runId", runId))
      .take(500),
  );
  return events.filter((e) => e.type === "state_change").map((e) => [e.data, e.createdAt]);
}

async function storeBlob(t: T, text: string): Promise<Id<"_storage">> {
  return await t.run((ctx) => ctx.storage.store(new Blob([text], { type: "text/plain" })));
}

describe("state changes are written by the transition itself", () => {
  test("runs:start writes the running event, timed at startedAt", async () => {
    const t = newTest();
    const { runId } = await seedRun(t, NOW - 500);
    expect(await stateEvents(t, runId)).toEqual([
      [{ status: "running", branch: "codex/fix-flaky-test" }, NOW - 500],
    ]);
  });

  test("each step status gets one event; a repeat or a stale update adds none", async () => {
    const t = newTest();
    const { runId } = await seedRun(t, NOW - 500);
    const step = { runId, name: "check 1: npm test", kind: "check" as const };
    await t.mutation(internal.steps.appendOrUpdate, { ...step, status: "pending" });
    await t.mutation(internal.steps.appendOrUpdate, {
      ...step,
      status: "running",
      startedAt: NOW - 100,
    });
    const done = { ...step, status: "succeeded" as const, startedAt: NOW - 100, endedAt: NOW };
    await t.mutation(internal.steps.appendOrUpdate, done);
    await t.mutation(internal.steps.appendOrUpdate, done); // a retried write
    await t.mutation(internal.steps.appendOrUpdate, { ...step, status: "running" }); // stale
    expect((await stateEvents(t, runId)).slice(1)).toEqual([
      [{ step: "check 1: npm test", status: "running" }, NOW - 100],
      [{ step: "check 1: npm test", status: "succeeded" }, NOW],
    ]);
  });

  test("an end that lands before the start still gives running, then the end", async () => {
    const t = newTest();
    const { runId } = await seedRun(t, NOW - 500);
    const step = { runId, name: "run_agent", kind: "activity" as const, startedAt: NOW - 100 };
    await t.mutation(internal.steps.appendOrUpdate, { ...step, status: "failed", endedAt: NOW });
    await t.mutation(internal.steps.appendOrUpdate, { ...step, status: "running" }); // late
    expect((await stateEvents(t, runId)).slice(1)).toEqual([
      [{ step: "run_agent", status: "running" }, NOW - 100],
      [{ step: "run_agent", status: "failed" }, NOW],
    ]);
  });

  test("a skipped step's event says why; attempts are stored and validated", async () => {
    const t = newTest();
    const { runId } = await seedRun(t, NOW - 500);
    await t.mutation(internal.steps.appendOrUpdate, {
      runId,
      name: "open_pull_request",
      kind: "activity",
      status: "skipped",
      payload: { reason: "nothing to commit" },
    });
    expect((await stateEvents(t, runId)).at(-1)?.[0]).toEqual({
      step: "open_pull_request",
      status: "skipped",
      reason: "nothing to commit",
    });
    const { stepId } = await t.mutation(internal.steps.appendOrUpdate, {
      runId,
      name: "run_agent",
      kind: "activity",
      status: "succeeded",
      attempts: 2,
    });
    expect((await t.run((ctx) => ctx.db.get("steps", stepId)))?.attempts).toBe(2);
    await expectConvexError(
      t.mutation(internal.steps.appendOrUpdate, {
        runId,
        name: "run_agent",
        kind: "activity",
        status: "succeeded",
        attempts: 0,
      }),
      "INVALID_ARGUMENT",
    );
  });

  test("runs:updateStatus writes the terminal event with its reason, once", async () => {
    const t = newTest();
    const { runId } = await seedRun(t, NOW - 500);
    const failed = {
      runId,
      status: "failed" as const,
      endedAt: NOW,
      failureReason: { step: "run_agent", type: "WorkerLost", message: "gone" },
    };
    await t.mutation(internal.runs.updateStatus, failed);
    await t.mutation(internal.runs.updateStatus, failed);
    expect((await stateEvents(t, runId)).slice(1)).toEqual([
      [{ status: "failed", reason: failed.failureReason }, NOW],
    ]);
  });
});

describe("events:appendBatch", () => {
  test("inserts new events and skips keys already used, in one call", async () => {
    const t = newTest();
    const { runId, workOrderId } = await seedRun(t);
    const event = (i: number) => ({
      type: "system" as const,
      data: { agent: i },
      idempotencyKey: `agent/1/${i}`,
      createdAt: NOW + i,
    });
    const first = await t.mutation(internal.events.appendBatch, {
      runId,
      workflowRequestId: workOrderId,
      events: [event(0), event(1)],
    });
    const again = await t.mutation(internal.events.appendBatch, {
      runId,
      workflowRequestId: workOrderId,
      events: [event(1), event(2)], // a retried batch overlapping the last one
    });
    expect([first.inserted, again.inserted]).toEqual([2, 1]);
    const system = await t.run(async (ctx) =>
      (await ctx.db.query("events").take(50)).filter((e) => e.type === "system"),
    );
    expect(system.map((e) => e.data)).toEqual([{ agent: 0 }, { agent: 1 }, { agent: 2 }]);
  });

  test("too many events, or another order's run, is refused and writes nothing", async () => {
    const t = newTest();
    const { runId, workOrderId } = await seedRun(t);
    const { workOrderId: other } = await seedWorkOrder(t);
    const events = Array.from({ length: MAX_EVENT_BATCH + 1 }, (_, i) => ({
      type: "system" as const,
      idempotencyKey: `k${i}`,
    }));
    await expectConvexError(
      t.mutation(internal.events.appendBatch, { runId, workflowRequestId: workOrderId, events }),
      "INVALID_ARGUMENT",
    );
    await expectConvexError(
      t.mutation(internal.events.appendBatch, {
        runId,
        workflowRequestId: other,
        events: events.slice(0, 1),
      }),
      "INVALID_ARGUMENT",
    );
    const system = await t.run(async (ctx) =>
      (await ctx.db.query("events").take(50)).filter((e) => e.type === "system"),
    );
    expect(system).toEqual([]);
  });
});

describe("artifacts in Convex storage", () => {
  test("a stored file's artifact carries its storage id and the URL Convex serves", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    const storageId = await storeBlob(t, "agent output");
    const id = await t.mutation(internal.artifacts.add, {
      runId,
      type: "log",
      storageId,
      label: "agent log",
      idempotencyKey: "wf/run/artifact/agent-log",
    });
    const artifact = await t.run((ctx) => ctx.db.get("artifacts", id));
    expect(artifact?.storageId).toBe(storageId);
    expect(artifact?.url).toBe(await t.query(internal.files.getUrl, { storageId }));
  });

  test("a retried upload returns the first artifact and deletes its own file", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    const first = await storeBlob(t, "diff v1");
    const retried = await storeBlob(t, "diff v1");
    const args = { runId, type: "diff" as const, label: "diff", idempotencyKey: "wf/run/diff" };
    const a = await t.mutation(internal.artifacts.add, { ...args, storageId: first });
    const b = await t.mutation(internal.artifacts.add, { ...args, storageId: retried });
    expect(b).toBe(a);
    expect(await t.query(internal.files.getUrl, { storageId: retried })).toBeNull();
    expect(await t.query(internal.files.getUrl, { storageId: first })).not.toBeNull();
    const count = await t.run(async (ctx) => (await ctx.db.query("artifacts").take(10)).length);
    expect(count).toBe(1);
  });

  test("exactly one of url and storageId", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    const storageId = await storeBlob(t, "x");
    const base = { runId, type: "log" as const, label: "l", idempotencyKey: "k" };
    await expectConvexError(t.mutation(internal.artifacts.add, base), "INVALID_ARGUMENT");
    await expectConvexError(
      t.mutation(internal.artifacts.add, { ...base, url: "https://x.example/l", storageId }),
      "INVALID_ARGUMENT",
    );
  });

  test("an upload URL comes from the deployment's storage", async () => {
    const t = newTest();
    const url = await t.mutation(internal.files.generateUploadUrl, {});
    expect(url).toMatch(/^https?:\/\//);
  });
});
