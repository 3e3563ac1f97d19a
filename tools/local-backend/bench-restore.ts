/**
 * Measures what LOCAL_BACKEND_DATA_DIR costs: N mutations with the journal (each synced before
 * it answers) against N in memory, then the start-up restore of a data directory holding those N
 * journal entries, and the next start from the snapshot that restore wrote.
 *
 *   node_modules/.bin/tsx tools/local-backend/bench-restore.ts [N, default 5000]
 *
 * Runs the test fixture's `fixture:insertBlob` (one ~100-byte document per mutation) in this
 * process, without HTTP, in a temporary directory it removes afterwards.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { randomBytes } from "node:crypto";
import { LocalBackend } from "./backend.js";
import { loadModules, type LoadedModules } from "./modules.js";
import { DataDir } from "./persistence.js";
import { StorageKeys } from "./storage.js";

const REPO = resolve(import.meta.dirname, "..", "..");
const FIXTURE = join(REPO, "tests", "tools", "local_backend_fixture", "convex");

function backendOn(loaded: LoadedModules, secret: Buffer): LocalBackend {
  return new LocalBackend(loaded, FIXTURE, REPO, {
    origin: "http://127.0.0.1:1",
    storageKeys: new StorageKeys(secret),
  });
}

async function insert(backend: LocalBackend, n: number): Promise<number> {
  const started = performance.now();
  for (let i = 0; i < n; i++) {
    const answer = await backend.run({
      path: "fixture:insertBlob",
      kind: "mutation",
      args: { size: 100 },
      admin: false,
      format: "clean",
    });
    if (answer.status !== "success") throw new Error(answer.errorMessage);
  }
  return performance.now() - started;
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 5000);
  const loaded = await loadModules(FIXTURE);
  const dir = mkdtempSync(join(tmpdir(), "local-backend-bench-"));
  try {
    const inMemoryMs = await insert(backendOn(loaded, randomBytes(32)), n);

    const first = new DataDir(dir);
    const writer = backendOn(loaded, first.secret);
    await writer.persistTo(first);
    const journaledMs = await insert(writer, n);
    first.close(); // as a stop or a crash leaves it: the journal holds all n entries
    const journalBytes = statSync(join(dir, "journal.log")).size;

    const second = new DataDir(dir);
    const replay = await backendOn(loaded, second.secret).persistTo(second);
    second.close();
    const third = new DataDir(dir);
    const fromSnapshot = await backendOn(loaded, third.secret).persistTo(third);
    third.close();

    const rate = (ms: number): string => `${Math.round((n / ms) * 1000)}/s`;
    console.log(
      `${n} mutations in memory:        ${inMemoryMs.toFixed(0)} ms (${rate(inMemoryMs)})`,
    );
    console.log(
      `${n} mutations with the journal: ${journaledMs.toFixed(0)} ms (${rate(journaledMs)})`,
    );
    console.log(`journal: ${journalBytes} bytes`);
    console.log(
      `restore from ${replay.journalEntries} journal entries: ${replay.ms.toFixed(0)} ms ` +
        `(${replay.documents} documents; includes writing the snapshot)`,
    );
    console.log(
      `restore from the snapshot: ${fromSnapshot.ms.toFixed(0)} ms (${fromSnapshot.documents} documents)`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
