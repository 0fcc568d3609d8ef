/**
 * A body refused in the request gate is dropped inside Node's HTTP parser: its body callback is
 * taken away until the next request's head or the socket's close (src/http/http-answers.ts). These
 * tests hold the parser to that: the callback is off while a refused body streams in, back for the
 * next request on the connection, and back when the connection closes mid-body, before Node's
 * pool of parsers lends the parser to anyone else (another connection, or an HTTP client in the
 * same process). A real node:http server on 127.0.0.1, in this process, so the parser is visible.
 */
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { IngestError } from '../../src/http/errors.js';
import { installRequestGate } from '../../src/http/request-gate.js';

type Parser = Record<number, unknown>;

/** The parser's slot whose callback is Node's `parserOnBody`. */
function bodySlot(parser: Parser): number {
  const key = Object.keys(parser).find((k) => {
    const v = parser[Number(k)];
    return typeof v === 'function' && v.name === 'parserOnBody';
  });
  if (key === undefined) throw new Error('no parserOnBody on the parser');
  return Number(key);
}

describe('a refused body is dropped in the parser', () => {
  let server: Server;
  let port: number;
  let refuseNext: boolean;
  /** Bytes of each admitted body, by its X-Tag. */
  let bodies: Map<string, number>;
  let serverSockets: Socket[];
  let slot: number;
  let callback: unknown;

  beforeEach(async () => {
    refuseNext = false;
    bodies = new Map();
    serverSockets = [];
    server = createServer((req: IncomingMessage, res) => {
      let n = 0;
      req.on('data', (d: Buffer) => (n += d.length));
      req.on('end', () => {
        bodies.set(String(req.headers['x-tag']), n);
        res.end(`got ${n}`);
      });
    });
    server.on('connection', (s: Socket) => serverSockets.push(s));
    installRequestGate(server, {
      admitBeforeContinue: () => undefined,
      shed: () => {
        if (!refuseNext) return undefined;
        refuseNext = false;
        return new IngestError('overloaded', undefined, { retryAfter: 1 });
      },
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterEach(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const head = (tag: string, length: number) =>
    `POST /ingest HTTP/1.1\r\nHost: x\r\nX-Tag: ${tag}\r\nContent-Length: ${length}\r\n\r\n`;

  async function open(): Promise<{ socket: Socket; text: () => string; parser: () => Parser }> {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    await until(() => serverSockets.length > 0);
    const theirs = serverSockets[serverSockets.length - 1] as Socket & { parser: Parser };
    const parser = theirs.parser;
    slot = bodySlot(parser);
    callback = parser[slot];
    return { socket, text: () => text, parser: () => parser };
  }

  it('takes the callback away for the refused body and puts it back for the next request', async () => {
    const c = await open();
    refuseNext = true;
    c.socket.write(head('refused', 200_000) + 'x'.repeat(50_000));
    await until(() => c.text().includes('503'));
    expect(c.parser()[slot]).toBeUndefined();
    // The rest of the refused body, then a second request in the same write.
    c.socket.write('x'.repeat(150_000) + head('next', 100_000) + 'y'.repeat(100_000));
    await until(() => bodies.has('next'));
    expect(bodies.get('next')).toBe(100_000);
    expect(bodies.has('refused')).toBe(false);
    expect(c.parser()[slot]).toBe(callback);
    c.socket.destroy();
  });

  it('puts the callback back when the connection closes mid-body, before the parser is lent again', async () => {
    const c = await open();
    const parser = c.parser();
    refuseNext = true;
    c.socket.write(head('aborted', 500_000) + 'x'.repeat(20_000));
    await until(() => c.text().includes('503'));
    expect(parser[slot]).toBeUndefined();
    c.socket.destroy();
    await until(() => parser[slot] !== undefined);
    expect(parser[slot]).toBe(callback);

    // The freed parser goes back to Node's pool, shared by servers and clients: an HTTP client in
    // this process gets its response body whole, and so does the next connection's request.
    const answer = await new Promise<string>((resolve, reject) => {
      const req = request({ port, host: '127.0.0.1', method: 'POST', headers: { 'x-tag': 'c' } });
      req.on('response', (res) => {
        let s = '';
        res.on('data', (d: Buffer) => (s += d.toString()));
        res.on('end', () => resolve(s));
      });
      req.on('error', reject);
      req.end('z'.repeat(70_000));
    });
    expect(answer).toBe('got 70000');
    const d = await open();
    d.socket.write(head('after', 300_000) + 'w'.repeat(300_000));
    await until(() => bodies.has('after'));
    expect(bodies.get('after')).toBe(300_000);
    d.socket.destroy();
  });

  it('drops every body of a run of refusals on one connection and reads the one after them', async () => {
    const c = await open();
    for (let i = 0; i < 5; i++) {
      refuseNext = true;
      c.socket.write(head(`r${i}`, 80_000) + 'x'.repeat(80_000));
      await until(() => (c.text().match(/ 503 /g) ?? []).length === i + 1);
    }
    c.socket.write(head('last', 90_000) + 'v'.repeat(90_000));
    await until(() => bodies.has('last'));
    expect(bodies.get('last')).toBe(90_000);
    expect([...bodies.keys()]).toEqual(['last']);
    c.socket.destroy();
  });
});

async function until(done: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!done()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}
