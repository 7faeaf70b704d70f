// Builds dist/inlet.min.js and fails past the size budget: size is design goal one.
import { build } from "esbuild";
import { sizes, report } from "./size.mjs";

const BUDGET_GZIP = 5 * 1024;

await build({
  entryPoints: ["src/index.js"],
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2018",
  outfile: "dist/inlet.min.js",
  legalComments: "none",
});
const s = sizes("dist/inlet.min.js");
console.log(report("dist/inlet.min.js", s));
if (s.gzip > BUDGET_GZIP) {
  console.error(`inlet.min.js is ${s.gzip} bytes gzipped; the budget is ${BUDGET_GZIP}`);
  process.exit(1);
}
