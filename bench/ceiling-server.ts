/**
 * The ceiling for `npm run bench`: a node:http cluster (one worker per core) that only drains
 * each request body and answers a small JSON 200 with the byte count. No framework, no parsing,
 * no file: what Node's HTTP stack alone costs on this machine, measured in the same run.
 *
 * PORT, HOST (default 127.0.0.1); WORKERS (default: one per core).
 */
import cluster from 'node:cluster';
import { createServer } from 'node:http';
import { runPrimary } from './cluster-primary.js';

if (cluster.isPrimary) {
  runPrimary();
} else {
  const server = createServer((req, res) => {
    let bytes = 0;
    req.on('data', (chunk: Buffer) => (bytes += chunk.length));
    req.on('end', () => {
      const body = `{"result":{"status":"ok","stats":{"bytes":${bytes}}}}`;
      res.writeHead(200, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(body),
      });
      res.end(body);
    });
  });
  server.listen(Number(process.env.PORT ?? 8890), process.env.HOST ?? '127.0.0.1');
  process.once('SIGTERM', () => server.close(() => process.exit(0)));
}
