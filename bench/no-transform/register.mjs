/**
 * `node --import ./bench/no-transform/register.mjs dist/main.js`: the built service with its
 * NDJSON → CSV transform replaced by a stub that reads nothing and writes nothing, for
 * `npm run bench:breakdown` (what the service costs without the transform). Bench only: the
 * service itself has no such switch.
 */
import { register } from 'node:module';

register('./hooks.mjs', import.meta.url);
