// Downloads repos with @huggingface/hub's own snapshotDownload into a cache dir.
//
//   node download.mjs SPEC_JSON
//
// SPEC_JSON: {"hubUrl": "http://127.0.0.1:PORT", "cacheDir": "/abs/cache",
//             "delayMs": 0, "items": [{"type": "model", "name": "org/repo", "revision": "main"}]}
// delayMs (optional) delays every HTTP request, like a slow network, through the
// client's documented `fetch` parameter; nothing else about the requests changes.
// Prints one JSON array on stdout: [{"type", "name", "revision", "snapshot"}].
// The library's own logging (console.debug "Downloading ...") goes to stderr.
import { snapshotDownload } from "@huggingface/hub";

for (const level of ["log", "debug", "info", "warn"]) {
	console[level] = (...args) => process.stderr.write(args.map(String).join(" ") + "\n");
}

const spec = JSON.parse(process.argv[2] ?? "{}");
if (!spec.hubUrl || !spec.cacheDir || !Array.isArray(spec.items)) {
	process.stderr.write("usage: node download.mjs '{\"hubUrl\":...,\"cacheDir\":...,\"items\":[...]}'\n");
	process.exit(2);
}
const delayMs = Number(spec.delayMs ?? 0);
const slowFetch = async (input, init) => {
	if (delayMs > 0) {
		await new Promise((resolve) => setTimeout(resolve, delayMs));
	}
	return fetch(input, init);
};

const out = [];
for (const item of spec.items) {
	const snapshot = await snapshotDownload({
		repo: { type: item.type ?? "model", name: item.name },
		revision: item.revision,
		hubUrl: spec.hubUrl,
		cacheDir: spec.cacheDir,
		...(delayMs > 0 ? { fetch: slowFetch } : {}),
	});
	out.push({ type: item.type ?? "model", name: item.name, revision: item.revision ?? "main", snapshot });
}
process.stdout.write(JSON.stringify(out) + "\n");
