/**
 * Error answers in the one shape of SPEC §3, for every path that can fail: ingest, unknown routes,
 * framework errors before routing.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyReply } from 'fastify';
import { ERRORS, errorBody, type ErrorCode, type IngestError } from './errors.js';

/** How long a refused request's remaining body is read and dropped before the socket closes. */
const LINGER_MS = 2000;

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

/**
 * Sends an error answer. `bodyUnread`: the request body was not read to its end, so the
 * connection closes after the answer (lingering, see `lingerClose`).
 */
export function sendError(reply: FastifyReply, err: IngestError, bodyUnread: boolean): void {
  const requestId = String(reply.request.id);
  reply
    .code(err.status)
    .header('content-type', 'application/json; charset=utf-8')
    .header('x-request-id', requestId);
  if (err.retryAfter !== undefined) reply.header('retry-after', String(err.retryAfter));
  if (bodyUnread) {
    reply.header('connection', 'close');
    lingerClose(reply.raw);
    reply.request.raw.resume();
  }
  reply.send(errorBody(err.code, err.message, requestId));
}

/** Maps an HTTP status from the framework (Fastify/Nest) to a catalogue code. */
export function codeForStatus(status: number): ErrorCode {
  for (const [code, info] of Object.entries(ERRORS)) {
    if (info.status === status) return code as ErrorCode;
  }
  return status >= 500 ? 'internal' : 'bad_request';
}
