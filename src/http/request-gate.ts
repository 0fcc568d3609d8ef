/**
 * What Node's HTTP server hands on before Fastify routes it (issue 13, items 4 and 10):
 *
 * - A request on a connection that is closing is dropped unanswered and unprocessed (RFC 9112
 *   §9.6; see `markClosing`). Its body is read and discarded, so the lingering close of the
 *   answer before it still avoids a reset.
 * - `Transfer-Encoding` other than `chunked` alone is 501 (RFC 9112 §6.1): Node would decode the
 *   chunked framing and hand on a body still in a coding we ignore (`gzip, chunked`).
 * - An HTTP/1.1 request without `Host` is 400 (RFC 9112 §3.2) in the error shape; Node's own
 *   check (turned off in main.ts) answers a bare 400.
 * - An ingest request refused for load (503 `overloaded`, `shed`) is answered here, as cheaply as
 *   possible: under a spike most requests are refused, and each refused body is still read.
 * - `Expect: 100-continue`: the admission checks (token, encoding, Content-Length, load) run
 *   before `100 Continue` is sent, so a refused client does not upload its body for nothing.
 *   Any other expectation is 417 in the error shape.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { IngestError } from './errors.js';
import { closedFor, markClosing, restoreBodyCallback, sendRawError } from './http-answers.js';

type RequestListener = (req: IncomingMessage, res: ServerResponse) => void;

export interface GateOptions {
  /**
   * Runs the checks that need no body for a request that waits for `100 Continue`; throws an
   * IngestError to refuse it. Returns without throwing for routes that are not ingest routes.
   */
  admitBeforeContinue(req: IncomingMessage): void;
  /**
   * The load check for a request whose head has just been parsed; returns the refusal (503
   * `overloaded`) or undefined. Runs once per request, before Fastify sees it, and before
   * `admitBeforeContinue` for one that waits for `100 Continue`.
   */
  shed(req: IncomingMessage): IngestError | undefined;
}

const CHUNKED_ONLY = /^[ \t]*chunked[ \t]*$/i;

/** Puts the gate in front of the server's request listeners (Fastify's handler). */
export function installRequestGate(server: Server, options: GateOptions): void {
  const handlers = server.listeners('request') as RequestListener[];
  server.removeAllListeners('request');
  const dispatch: RequestListener = (req, res) => {
    for (const handler of handlers) handler.call(server, req, res);
  };

  /** True when the request has been answered or dropped here; false: it goes on. */
  const refuse = (req: IncomingMessage, res: ServerResponse): boolean => {
    // A body dropped before this request on the connection took the parser's body callback away.
    restoreBodyCallback(req.socket);
    if (closedFor(req)) {
      req.resume();
      return true;
    }
    // The client said this is its last request (Connection: close, or HTTP/1.0 without
    // keep-alive): whatever it pipelines after it is not processed either.
    if (res.shouldKeepAlive === false) markClosing(req.socket, req);
    const te = req.headers['transfer-encoding'];
    if (te !== undefined && !CHUNKED_ONLY.test(te)) {
      sendRawError(
        req,
        res,
        new IngestError(
          'not_implemented',
          `Transfer-Encoding "${te}" is not supported; only "chunked" is (use Content-Encoding for compression)`,
        ),
      );
      return true;
    }
    if (req.headers.host === undefined && req.httpVersionMajor === 1 && req.httpVersionMinor >= 1) {
      sendRawError(
        req,
        res,
        new IngestError('bad_request', 'an HTTP/1.1 request must carry a Host header'),
      );
      return true;
    }
    return false;
  };

  /** True when the request was refused for load (and answered). */
  const shed = (req: IncomingMessage, res: ServerResponse): boolean => {
    const refusal = options.shed(req);
    if (refusal === undefined) return false;
    sendRawError(req, res, refusal);
    return true;
  };

  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!refuse(req, res) && !shed(req, res)) dispatch(req, res);
  });
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (refuse(req, res) || shed(req, res)) return;
    try {
      options.admitBeforeContinue(req);
    } catch (err) {
      if (!(err instanceof IngestError)) throw err;
      // No 100 was sent: the client sends no body, or one we read and drop while lingering.
      sendRawError(req, res, err);
      return;
    }
    res.writeContinue();
    dispatch(req, res);
  });
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    if (refuse(req, res)) return;
    sendRawError(
      req,
      res,
      new IngestError(
        'expectation_failed',
        `Expect "${req.headers.expect ?? ''}" is not supported; only 100-continue is`,
      ),
    );
  });
}
