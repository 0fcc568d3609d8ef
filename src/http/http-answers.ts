/**
 * Error answers in the one shape of SPEC §3, for every path that can fail: ingest, unknown routes,
 * framework errors before routing, and the requests refused before Fastify sees them
 * (src/http/request-gate.ts).
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyReply } from 'fastify';
import { ERRORS, errorBody, type ErrorCode, type IngestError } from './errors.js';

/** How long a refused request's remaining body is read and dropped before the socket closes. */
const LINGER_MS = 2000;

/**
 * A request refused as `overloaded` keeps its connection when at most this much body is left to
 * come (by Content-Length): the rest is read and dropped, and the client's next request, its
 * retry after Retry-After, comes on the same connection. Closing instead would make every refusal
 * cost a new connection, and under a spike those connections queue in the cluster primary's
 * hand-off ahead of the workers (one per worker at a time), where no refusal can reach them.
 * Go's net/http drains up to 256 KiB for the same reason; the reference body is 584 KB.
 */
export const OVERLOAD_DRAIN_BYTES = 4 << 20;

/** A client's X-Request-Id is kept when it is short and plain; otherwise a UUID is made. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestId(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
}

const CLOSING = Symbol('closingAfter');
type MarkedSocket = Socket & { [CLOSING]?: IncomingMessage | true };

/**
 * Marks a connection as closing after the answer to `after` (or at once: `true`, for a parse
 * error). RFC 9112 §9.6: no later request on it is processed. Node's parser still reads what
 * follows on the socket (a pipelined request, one sent during the linger, bytes after a body) and
 * emits requests for it; the request gate drops them, and a request already under way that is not
 * `after` is not committed (`closedFor`): its answer could never reach the client, whose retry
 * would then write its rows twice. The first mark wins.
 */
export function markClosing(socket: Socket | null, after: IncomingMessage | true): void {
  const s = socket as MarkedSocket | null;
  if (s !== null && s[CLOSING] === undefined) s[CLOSING] = after;
}

/** True when `req` can no longer be answered: its connection closes before its answer, or is gone. */
export function closedFor(req: IncomingMessage): boolean {
  const s = req.socket as MarkedSocket | null;
  if (s === null || s.destroyed) return true;
  const mark = s[CLOSING];
  return mark !== undefined && mark !== req;
}

/**
 * Makes the socket half-close after the answer instead of closing at once: Node would otherwise
 * destroy it while the client is still sending, the kernel would answer the unread bytes with a
 * reset, and the client could lose the answer (RFC 9112 §9.6). The rest of the body is read and
 * dropped until the client closes or LINGER_MS passes.
 */
export function lingerClose(res: ServerResponse): void {
  const socket = res.socket as (Socket & { destroySoon?: () => void }) | null;
  if (socket === null || socket.destroyed) return;
  socket.destroySoon = function lingeringClose(this: Socket) {
    this.end();
    const timer = setTimeout(() => this.destroy(), LINGER_MS);
    timer.unref();
    this.once('close', () => clearTimeout(timer));
    this.resume();
  };
}

/** Headers every error answer carries besides the body's shape. */
function errorHeaders(err: IngestError, requestId: string): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': 'application/json; charset=utf-8',
    'x-request-id': requestId,
  };
  if (err.retryAfter !== undefined) headers['retry-after'] = String(err.retryAfter);
  // RFC 6750 §3: a 401 names the scheme the client should use.
  if (err.code === 'unauthorized') headers['www-authenticate'] = 'Bearer realm="ndjson-ingest"';
  return headers;
}

/**
 * True while the request still has body bytes to come. A request without a body (no
 * Content-Length, or 0, and no Transfer-Encoding) has none, even before Node marks it complete:
 * its answer keeps the connection open.
 */
export function bodyPending(req: IncomingMessage): boolean {
  if (req.complete) return false;
  const length = req.headers['content-length'];
  return (
    req.headers['transfer-encoding'] !== undefined || (length !== undefined && Number(length) !== 0)
  );
}

/**
 * Reads and drops the rest of a refused body so that the connection can take the client's next
 * request. A body not all there within LINGER_MS (a client trickling it) closes the connection, as
 * a lingering close would: the answer is already sent, and the refusal holds no slot either way.
 * `untouched`: nothing of ours has read from the body (a refusal in the request gate).
 */
function drainBody(req: IncomingMessage, untouched = false): void {
  const socket = req.socket;
  if (!req.complete) {
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    // On the request, not the kept socket: one listener per refusal on a connection that takes
    // many would pile up there (Node warned at 11) for as long as the connection lives.
    const stop = (): void => clearTimeout(timer);
    req.once('end', stop);
    req.once('close', stop);
  }
  if (untouched) dump(req);
  else req.resume();
}

type Dumpable = IncomingMessage & { _dump?: () => void };

/** Node's HTTP parser, as far as this module touches it: callbacks in numbered slots. */
type Parser = Record<number, unknown>;
type ParsedSocket = Socket & { parser?: Parser | null };

/**
 * Where Node's parser keeps its body callback, and the callback, found by name on the first
 * parser seen (null: not found, and bodies are dropped by `_dump` alone).
 */
let bodySlot: { slot: number; callback: unknown } | null | undefined;

function findBodySlot(parser: Parser): { slot: number; callback: unknown } | null {
  for (const key of Object.keys(parser)) {
    if (!/^\d+$/.test(key)) continue;
    const value = parser[Number(key)];
    if (typeof value === 'function' && value.name === 'parserOnBody') {
      return { slot: Number(key), callback: value };
    }
  }
  return null;
}

/** The parser whose body callback is off, on the socket it parses, until it is put back. */
const BODY_OFF = Symbol('bodyCallbackOff');
type DroppingSocket = ParsedSocket & { [BODY_OFF]?: Parser | null };

/**
 * Puts back the body callback of the socket's parser if a dropped body took it away. The request
 * gate calls it for every request, from the parser's callback for the end of its head, before any
 * of that request's body is parsed; and it runs when the socket closes, before Node's pool of
 * parsers lends this one to another connection (or to an HTTP client).
 */
export function restoreBodyCallback(socket: Socket | null): void {
  const s = socket as DroppingSocket | null;
  const parser = s?.[BODY_OFF];
  // Set only by `dump`, once it has found the slot.
  if (s === null || parser === undefined || parser === null || !bodySlot) return;
  parser[bodySlot.slot] = bodySlot.callback;
  s[BODY_OFF] = null;
}

function restoreOnClose(this: Socket): void {
  restoreBodyCallback(this);
}

/**
 * Drops a body nothing has read from, as Node itself does for a request whose answer ends before
 * its body was consumed: `_dump` marks it so that Node's parser drops each chunk instead of
 * pushing it through the stream. The request still ends, so the timer above is cleared. Falls back
 * to resume() should a Node release drop the method.
 *
 * Besides, the parser's body callback is taken away until the next request's head (or the close):
 * with no callback, Node's parser skips the body in place, where it would otherwise copy each chunk
 * into a new Buffer and call into JavaScript only for `_dump` to throw it away. A refused 584 KB
 * body cost 72 µs of CPU instead of 144 over 16 connections, 118 instead of 184 over 512
 * (docs/performance-notes.md). The frame still parses as before (lengths, chunk sizes, the end of
 * the message), so the request after it on the connection is read whole.
 * Found by name; where a Node release names it otherwise, bodies are dropped by `_dump` alone.
 */
function dump(req: IncomingMessage): void {
  const dumpable = req as Dumpable;
  if (typeof dumpable._dump === 'function') dumpable._dump();
  else req.resume();
  const socket = req.socket as DroppingSocket | null;
  const parser = socket?.parser;
  if (socket === null || parser === undefined || parser === null || req.complete) return;
  bodySlot ??= findBodySlot(parser);
  const found = bodySlot;
  if (found === null || parser[found.slot] !== found.callback) return;
  if (socket[BODY_OFF] === undefined) socket.once('close', restoreOnClose);
  parser[found.slot] = undefined;
  socket[BODY_OFF] = parser;
}

/** A body whose Content-Length is at most OVERLOAD_DRAIN_BYTES (chunked: unknown, no). */
function drainable(req: IncomingMessage): boolean {
  const length = Number(req.headers['content-length']);
  return Number.isSafeInteger(length) && length <= OVERLOAD_DRAIN_BYTES;
}

/**
 * Sends an error answer. `bodyUnread`: the request body was not read to its end, so the
 * connection closes after the answer (lingering, see `lingerClose`).
 */
export function sendError(
  reply: FastifyReply,
  err: IngestError,
  bodyUnread: boolean,
  /** Add Tinybird's top-level `error` (on `/v0/events`). */
  tinybird = false,
): void {
  const requestId = String(reply.request.id);
  reply.code(err.status).headers(errorHeaders(err, requestId));
  if (bodyUnread && keepsConnection(reply.request.raw, reply.raw, err)) {
    drainBody(reply.request.raw);
  } else if (bodyUnread) {
    reply.header('connection', 'close');
    markClosing(reply.request.raw.socket, reply.request.raw);
    lingerClose(reply.raw);
    reply.request.raw.resume();
  }
  reply.send(errorBody(err.code, err.message, requestId, tinybird));
}

/**
 * Sends an error answer on Node's own request and response, before Fastify has seen them, and
 * closes the connection after it (lingering while a body may still come).
 */
export function sendRawError(req: IncomingMessage, res: ServerResponse, err: IngestError): void {
  const id = requestId(req);
  const body = errorBody(err.code, err.message, id);
  const keep = keepsConnection(req, res, err);
  if (keep) drainBody(req, true);
  else {
    markClosing(req.socket, req);
    lingerClose(res);
    req.resume();
  }
  res.writeHead(err.status, {
    ...errorHeaders(err, id),
    'content-length': Buffer.byteLength(body),
    ...(keep ? {} : { connection: 'close' }),
  });
  res.end(body);
}

/**
 * An `overloaded` refusal keeps a keep-alive connection when its body is drainable; any other
 * refusal before the body is read closes it, and so does one that waits for `100 Continue`: its
 * client may never send the body that the connection's framing still expects.
 */
function keepsConnection(req: IncomingMessage, res: ServerResponse, err: IngestError): boolean {
  return (
    err.code === 'overloaded' &&
    res.shouldKeepAlive &&
    req.headers.expect === undefined &&
    (!bodyPending(req) || drainable(req))
  );
}

/** Maps an HTTP status from the framework (Fastify/Nest) to a catalogue code. */
export function codeForStatus(status: number): ErrorCode {
  for (const [code, info] of Object.entries(ERRORS)) {
    if (info.status === status) return code as ErrorCode;
  }
  return status >= 500 ? 'internal' : 'bad_request';
}
