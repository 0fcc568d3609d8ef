/**
 * The naive variant for `npm run bench`: a small Nest 12 app on Fastify (bench/naive/) that
 * buffers each body, `JSON.parse`s it line by line and appends CSV rows with `fs.appendFile`, run
 * as a node:cluster with one worker per core so it gets the same cores as the service.
 *
 * PORT, HOST (default 127.0.0.1), CSV_DIR (required), CSV_PREFIX (default nyc_taxi), WORKERS.
 */
import 'reflect-metadata';
import cluster from 'node:cluster';
import { mkdirSync } from 'node:fs';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { runPrimary } from './cluster-primary.js';
import { NaiveModule } from './naive/naive.module.js';

/** As large as the service's MAX_BODY_BYTES default: the body is held whole. */
const BODY_LIMIT = 100 * 1024 * 1024;

async function startWorker(): Promise<void> {
  const csvDir = process.env.CSV_DIR;
  if (csvDir === undefined) throw new Error('CSV_DIR is required');
  mkdirSync(csvDir, { recursive: true });
  const module = NaiveModule.forRoot({
    csvDir,
    csvPrefix: process.env.CSV_PREFIX ?? 'nyc_taxi',
    columns: ['vendorid', 'tpep_pickup_datetime', 'trip_distance', 'total_amount'],
  });
  const app = await NestFactory.create<NestFastifyApplication>(
    module,
    new FastifyAdapter({ bodyLimit: BODY_LIMIT }),
    { bodyParser: false, logger: ['error', 'warn'] },
  );
  const fastify = app.getHttpAdapter().getInstance();
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser(
    '*',
    { parseAs: 'buffer', bodyLimit: BODY_LIMIT },
    (_request, body, done) => done(null, body),
  );
  await app.listen(Number(process.env.PORT ?? 8891), process.env.HOST ?? '127.0.0.1');
  process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
}

if (cluster.isPrimary) {
  runPrimary();
} else {
  startWorker().catch((err: unknown) => {
    process.stderr.write(`naive worker failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
