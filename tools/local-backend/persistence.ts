/**
 * Keeps the local backend's data on disk (LOCAL_BACKEND_DATA_DIR) so a restart keeps every
 * document and stored file, and ids are never handed out twice.
 *
 * Design: a write-ahead journal of committed writes, not of function calls. convex-test keeps its
 * database in a `DatabaseFake` object; every transaction that commits goes through its `commit`
 * method. We wrap that method: after a top-level commit, the documents it wrote (their committed
 * values, or null for a delete) and the id counter go to `journal.log` as one line, written and
 * fdatasync'd before `commit` returns, so before the function's answer is sent. Scheduled
 * functions, the mutations an action runs, and storage writes all commit through the same method,
 * so all of them are recorded. At start the state is rebuilt from `snapshot.jsonl` plus the
 * journal by putting the documents straight back into the fake database (no function runs), then
 * a fresh snapshot is written atomically and the journal emptied, so start-up reads each live
 * document once however long the history.
 *
 * Why not journal function calls and replay them? Replaying a call only reproduces its writes if
 * the code, the clock, randomness and the outside world are what they were: actions call out,
 * `Math.random` is not seeded by convex-test, a failed mutation still consumes ids, and the point
 * of a development backend is that the functions change between restarts. Replaying recorded
 * writes has none of those problems, as Convex's own persistence does not re-run functions.
 *
 * Each line is `<16 hex digits of SHA-256 of the JSON> <JSON>\n`. A crash can only tear the last
 * append (earlier ones were synced): a last line that is incomplete or fails its checksum is
 * dropped (its transaction never answered), while a bad line followed by good ones is corruption
 * and stops the start with the line number. A transaction that rolls back after taking ids
 * appends a line with only the counter, so those ids are not reused either.
 *
 * Files are stored content-addressed under `files/<sha256 hex>` by the storage syscalls, written
 * and synced before the `_storage` document that names them can commit; files no document names
 * are removed at start. A `LOCK` file holds the owner's pid: two servers never share a directory.
 *
 * This reaches into convex-test 0.0.70's internals (`DatabaseFake` fields, the transaction
 * manager's last commit timestamp). `reachInternals` checks they are all there and stops the
 * start with a clear message if convex-test changed, instead of persisting wrongly.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { createHash, randomBytes } from "node:crypto";
import {
  closeSync,
  existsSync,
  fdatasyncSync,
  fsyncSync,
  mkdirSync,
  openAsBlob,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { convexToJson, jsonToConvex, type JSONValue, type Value } from "convex/values";

// --- convex-test internals ---------------------------------------------------------------------

export type StoredDocument = { _id: string; _creationTime: number } & Record<string, Value>;

/** The fields of convex-test's DatabaseFake this module reads and writes. */
export interface FakeDatabase {
  _documents: Record<string, StoredDocument>;
  _tableIds: Map<string, Set<string>>;
  _storage: Record<string, Blob>;
  _nextDocId: number;
  _lastCreationTime: number;
  _writes: Array<Record<string, StoredDocument | null>>;
  commit(commitTs: bigint | null): void;
  rollbackWrites(): void;
  _validate(table: string, doc: Record<string, Value>): void;
}

export interface FakeTransactionManager {
  _lastCommitTs: bigint;
}

export interface ConvexTestInternals {
  db: FakeDatabase;
  transactions: FakeTransactionManager;
}

interface ConvexGlobalShape {
  components: Record<string, { db: unknown }>;
  transactionManager: unknown;
}

function looksLikeConvexGlobal(store: unknown): store is ConvexGlobalShape {
  return (
    store !== null &&
    typeof store === "object" &&
    "components" in store &&
    "transactionManager" in store &&
    typeof (store as { components: unknown }).components === "object"
  );
}

/**
 * Finds the database and transaction manager of a convexTest() instance. convex-test keeps them
 * in an AsyncLocalStorage store it enters on every call; we watch `AsyncLocalStorage.run` for the
 * length of one harmless call (`finishInProgressScheduledFunctions`) to see that store.
 */
export async function reachInternals(t: {
  finishInProgressScheduledFunctions(): Promise<void>;
}): Promise<ConvexTestInternals> {
  const proto = AsyncLocalStorage.prototype as unknown as {
    run: (this: AsyncLocalStorage<unknown>, store: unknown, ...rest: unknown[]) => unknown;
  };
  const original = proto.run;
  let found: ConvexGlobalShape | undefined;
  proto.run = function (this: AsyncLocalStorage<unknown>, store: unknown, ...rest: unknown[]) {
    if (found === undefined && looksLikeConvexGlobal(store)) found = store;
    return original.call(this, store, ...rest);
  };
  try {
    await t.finishInProgressScheduledFunctions();
  } finally {
    proto.run = original;
  }
  const problem = (what: string): Error =>
    new Error(
      `LOCAL_BACKEND_DATA_DIR needs convex-test 0.0.70's internals, and ${what}: the installed ` +
        "convex-test changed; update tools/local-backend/persistence.ts or pin convex-test",
    );
  if (found === undefined) throw problem("its state could not be found");
  const db = found.components[""]?.db as Partial<FakeDatabase> | undefined;
  const transactions = found.transactionManager as Partial<FakeTransactionManager>;
  if (db === undefined) throw problem("the root component has no database");
  const checks: Array<[string, boolean]> = [
    ["_documents", typeof db._documents === "object" && db._documents !== null],
    ["_tableIds", db._tableIds instanceof Map],
    ["_storage", typeof db._storage === "object" && db._storage !== null],
    ["_nextDocId", typeof db._nextDocId === "number"],
    ["_lastCreationTime", typeof db._lastCreationTime === "number"],
    ["_writes", Array.isArray(db._writes)],
    ["commit", typeof db.commit === "function"],
    ["rollbackWrites", typeof db.rollbackWrites === "function"],
    ["_validate", typeof db._validate === "function"],
    ["_lastCommitTs", typeof transactions?._lastCommitTs === "bigint"],
  ];
  const missing = checks.filter(([, ok]) => !ok).map(([name]) => name);
  if (missing.length > 0) throw problem(`these are missing: ${missing.join(", ")}`);
  return { db: db as FakeDatabase, transactions: transactions as FakeTransactionManager };
}

/** convex-test ids are a zero-padded counter followed by the table name. */
export function tableOfId(id: string): string {
  return id.replace(/^[0-9]+/, "");
}

// --- Journal lines -----------------------------------------------------------------------------

/** One committed transaction (or, with `w` empty, ids taken by one that rolled back). */
export interface JournalEntry {
  /** The id counter after the transaction. */
  n: number;
  /** The last `_creationTime` handed out. */
  c: number;
  /** The commit timestamp (nanoseconds, decimal), absent for a rollback. */
  ts?: string;
  /** Each written document's id and committed value (convexToJson), or null if deleted. */
  w: Array<[string, JSONValue | null]>;
}

function checksum(json: string): string {
  return createHash("sha256").update(json).digest("hex").slice(0, 16);
}

export function formatJournalLine(entry: JournalEntry): string {
  const json = JSON.stringify(entry);
  return `${checksum(json)} ${json}\n`;
}

function parseJournalLine(line: string): JournalEntry | null {
  const space = line.indexOf(" ");
  if (space !== 16) return null;
  const json = line.slice(17);
  if (checksum(json) !== line.slice(0, 16)) return null;
  try {
    const entry = JSON.parse(json) as JournalEntry;
    return typeof entry.n === "number" && Array.isArray(entry.w) ? entry : null;
  } catch {
    return null;
  }
}

export class JournalCorruptError extends Error {}

/**
 * Reads a journal. A torn tail (an unterminated last line, or a last line that fails its
 * checksum) is dropped and reported; a bad line followed by more lines throws.
 */
export function readJournal(bytes: Buffer): {
  entries: JournalEntry[];
  droppedTail: string | null;
} {
  const entries: JournalEntry[] = [];
  let start = 0;
  let lineNo = 0;
  while (start < bytes.length) {
    const newline = bytes.indexOf(0x0a, start);
    lineNo += 1;
    if (newline < 0) {
      return { entries, droppedTail: `an unterminated last line (${bytes.length - start} bytes)` };
    }
    const entry = parseJournalLine(bytes.subarray(start, newline).toString("utf8"));
    start = newline + 1;
    if (entry === null) {
      if (start >= bytes.length) {
        return { entries, droppedTail: `a last line (${lineNo}) that fails its checksum` };
      }
      throw new JournalCorruptError(
        `journal line ${lineNo} is corrupt and later lines follow it; refusing to guess`,
      );
    }
    entries.push(entry);
  }
  return { entries, droppedTail: null };
}

// --- State -------------------------------------------------------------------------------------

/** Documents by id plus the counters, as rebuilt from a snapshot and a journal. */
export interface PersistedState {
  documents: Map<string, JSONValue>;
  nextDocId: number;
  lastCreationTime: number;
  lastCommitTs: bigint;
}

export function emptyState(): PersistedState {
  return { documents: new Map(), nextDocId: 0, lastCreationTime: 0, lastCommitTs: 0n };
}

/** Applies journal entries in order (applying one twice is harmless: each sets final values). */
export function applyEntries(state: PersistedState, entries: JournalEntry[]): void {
  for (const entry of entries) {
    for (const [id, doc] of entry.w) {
      if (doc === null) state.documents.delete(id);
      else state.documents.set(id, doc);
    }
    state.nextDocId = Math.max(state.nextDocId, entry.n);
    state.lastCreationTime = Math.max(state.lastCreationTime, entry.c);
    if (entry.ts !== undefined) {
      const ts = BigInt(entry.ts);
      if (ts > state.lastCommitTs) state.lastCommitTs = ts;
    }
  }
}

const SNAPSHOT_FORMAT = "jangar-local-backend-snapshot";

export function formatSnapshot(state: PersistedState): string {
  const header = {
    format: SNAPSHOT_FORMAT,
    version: 1,
    n: state.nextDocId,
    c: state.lastCreationTime,
    ts: state.lastCommitTs.toString(),
  };
  const lines = [JSON.stringify(header)];
  for (const doc of state.documents.values()) lines.push(JSON.stringify(doc));
  lines.push(JSON.stringify({ end: state.documents.size }));
  return `${lines.join("\n")}\n`;
}

export function parseSnapshot(text: string, file: string): PersistedState {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  const bad = (why: string): Error => new Error(`${file} is not a complete snapshot: ${why}`);
  if (lines.length < 2) throw bad("too short");
  const header = JSON.parse(lines[0]) as {
    format?: string;
    version?: number;
    n: number;
    c: number;
    ts: string;
  };
  if (header.format !== SNAPSHOT_FORMAT || header.version !== 1) throw bad("unknown format");
  const end = JSON.parse(lines[lines.length - 1]) as { end?: number };
  if (end.end !== lines.length - 2) throw bad("the end marker does not match the document count");
  const state: PersistedState = {
    documents: new Map(),
    nextDocId: header.n,
    lastCreationTime: header.c,
    lastCommitTs: BigInt(header.ts),
  };
  for (const line of lines.slice(1, -1)) {
    const doc = JSON.parse(line) as { _id: string };
    state.documents.set(doc._id, doc as unknown as JSONValue);
  }
  return state;
}

// --- The data directory ------------------------------------------------------------------------

function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes a file so that it is either absent or complete: temp file, fsync, rename, fsync dir. */
function writeAtomically(dir: string, name: string, data: string | Buffer): void {
  const temp = join(dir, `.${name}.${randomBytes(6).toString("hex")}.tmp`);
  const fd = openSync(temp, "w", 0o600);
  try {
    let offset = 0;
    const buffer = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    while (offset < buffer.length) offset += writeSync(fd, buffer, offset);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, join(dir, name));
  fsyncDir(dir);
}

/** Whether `pid` is a running process (a zombie, killed but not yet reaped, is not). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

export interface OpenStats {
  documents: number;
  files: number;
  journalEntries: number;
  droppedTail: string | null;
  removedFiles: number;
  ms: number;
}

/**
 * A data directory: `LOCK`, `secret` (32 random bytes, hex; signs upload tokens and file URLs),
 * `snapshot.jsonl`, `journal.log` and `files/`.
 */
export class DataDir {
  readonly secret: Buffer;
  readonly filesDir: string;
  private readonly lockFile: string;
  private journalFd: number | null = null;
  private lastCounter = -1;

  constructor(
    readonly dir: string,
    private readonly onFatal: (message: string) => never = (message) => {
      process.stderr.write(`local backend: ${message}\n`);
      process.exit(1);
    },
  ) {
    this.filesDir = join(dir, "files");
    mkdirSync(this.filesDir, { recursive: true });
    this.lockFile = join(dir, "LOCK");
    this.lock();
    const secretFile = join(dir, "secret");
    if (!existsSync(secretFile)) writeAtomically(dir, "secret", randomBytes(32).toString("hex"));
    this.secret = Buffer.from(readFileSync(secretFile, "utf8").trim(), "hex");
  }

  private lock(): void {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(this.lockFile, "wx", 0o600);
        writeSync(fd, `${process.pid}\n`);
        closeSync(fd);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        const pid = Number(readFileSync(this.lockFile, "utf8").trim());
        if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
          throw new Error(
            `${this.dir} is in use by another local backend (pid ${pid}); ` +
              `if that process is not a local backend, delete ${this.lockFile}`,
          );
        }
        unlinkSync(this.lockFile); // left by a process that is gone
      }
    }
    throw new Error(`could not lock ${this.dir}`);
  }

  /** Releases the lock and the journal (the process is stopping). */
  close(): void {
    if (this.journalFd !== null) closeSync(this.journalFd);
    this.journalFd = null;
    try {
      if (readFileSync(this.lockFile, "utf8").trim() === String(process.pid))
        unlinkSync(this.lockFile);
    } catch {
      // already gone
    }
  }

  /** The state on disk: the snapshot, if any, plus the journal. */
  load(): { state: PersistedState; journalEntries: number; droppedTail: string | null } {
    const snapshotFile = join(this.dir, "snapshot.jsonl");
    const state = existsSync(snapshotFile)
      ? parseSnapshot(readFileSync(snapshotFile, "utf8"), snapshotFile)
      : emptyState();
    const journalFile = join(this.dir, "journal.log");
    const { entries, droppedTail } = existsSync(journalFile)
      ? readJournal(readFileSync(journalFile))
      : { entries: [], droppedTail: null };
    applyEntries(state, entries);
    return { state, journalEntries: entries.length, droppedTail };
  }

  /** Writes `state` as the snapshot, then starts an empty journal. */
  compact(state: PersistedState): void {
    writeAtomically(this.dir, "snapshot.jsonl", formatSnapshot(state));
    writeAtomically(this.dir, "journal.log", "");
    this.lastCounter = state.nextDocId;
  }

  /** Opens the journal for appending (after `compact`). */
  openJournal(): void {
    this.journalFd = openSync(join(this.dir, "journal.log"), "a", 0o600);
  }

  /** Appends one entry and syncs it; a failure stops the process (see the module comment). */
  append(entry: JournalEntry): void {
    if (this.journalFd === null) this.onFatal("the journal is not open");
    try {
      const buffer = Buffer.from(formatJournalLine(entry), "utf8");
      let offset = 0;
      while (offset < buffer.length) offset += writeSync(this.journalFd as number, buffer, offset);
      fdatasyncSync(this.journalFd as number);
      this.lastCounter = entry.n;
    } catch (e) {
      this.onFatal(
        `could not write the journal in ${this.dir} (${e instanceof Error ? e.message : String(e)}); ` +
          "stopping rather than answer for a write that is not on disk",
      );
    }
  }

  get counterOnDisk(): number {
    return this.lastCounter;
  }

  fileName(sha256Base64: string): string {
    return join(this.filesDir, Buffer.from(sha256Base64, "base64").toString("hex"));
  }

  /** Stores a file's bytes under their SHA-256 (synced) before a `_storage` document names them. */
  keepBytes(bytes: Buffer): void {
    const hex = createHash("sha256").update(bytes).digest("hex");
    if (!existsSync(join(this.filesDir, hex))) writeAtomically(this.filesDir, hex, bytes);
  }

  /** Deletes stored files no document names (left by transactions that rolled back or deletes). */
  collectGarbage(keep: Set<string>): number {
    let removed = 0;
    for (const name of readdirSync(this.filesDir)) {
      if (!keep.has(name)) {
        unlinkSync(join(this.filesDir, name));
        removed += 1;
      }
    }
    return removed;
  }
}

/**
 * Restores the data directory's state into convex-test's database, compacts it, and from then
 * on journals every commit. Documents of tables in the schema are checked against it, as a
 * deploy would: data the new schema does not accept stops the start.
 */
export async function attachPersistence(
  internals: ConvexTestInternals,
  data: DataDir,
): Promise<OpenStats> {
  const started = performance.now();
  const { db, transactions } = internals;
  const { state, journalEntries, droppedTail } = data.load();

  const keepFiles = new Set<string>();
  let files = 0;
  for (const [id, json] of state.documents) {
    const doc = jsonToConvex(json) as unknown as StoredDocument;
    const table = tableOfId(id);
    if (!table.startsWith("_")) {
      const { _id, _creationTime, ...fields } = doc;
      try {
        db._validate(table, fields);
      } catch (e) {
        throw new Error(
          `Schema validation failed. Document with ID "${id}" in table "${table}" does not match ` +
            `the schema: ${e instanceof Error ? e.message : String(e)}\nThe data in ${data.dir} ` +
            "was written by earlier functions: change the schema to accept it, or start with an " +
            "empty LOCAL_BACKEND_DATA_DIR.",
          { cause: e },
        );
      }
    }
    db._documents[id] = doc;
    let ids = db._tableIds.get(table);
    if (ids === undefined) {
      ids = new Set();
      db._tableIds.set(table, ids);
    }
    ids.add(id);
    if (table === "_storage" && typeof doc.sha256 === "string") {
      const file = data.fileName(doc.sha256);
      keepFiles.add(Buffer.from(doc.sha256, "base64").toString("hex"));
      if (existsSync(file)) {
        const type = typeof doc.contentType === "string" ? doc.contentType : "";
        db._storage[id] = await openAsBlob(file, { type });
        files += 1;
      } else {
        process.stderr.write(
          `local backend: the bytes of stored file ${id} are missing (${file})\n`,
        );
      }
    }
  }
  db._nextDocId = Math.max(db._nextDocId, state.nextDocId);
  db._lastCreationTime = Math.max(db._lastCreationTime, state.lastCreationTime);
  if (state.lastCommitTs > transactions._lastCommitTs)
    transactions._lastCommitTs = state.lastCommitTs;
  state.nextDocId = db._nextDocId;

  data.compact(state);
  const removedFiles = data.collectGarbage(keepFiles);
  data.openJournal();

  const commit = db.commit.bind(db);
  db.commit = (commitTs: bigint | null): void => {
    const topLevel = db._writes.length === 1;
    const ids = topLevel ? Object.keys(db._writes[0]) : [];
    commit(commitTs);
    if (!topLevel || (ids.length === 0 && db._nextDocId === data.counterOnDisk)) return;
    data.append({
      n: db._nextDocId,
      c: db._lastCreationTime,
      ...(commitTs !== null ? { ts: commitTs.toString() } : {}),
      w: ids.map((id): [string, JSONValue | null] => {
        const doc = db._documents[id];
        return [id, doc === undefined ? null : convexToJson(doc as Value)];
      }),
    });
  };
  const rollback = db.rollbackWrites.bind(db);
  db.rollbackWrites = (): void => {
    const topLevel = db._writes.length === 1;
    rollback();
    if (topLevel && db._nextDocId !== data.counterOnDisk) {
      data.append({ n: db._nextDocId, c: db._lastCreationTime, w: [] });
    }
  };

  return {
    documents: state.documents.size,
    files,
    journalEntries,
    droppedTail,
    removedFiles,
    ms: performance.now() - started,
  };
}
