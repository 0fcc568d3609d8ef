/** Module resolution hook: dist/ingest/core/ndjson-csv.js → ./ndjson-csv-stub.mjs. */
const STUB = new URL('./ndjson-csv-stub.mjs', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context);
  return resolved.url.endsWith('/dist/ingest/core/ndjson-csv.js')
    ? { ...resolved, url: STUB }
    : resolved;
}
