import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { sizes } from "../size.mjs";

test("the built tag exists and is within 5 KB gzipped", () => {
  assert.ok(existsSync("dist/inlet.min.js"), "run `npm run build` first (make test does)");
  const s = sizes("dist/inlet.min.js");
  assert.ok(s.gzip <= 5 * 1024, `${s.gzip} bytes gzipped`);
});
