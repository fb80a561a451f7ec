// Prints @huggingface/hub's own scanCacheDir(CACHE_DIR) as JSON.
//
//   node scan.mjs CACHE_DIR
//
// Dates become ISO strings (Date.prototype.toJSON); warnings, which are Error
// objects, become {"name", "message"}.
import { scanCacheDir } from "@huggingface/hub";

const cacheDir = process.argv[2];
if (!cacheDir) {
	process.stderr.write("usage: node scan.mjs CACHE_DIR\n");
	process.exit(2);
}
const info = await scanCacheDir(cacheDir);
const doc = {
	...info,
	warnings: info.warnings.map((w) => ({ name: w?.name ?? "Error", message: String(w?.message ?? w) })),
};
process.stdout.write(JSON.stringify(doc, null, 1) + "\n");
