/**
 * Starts one worker: `node dist/main.js` alone, or many under pm2 (`npm start`).
 */
import 'reflect-metadata';
import cluster from 'node:cluster';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Server, Socket } from 'node:net';
import { join } from 'node:path';
import { config as loadDotenv } from 'dotenv';
import { ConsoleLogger, Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { LogController } from 'fastify';
import pino from 'pino';
import { AppModule } from './app.module.js';
import { ConnectionBalance } from './runtime/connection-balance.js';
import { EventLoopPressure } from './runtime/event-loop-pressure.js';
import { LoadShedder } from './runtime/load-shedder.js';
import { ConfigError, loadConfig, type IngestConfig } from './config/config.js';
import { errorBody } from './http/errors.js';
import { markClosing, requestId } from './http/http-answers.js';
import { ingestTarget } from './ingest/ingest.controller.js';
import { IngestService } from './ingest/ingest.service.js';
import { installRequestGate } from './http/request-gate.js';
import { tuneHeapGrowth } from './runtime/heap-tuning.js';
import { mallocTrimNotice, mallocTrimThresholdAtStart } from './runtime/malloc-tuning.js';

/**
 * Errors Node's HTTP parser raises before Fastify sees a request (bad framing, headers too large,
 * header timeout): answered in the same JSON shape, then the connection closes.
 */
function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  // Bytes after a request that said `Connection: close`: that request is still answered (RFC 9112
  // §9.6), and nothing after it is processed (the request gate marked the connection closing).
  if (err.code === 'HPE_CLOSED_CONNECTION') return;
  const [status, code, text] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'header_too_large', 'Request Header Fields Too Large']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'request_timeout', 'Request Timeout']
        : [400, 'bad_request', 'Bad Request'];
  // A request whose body ended just before the bytes that failed to parse is not committed: its
  // answer would be lost behind this one (src/http/http-answers.ts, markClosing).
  markClosing(socket, true);
  if (!socket.writable) {
    socket.destroy(err);
    return;
  }
  const body = errorBody(code, `${text}: ${err.code ?? err.message}`, randomUUID());
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * Request logs go to stdout through an asynchronous, buffered pino destination: a synchronous
 * write per request blocks the event loop whenever the reader of stdout (pm2, a container
 * runtime) is slower than us. What is buffered is flushed every second and at exit.
 *
 * Under pm2 the lines must go through `process.stdout.write`: pm2 replaces it in its workers to
 * send output to the app's log (`pm2 logs`, ~/.pm2/logs/*-out.log) and to pm2-runtime's stdout,
 * while fd 1 of a pm2 worker is the daemon's own stdout (pm2.log under `pm2 start`).
 */
function logDestination(): pino.DestinationStream {
  const dest =
    process.env.pm_id !== undefined
      ? new BatchedStdout()
      : pino.destination({ dest: 1, sync: false, minLength: 4096 });
  setInterval(() => dest.flush(), 1000).unref();
  process.once('exit', () => dest.flushSync());
  return dest;
}

/** Lines gathered into one `process.stdout.write` per 4 KiB (and per second: logDestination). */
class BatchedStdout implements pino.DestinationStream {
  private lines: string[] = [];
  private size = 0;

  write(line: string): void {
    this.lines.push(line);
    this.size += line.length;
    if (this.size >= 4096) this.flush();
  }

  flush(): void {
    if (this.size === 0) return;
    const text = this.lines.join('');
    this.lines = [];
    this.size = 0;
    process.stdout.write(text);
  }

  /** At exit: what is left goes out in one write, as during the run. */
  flushSync(): void {
    this.flush();
  }
}

export async function createApp(config: IngestConfig): Promise<NestFastifyApplication> {
  const adapter = new FastifyAdapter({
    logger: { level: config.logLevel, stream: logDestination() },
    genReqId: requestId,
    // One line per request is logged by the ingest controller, with its stats, not two by Fastify.
    logController: new LogController({
      requestIdLogLabel: 'request_id',
      disableRequestLogging: true,
    }),
    // Drain instead (ShutdownDrain): requests on open connections are answered while closing.
    return503OnClosing: false,
    forceCloseConnections: false,
    clientErrorHandler,
    // A request without Host is refused by the request gate, in the error shape.
    http: { requireHostHeader: false },
  });
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot(config), adapter, {
    bodyParser: false,
    logger: new ConsoleLogger({ json: true, logLevels: ['fatal', 'error', 'warn', 'log'] }),
  });
  // No body parser at all: the ingest routes read the raw stream as it arrives, whatever its
  // Content-Type (curl's form type, ab's text/plain, application/x-ndjson, none).
  const fastify = app.getHttpAdapter().getInstance();
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('*', (_request, _payload, done) => done(null));
  app.enableShutdownHooks(['SIGINT', 'SIGTERM']);
  const ingest = app.get(IngestService);
  shedLoad(ingest, config);
  const targetOf = (req: IncomingMessage) =>
    req.method === 'POST' ? ingestTarget(req.url ?? '/') : null;
  installRequestGate(app.getHttpServer() as HttpServer, {
    shed(req: IncomingMessage) {
      const target = targetOf(req);
      return target === null ? undefined : ingest.shed(target.dataset);
    },
    admitBeforeContinue(req: IncomingMessage) {
      const target = targetOf(req);
      if (target === null) return;
      ingest.admit(req.headers, target.dataset);
    },
  });
  return app;
}

/**
 * Load shedding (issue 17): every SHED_SAMPLE_MS, the event loop's mean delay and utilization over
 * the window are checked against their thresholds (src/runtime/event-loop-pressure.ts); from the
 * second window in a row over one, the share of new ingest requests admitted halves at each
 * sample (src/runtime/load-shedder.ts), and the others get 503 `overloaded` with `Retry-After`
 * (IngestService.shed, from the request gate) instead of joining a queue whose latency grows until
 * clients time out. /health and /metrics are never shed. Besides, a loop turn that has run
 * SHED_EVENT_LOOP_TURN_MS refuses the rest of its new ingest requests at once, without waiting
 * for a sample.
 */
function shedLoad(ingest: IngestService, config: IngestConfig): void {
  const sampled = config.shedEventLoopDelayMs > 0 || config.shedEventLoopUtilization > 0;
  if (!sampled && config.shedEventLoopTurnMs === 0) return;
  const shedder = new LoadShedder(config.shedEventLoopTurnMs);
  if (sampled) {
    const pressure = new EventLoopPressure(
      config.shedEventLoopDelayMs,
      config.shedEventLoopUtilization,
    );
    setInterval(() => shedder.sample(pressure.read()), config.shedSampleMs).unref();
  }
  ingest.shedWhen(() => shedder.refusal());
}

/**
 * Under pm2's cluster mode with more than one worker: keep-alive connections spread evenly
 * (src/runtime/connection-balance.ts). The slot is given up as soon as the worker is told to stop, so
 * that the others no longer count on it taking connections.
 */
function balanceConnections(app: NestFastifyApplication, config: IngestConfig): void {
  const instance = process.env.NODE_APP_INSTANCE;
  if (!cluster.isWorker || instance === undefined || !/^\d+$/.test(instance)) return;
  const server = app.getHttpServer() as Server;
  const logger = new Logger('ConnectionBalance');
  let balance: ConnectionBalance;
  try {
    balance = new ConnectionBalance(
      join(config.csvDir, `.${config.csvPrefix}.connections`),
      Number(instance),
    ).attach(server);
  } catch (err) {
    // Not worth a worker: it takes its connections as the primary hands them out.
    logger.warn(`connections are not balanced: ${(err as Error).message}`);
    return;
  }
  // Cannot happen while the limit is decided once per offer (ConnectionBalance.limit).
  server.on('drop', () => logger.warn('a connection was dropped at maxConnections'));
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => balance.detach());
  process.once('exit', () => balance.detach());
}

async function main(): Promise<void> {
  tuneHeapGrowth();
  loadDotenv({ quiet: true });
  let config: IngestConfig;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const app = await createApp(config);
  await app.listen(config.port, config.host);
  balanceConnections(app, config);
  const notice = mallocTrimNotice(mallocTrimThresholdAtStart());
  if (notice !== null) new Logger('MallocTuning').log(notice);
  // pm2 `wait_ready`: this worker takes traffic only now.
  process.send?.('ready');
}

void main().catch((err: unknown) => {
  process.stderr.write(`start-up failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
