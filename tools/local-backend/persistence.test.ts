/**
 * The data directory (persistence.ts): journal lines and torn tails, snapshots, and a
 * LocalBackend on the test fixture restarted on the same directory, in this process.
 */
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { defineSchema, defineTable } from "convex/server";
import { v } from "convex/values";
import { afterEach, beforeAll, describe, expect, test } from "vitest";
import { LocalBackend, type UdfResponse } from "./backend.js";
import { loadModules, type LoadedModules } from "./modules.js";
import {
  applyEntries,
  DataDir,
  emptyState,
  formatJournalLine,
  formatSnapshot,
  JournalCorruptError,
  parseSnapshot,
  readJournal,
  type JournalEntry,
} from "./persistence.js";
import { StorageKeys } from "./storage.js";

const REPO = resolve(import.meta.dirname, "..", "..");
const FIXTURE = join(REPO, "tests", "tools", "local_backend_fixture", "convex");

const entry = (n: number, writes: JournalEntry["w"], ts?: string): JournalEntry => ({
  n,
  c: n,
  ...(ts !== undefined ? { ts } : {}),
  w: writes,
});

describe("journal lines", () => {
  const lines = [
    entry(10001, [["010000blobs", { _id: "010000blobs", _creationTime: 1, data: "a" }]], "5"),
    entry(10002, [["010001blobs", { _id: "010001blobs", _creationTime: 2, data: "b" }]], "6"),
  ].map(formatJournalLine);

  test("complete lines are read back in order", () => {
    const { entries, droppedTail } = readJournal(Buffer.from(lines.join("")));
    expect(entries.map((e) => e.n)).toEqual([10001, 10002]);
    expect(droppedTail).toBeNull();
  });

  test("a half-written last line is dropped: that transaction never answered", () => {
    const torn = lines.join("") + lines[0].slice(0, 30);
    const { entries, droppedTail } = readJournal(Buffer.from(torn));
    expect(entries).toHaveLength(2);
    expect(droppedTail).toBe("an unterminated last line (30 bytes)");
  });

  test("a last line that fails its checksum is dropped too (its bytes were not all synced)", () => {
    const garbled = lines[1].replace('"b"', '"X"');
    const { entries, droppedTail } = readJournal(Buffer.from(lines[0] + garbled));
    expect(entries).toHaveLength(1);
    expect(droppedTail).toBe("a last line (2) that fails its checksum");
  });

  test("a bad line with good lines after it is corruption, not a torn tail", () => {
    const garbled = lines[0].replace('"a"', '"X"');
    expect(() => readJournal(Buffer.from(garbled + lines[1]))).toThrow(JournalCorruptError);
    expect(() => readJournal(Buffer.from(garbled + lines[1]))).toThrow(/journal line 1 is corrupt/);
  });

  test("applying entries sets final values, so applying them twice changes nothing", () => {
    const entries = [
      entry(10001, [["010000blobs", { _id: "010000blobs", _creationTime: 1, data: "a" }]], "5"),
      entry(
        10002,
        [
          ["010000blobs", null],
          ["010001blobs", { _id: "010001blobs", _creationTime: 2, data: "b" }],
        ],
        "9",
      ),
      entry(10004, []), // ids taken by a transaction that rolled back
    ];
    const once = emptyState();
    applyEntries(once, entries);
    const twice = emptyState();
    applyEntries(twice, entries);
    applyEntries(twice, entries);
    expect(twice).toEqual(once);
    expect([...once.documents.keys()]).toEqual(["010001blobs"]);
    expect(once.nextDocId).toBe(10004);
    expect(once.lastCommitTs).toBe(9n);
  });

  test("a snapshot reads back what was written, and a truncated one is refused", () => {
    const state = emptyState();
    applyEntries(state, [
      entry(10002, [["010001blobs", { _id: "010001blobs", _creationTime: 2, data: "b" }]], "9"),
    ]);
    const text = formatSnapshot(state);
    expect(parseSnapshot(text, "s")).toEqual(state);
    const cut = text.split("\n").slice(0, -2).join("\n");
    expect(() => parseSnapshot(cut, "s")).toThrow(/not a complete snapshot/);
  });
});

describe("a backend restarted on its data directory", () => {
  let loaded: LoadedModules;
  let dir: string;
  const open: DataDir[] = [];

  beforeAll(async () => {
    loaded = await loadModules(FIXTURE);
  });
  afterEach(() => {
    for (const d of open.splice(0)) d.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  async function start(
    modules: LoadedModules = loaded,
  ): Promise<{ backend: LocalBackend; stats: Awaited<ReturnType<LocalBackend["persistTo"]>> }> {
    const data = new DataDir(dir, (message) => {
      throw new Error(message);
    });
    open.push(data);
    const backend = new LocalBackend(modules, FIXTURE, REPO, {
      origin: "http://127.0.0.1:1",
      storageKeys: new StorageKeys(data.secret),
    });
    const stats = await backend.persistTo(data);
    return { backend, stats };
  }

  /** Stops using the directory as a crash would: no compaction, the lock left behind. */
  function crash(): void {
    open.splice(0);
  }

  async function call(
    backend: LocalBackend,
    path: string,
    kind: "query" | "mutation" | "action",
    args = {},
  ): Promise<UdfResponse> {
    return backend.run({ path, kind, args, admin: true, format: "encoded" });
  }
  const value = (r: UdfResponse): unknown => {
    if (r.status !== "success") throw new Error(r.errorMessage);
    return r.value;
  };

  test("documents, their creation times and stored files come back; ids are never reused", async () => {
    dir = mkdtempSync(join(tmpdir(), "local-backend-data-"));
    const first = await start();
    const a = value(await call(first.backend, "fixture:insertBlob", "mutation", { size: 3 }));
    const failed = await call(first.backend, "fixture:insertThenFail", "mutation");
    const rolledBack = /rolled back (\S+)/.exec(
      failed.status === "error" ? failed.errorMessage : "",
    )?.[1];
    expect(rolledBack).toBeDefined();
    const stored = value(
      await call(first.backend, "files:storeText", "action", {
        text: "kept",
        contentType: "text/plain",
      }),
    ) as { id: string; url: string };
    const before = value(await call(first.backend, "fixture:listBlobs", "query"));
    crash();

    const second = await start();
    expect(second.stats).toMatchObject({
      documents: 2,
      files: 1,
      journalEntries: 3,
      droppedTail: null,
    });
    expect(value(await call(second.backend, "fixture:listBlobs", "query"))).toEqual(before);
    expect(value(await call(second.backend, "files:readText", "action", { id: stored.id }))).toBe(
      "kept",
    );
    const uuid = stored.url.split("/").pop() as string;
    const file = await second.backend.readFile(uuid);
    expect(file?.bytes.toString()).toBe("kept");
    expect(file?.contentType).toBe("text/plain");

    const b = value(await call(second.backend, "fixture:insertBlob", "mutation", { size: 4 }));
    expect([a, rolledBack, stored.id]).not.toContain(b);
    expect(Number.parseInt(b as string, 10)).toBeGreaterThan(
      Number.parseInt(rolledBack as string, 10),
    );
  });

  test("a field a patch removed (set to undefined) stays removed after a restart", async () => {
    dir = mkdtempSync(join(tmpdir(), "local-backend-data-"));
    const first = await start();
    const id = value(await call(first.backend, "fixture:insertThenUnsetNote", "mutation"));
    const before = value(await call(first.backend, "fixture:getBlob", "query", { id }));
    expect(before).toMatchObject({ data: "kept" });
    expect(before).not.toHaveProperty("note");
    crash();

    const second = await start();
    expect(value(await call(second.backend, "fixture:getBlob", "query", { id }))).toEqual(before);
  });

  test("a crash mid-append loses only the unanswered write", async () => {
    dir = mkdtempSync(join(tmpdir(), "local-backend-data-"));
    const first = await start();
    for (let i = 0; i < 3; i++)
      value(await call(first.backend, "fixture:insertBlob", "mutation", { size: i }));
    crash();
    const torn = '0123456789abcdef {"n":99999,"c":0,"w":[["9';
    appendFileSync(join(dir, "journal.log"), torn);

    const second = await start();
    expect(second.stats.droppedTail).toBe(`an unterminated last line (${torn.length} bytes)`);
    expect(
      (value(await call(second.backend, "fixture:listBlobs", "query")) as unknown[]).length,
    ).toBe(3);
    // The start compacted: a snapshot holds the state and the journal is empty again.
    expect(readFileSync(join(dir, "journal.log"), "utf8")).toBe("");
    expect(readFileSync(join(dir, "snapshot.jsonl"), "utf8").split("\n")).toHaveLength(3 + 3);
  });

  test("files no document names are removed at start; deleted files stop being served", async () => {
    dir = mkdtempSync(join(tmpdir(), "local-backend-data-"));
    const first = await start();
    const kept = value(
      await call(first.backend, "files:storeText", "action", {
        text: "one",
        contentType: "text/plain",
      }),
    ) as { id: string };
    const gone = value(
      await call(first.backend, "files:storeText", "action", {
        text: "two",
        contentType: "text/plain",
      }),
    ) as { id: string; url: string };
    value(await call(first.backend, "files:remove", "mutation", { id: gone.id }));
    expect(await first.backend.readFile(gone.url.split("/").pop() as string)).toBeNull();
    expect(readdirSync(join(dir, "files"))).toHaveLength(2);
    crash();

    const second = await start();
    expect(second.stats.removedFiles).toBe(1);
    expect(readdirSync(join(dir, "files"))).toHaveLength(1);
    expect(value(await call(second.backend, "files:readText", "action", { id: kept.id }))).toBe(
      "one",
    );
  });

  test("data the schema no longer accepts stops the start, as a deploy would", async () => {
    dir = mkdtempSync(join(tmpdir(), "local-backend-data-"));
    const first = await start();
    value(await call(first.backend, "fixture:insertBlob", "mutation", { size: 2 }));
    crash();
    const stricter = {
      ...loaded,
      schema: defineSchema({ blobs: defineTable({ data: v.number() }) }),
    };
    await expect(start(stricter)).rejects.toThrow(
      /^Schema validation failed. Document with ID "\d+blobs" in table "blobs" does not match the schema/,
    );
  });

  test("a directory another live process holds is refused", () => {
    dir = mkdtempSync(join(tmpdir(), "local-backend-data-"));
    writeFileSync(join(dir, "LOCK"), `${process.ppid}\n`); // our parent: alive, not us
    expect(() => new DataDir(dir)).toThrow(
      `${dir} is in use by another local backend (pid ${process.ppid})`,
    );
    writeFileSync(join(dir, "LOCK"), "999999999\n"); // no such process: a stale lock
    open.push(new DataDir(dir));
    expect(existsSync(join(dir, "secret"))).toBe(true);
  });
});
