/**
 * pm2: one worker per core in cluster mode (SPEC §2, §7). `npm start` runs it with pm2-runtime.
 * The project is an ES module package; pm2 loads this file with require(), which Node ≥ 20.19
 * allows for ES modules, and reads `apps` from its exports.
 */
const instances =
  process.env.INSTANCES && process.env.INSTANCES !== 'max' ? Number(process.env.INSTANCES) : 'max';
// glibc's heap trim threshold (src/runtime/malloc-tuning.ts): glibc reads it only when a process starts,
// so it must be in the environment pm2 forks the workers with, not in `env` below (pm2 applies
// that inside the worker). pm2-runtime (`npm start`) loads this file before it forks, so this
// reaches its workers; a pm2 daemon started earlier does not see it (docs/OPERATIONS.md, "Running it").
process.env.MALLOC_TRIM_THRESHOLD_ ??= String(32 * 1024 * 1024);
const shutdownTimeoutMs = Number(process.env.SHUTDOWN_TIMEOUT_MS ?? 10000);
const shutdownDelayMs = Number(process.env.SHUTDOWN_DELAY_MS ?? 0);

export const apps = [
  {
    name: 'ndjson-ingest',
    script: 'dist/main.js',
    exec_mode: 'cluster',
    instances,
    // The worker calls process.send('ready') after listen; pm2 waits for it on start and reload.
    wait_ready: true,
    listen_timeout: 15000,
    // Longer than the lame-duck period and the drain (SHUTDOWN_DELAY_MS + SHUTDOWN_TIMEOUT_MS +
    // keep-alive grace), so pm2 never SIGKILLs a worker that is still answering.
    kill_timeout: shutdownDelayMs + shutdownTimeoutMs + 5000,
    max_memory_restart: '512M',
    // No node_args: each worker sets V8's heap growth itself (src/runtime/heap-tuning.ts, docs/OPERATIONS.md "Heap
    // growth"). `node_args: ['--heap-growing-percent=N']` here would override it.
    merge_logs: true,
    time: false,
    env: { NODE_ENV: 'production' },
  },
];

export default { apps };
