import { describe, expect, test } from "vitest";
import { exportValue, formatSize, parseFormat, writeJson } from "./wire.js";

describe("writeJson", () => {
  test("writes every number as a float, as Convex's backend does", () => {
    expect(writeJson({ a: 1, b: -2, c: 1.5, d: 0, e: -0, f: 1e21, g: [3] })).toBe(
      '{"a":1.0,"b":-2.0,"c":1.5,"d":0.0,"e":-0.0,"f":1e+21,"g":[3.0]}',
    );
  });

  test("is valid JSON for strings, nulls and booleans", () => {
    const tree = { s: 'quote " and \u2028 and \ud800', n: null, t: true, f: false };
    expect(JSON.parse(writeJson(tree))).toEqual(tree);
  });

  test("refuses non-finite numbers instead of writing bad JSON", () => {
    expect(() => writeJson(NaN)).toThrow(/non-finite/);
  });
});

describe("exportValue", () => {
  const value = { i: 42n, b: new Uint8Array([1, 2]).buffer, nan: NaN, neg: -0, n: 3 };

  test("encoded keeps every type (what json_to_convex decodes)", () => {
    expect(exportValue(value, "encoded")).toEqual({
      i: { $integer: "KgAAAAAAAAA=" },
      b: { $bytes: "AQI=" },
      nan: { $float: "AAAAAAAA+H8=" },
      neg: { $float: "AAAAAAAAAIA=" },
      n: 3,
    });
  });

  test("clean is the readable export", () => {
    expect(exportValue(value, "clean")).toEqual({ i: "42", b: "AQI=", nan: "NaN", neg: -0, n: 3 });
  });
});

test("parseFormat knows the backend's names and aliases", () => {
  expect(parseFormat("json")).toBe("clean");
  expect(parseFormat("convex_clean_json")).toBe("clean");
  expect(parseFormat("convex_encoded_json")).toBe("encoded");
  expect(parseFormat("convex_json")).toBe("encoded");
  expect(parseFormat("xml")).toBeNull();
});

test("formatSize prints binary units like humansize", () => {
  expect(formatSize(100)).toBe("100 B");
  expect(formatSize(16 * 1024 * 1024)).toBe("16 MiB");
  expect(formatSize(1.05 * 1024 * 1024)).toBe("1.05 MiB");
});
