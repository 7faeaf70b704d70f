// Sizes of a file: raw, gzip -9, brotli 11. `node size.mjs <file>...` prints them.
import { readFileSync } from "node:fs";
import { gzipSync, brotliCompressSync, constants } from "node:zlib";

export const sizes = (path) => {
  const data = readFileSync(path);
  return {
    raw: data.length,
    gzip: gzipSync(data, { level: 9 }).length,
    brotli: brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }).length,
  };
};

export const report = (path, s) => `${path}: ${s.raw} bytes raw, ${s.gzip} gzip -9, ${s.brotli} brotli 11`;

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const path of process.argv.slice(2)) console.log(report(path, sizes(path)));
}
