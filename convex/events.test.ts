/** events:append. */
import { describe, expect, test, vi } from "vitest";
import { internal } from "./_generated/api";
import { MAX_VALUE_BYTES } from "./lib/contract";
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

/** Events appended through events:*, leaving out the state changes runs and steps write. */
async function eventCount(t: T) {
  return await t.run(
    async (ctx) =>
      (await ctx.db.query("events").take(500)).filter((e) => !e.idempotencyKey.startsWith("state/"))
        .length,
  );
}

describe("events:append", () => {
  test("stores the event with the run's work order; createdAt defaults to now", async () => {
    const t = newTest();
    const { runId, workOrderId } = await seedRun(t);
    vi.setSystemTime(NOW + 1000);
    const id = await t.mutation(internal.events.append, {
      runId,
      workflowRequestId: workOrderId,
      type: "state_change",
      data: { from: "queued", to: "running" },
      idempotencyKey: "run-1:state:running",
    });
    expect(await t.run((ctx) => ctx.db.get("events", id))).toMatchObject({
      runId,
      workflowRequestId: workOrderId,
      type: "state_change",
      data: { from: "queued", to: "running" },
      idempotencyKey: "run-1:state:running",
      createdAt: NOW + 1000,
    });
  });

  test("the same idempotencyKey twice: same id, one event", async () => {
    const t = newTest();
    const { runId, workOrderId } = await seedRun(t);
    const args = {
      runId,
      workflowRequestId: workOrderId,
      type: "comment" as const,
      data: "hello",
      idempotencyKey: "k1",
    };
    const first = await t.mutation(internal.events.append, args);
    vi.setSystemTime(NOW + 100);
    const second = await t.mutation(internal.events.append, args);
    expect(second).toBe(first);
    expect(await eventCount(t)).toBe(1);
  });

  test("a workflowRequestId other than the run's is INVALID_ARGUMENT", async () => {
    const t = newTest();
    const { runId } = await seedRun(t);
    const { workOrderId: other } = await seedWorkOrder(t);
    const err = await expectConvexError(
      t.mutation(internal.events.append, {
        runId,
        workflowRequestId: other,
        type: "system",
        idempotencyKey: "k",
      }),
      "INVALID_ARGUMENT",
    );
    expect(err.message).toContain("pass the run's own workflowRequestId");
    expect(await eventCount(t)).toBe(0);
  });

  test("data over 64 KiB (and a 2 MiB one) is TOO_LARGE and nothing is written", async () => {
    const t = newTest();
    const { runId, workOrderId } = await seedRun(t);
    const base = { runId, workflowRequestId: workOrderId, type: "system" as const };
    await expectConvexError(
      t.mutation(internal.events.append, {
        ...base,
        data: { text: "d".repeat(MAX_VALUE_BYTES) },
        idempotencyKey: "a",
      }),
      "TOO_LARGE",
    );
    const err = await expectConvexError(
      t.mutation(internal.events.append, {
        ...base,
        data: "d".repeat(2 * 1024 * 1024),
        idempotencyKey: "b",
      }),
      "TOO_LARGE",
    );
    expect(err.message).toBe(
      "data is 2097154 bytes serialized; the limit is 65536 bytes (64 KiB). Store large " +
        "content elsewhere (e.g. an artifact URL) and pass a reference or a summary.",
    );
    expect(await eventCount(t)).toBe(0);
  });

  test("validation and NOT_FOUND", async () => {
    const t = newTest();
    const { runId, workOrderId } = await seedRun(t);
    const base = { runId, workflowRequestId: workOrderId, type: "system" as const };
    for (const args of [
      { ...base, idempotencyKey: "" },
      { ...base, idempotencyKey: "with space" },
      { ...base, idempotencyKey: "k", createdAt: Number.NaN },
    ]) {
      await expectConvexError(t.mutation(internal.events.append, args), "INVALID_ARGUMENT");
    }
    await t.run((ctx) => ctx.db.delete("runs", runId));
    await expectConvexError(
      t.mutation(internal.events.append, { ...base, idempotencyKey: "k" }),
      "NOT_FOUND",
    );
  });
});
