/**
 * Convex's HTTP wire format, as the open-source backend writes it.
 *
 * Two value formats exist (crates/value export.rs): `convex_encoded_json` (alias `convex_json`),
 * the lossless encoding the WebSocket protocol and `convexToJson` use (int64 as `{"$integer"}`,
 * bytes as `{"$bytes"}`, NaN/Infinity/-0 as `{"$float"}`), and `json` (alias
 * `convex_clean_json`), a lossy readable export (int64 as a decimal string, bytes as base64,
 * NaN/Infinity as strings). Without a `format` the backend answers modern clients in `json`.
 *
 * Every Convex `number` is a float64, and the backend (Rust, serde_json) writes a whole float as
 * `1.0`, never `1`. Clients depend on that: the Python `convex` package's `json_to_convex`
 * rejects a bare `1`. `JSON.stringify` drops the `.0`, so this module writes JSON itself.
 */
import { Base64, convexToJson, type Value } from "convex/values";

export type ValueFormat = "encoded" | "clean";

/** Parses a request's `format` the way the backend does; `null` means unrecognized. */
export function parseFormat(format: unknown): ValueFormat | null {
  switch (format) {
    case "convex_encoded_json":
    case "convex_json":
      return "encoded";
    case "json":
    case "convex_clean_json":
      return "clean";
    default:
      return null;
  }
}

/** A JSON tree whose numbers are still JS numbers (written as floats by `writeJson`). */
export type JsonTree = null | boolean | number | string | JsonTree[] | { [key: string]: JsonTree };

function toClean(value: Value): JsonTree {
  if (value === null || typeof value === "boolean" || typeof value === "string") return value;
  if (typeof value === "number") {
    if (Number.isNaN(value)) return "NaN";
    if (value === Infinity) return "Infinity";
    if (value === -Infinity) return "-Infinity";
    return value;
  }
  if (typeof value === "bigint") return value.toString();
  if (value instanceof ArrayBuffer) return Base64.fromByteArray(new Uint8Array(value));
  if (Array.isArray(value)) return value.map(toClean);
  const out: { [key: string]: JsonTree } = {};
  for (const [k, v] of Object.entries(value)) {
    if (v !== undefined) out[k] = toClean(v);
  }
  return out;
}

/** Exports a Convex value in the requested format. Throws on values Convex cannot hold. */
export function exportValue(value: Value, format: ValueFormat): JsonTree {
  // convexToJson also validates (undefined, functions, class instances are not Convex values).
  const encoded = convexToJson(value) as JsonTree;
  return format === "encoded" ? encoded : toClean(value);
}

function writeNumber(n: number): string {
  if (!Number.isFinite(n)) {
    // Unreachable for exported values (special floats are encoded), but never emit bad JSON.
    throw new Error(`cannot write non-finite number ${n} as JSON`);
  }
  if (Object.is(n, -0)) return "-0.0";
  const text = String(n);
  return /[.eE]/.test(text) ? text : `${text}.0`;
}

/** Serializes a JSON tree, writing every number as a float (`1.0`, `1.5`, `1e+21`). */
export function writeJson(tree: JsonTree): string {
  const parts: string[] = [];
  const write = (node: JsonTree): void => {
    if (node === null) parts.push("null");
    else if (typeof node === "boolean") parts.push(node ? "true" : "false");
    else if (typeof node === "number") parts.push(writeNumber(node));
    else if (typeof node === "string") parts.push(JSON.stringify(node));
    else if (Array.isArray(node)) {
      parts.push("[");
      node.forEach((item, i) => {
        if (i > 0) parts.push(",");
        write(item);
      });
      parts.push("]");
    } else {
      parts.push("{");
      let first = true;
      for (const [key, item] of Object.entries(node)) {
        if (!first) parts.push(",");
        first = false;
        parts.push(JSON.stringify(key), ":");
        write(item);
      }
      parts.push("}");
    }
  };
  write(tree);
  return parts.join("");
}

/** Sizes the way the backend prints them (humansize, binary units): `16 MiB`, `1.05 MiB`. */
export function formatSize(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const text = unit === 0 ? String(value) : value.toFixed(2).replace(/\.?0+$/, "");
  return `${text} ${units[unit]}`;
}
