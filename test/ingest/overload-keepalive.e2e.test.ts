/**
 * A request refused for load (503 `overloaded`) keeps its keep-alive connection when its body is
 * small enough to read and drop (OVERLOAD_DRAIN_BYTES): the client's retry comes on the same
 * connection, and under a spike refusals do not turn into a storm of new connections. A body too
 * large to drain, a chunked one, or one behind `Expect: 100-continue` closes the connection, as
 * every other refusal before the body does. The refused body is never written.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { localDay } from '../../src/csv/csv-committer.js';
import { OVERLOAD_DRAIN_BYTES } from '../../src/http/http-answers.js';
import { RawConnection, rawPost } from '../support/raw-http.js';
import { startServer, type RunningServer } from '../support/server.js';

const line = (tag: string) => `{"vendorid":"${tag}"}\n`;

/** A POST /ingest of `body` in two parts: the head and the body's first `n` bytes, then the rest. */
function postInTwo(body: string, n: number): [Buffer, Buffer] {
  const all = rawPost(body, { path: '/ingest' });
  const at = all.length - Buffer.byteLength(body) + n;
  return [all.subarray(0, at), all.subarray(at)];
}

/**
 * Takes the server's one slot (MAX_IN_FLIGHT 1) with a request whose body is held back;
 * `release` sends the rest, expects its 200 and closes the connection.
 */
async function holdSlot(port: number, tag: string): Promise<{ release(): Promise<void> }> {
  const conn = await RawConnection.open(port);
  const [head, rest] = postInTwo(line(tag), 3);
  conn.socket.write(head);
  await new Promise((r) => setTimeout(r, 200));
  return {
    async release() {
      conn.socket.write(rest);
      expect((await conn.answer()).status).toBe(200);
      conn.socket.destroy();
    },
  };
}

describe('refusals for load keep the connection when the body can be drained', () => {
  let server: RunningServer;
  let holder: RawConnection;
  let heldRest: Buffer;
  const file = () => join(server.csvDir, `nyc_taxi-${localDay(new Date())}.csv`);

  beforeAll(async () => {
    server = await startServer({
      MAX_IN_FLIGHT: '1',
      CSV_EOL: 'lf',
      SHED_EVENT_LOOP_DELAY_MS: '0',
      SHED_EVENT_LOOP_TURN_MS: '0',
    });
    // The one slot is held: headers and part of a body, the rest later.
    holder = await RawConnection.open(server.port);
    const [heldHead, rest] = postInTwo(line('held'), 5);
    heldRest = rest;
    holder.socket.write(heldHead);
    await new Promise((r) => setTimeout(r, 300));
  });
  afterAll(async () => {
    holder?.socket.destroy();
    await server?.stop();
  });

  it('answers 503 at once, reads and drops the body, and takes the retry on the same connection', async () => {
    const c = await RawConnection.open(server.port);
    // 200 KB of valid lines, the first half sent before the answer and the rest after it.
    const body = line('refused').repeat(Math.ceil(200_000 / line('refused').length));
    const [head, rest] = postInTwo(body, 100_000);
    c.socket.write(head);
    const refused = await c.answer();
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('1');
    expect(refused.headers.connection).not.toBe('close');
    expect(JSON.parse(refused.body).result.error.code).toBe('overloaded');
    c.socket.write(rest);
    // The slot frees; the retry on the same connection is taken.
    holder.socket.write(heldRest);
    expect((await holder.answer()).status).toBe(200);
    c.socket.write(rawPost(line('retry'), { path: '/ingest' }));
    const taken = await c.answer();
    expect(taken.status).toBe(200);
    expect(JSON.parse(taken.body).result.stats.records.valid).toBe(1);
    expect(c.closed).toBe(false);
    c.socket.destroy();
    expect(readFileSync(file(), 'utf8')).toBe('held,,,\nretry,,,\n');
  });

  it('takes many refusals on one connection without piling up listeners on it', async () => {
    const slot = await holdSlot(server.port, 'again');
    const c = await RawConnection.open(server.port);
    for (let i = 0; i < 15; i++) {
      // Half the body before the answer: the drain of the rest is timed (LINGER_MS).
      const [head, rest] = postInTwo(line(`refused-${i}`).repeat(50), 100);
      c.socket.write(head);
      expect((await c.answer()).status).toBe(503);
      c.socket.write(rest);
    }
    expect(c.closed).toBe(false);
    // Node warns when 11 listeners of one event sit on one emitter (the connection's socket).
    await new Promise((r) => setTimeout(r, 100));
    expect(server.output()).not.toMatch(/MaxListenersExceededWarning/);
    c.socket.destroy();
    await slot.release();
  });

  it('reads whole the request that follows a dropped body in the same packet', async () => {
    // The refused body is dropped inside Node's parser, chunk by chunk; the request after it on
    // the connection is a new message whose body must all reach the transform.
    const slot = await holdSlot(server.port, 'slot');
    const c = await RawConnection.open(server.port);
    const [head, rest] = postInTwo(line('dropped').repeat(2000), 1000);
    c.socket.write(head);
    expect((await c.answer()).status).toBe(503);
    await slot.release();
    const next = line('after-dropped').repeat(300);
    c.socket.write(Buffer.concat([rest, rawPost(next, { path: '/ingest' })]));
    const taken = await c.answer();
    expect(taken.status).toBe(200);
    expect(JSON.parse(taken.body).result.stats).toEqual({
      bytes: Buffer.byteLength(next),
      records: { valid: 300, invalid: 0, total: 300 },
    });
    c.socket.destroy();
    const rows = readFileSync(file(), 'utf8').split('\n');
    expect(rows.filter((r) => r.startsWith('after-dropped,'))).toHaveLength(300);
    expect(rows.some((r) => r.startsWith('dropped,'))).toBe(false);
  });

  it.each([
    ['a body larger than OVERLOAD_DRAIN_BYTES', `Content-Length: ${OVERLOAD_DRAIN_BYTES + 1}\r\n`],
    ['a chunked body', 'Transfer-Encoding: chunked\r\n'],
    ['a body behind Expect: 100-continue', 'Content-Length: 10\r\nExpect: 100-continue\r\n'],
  ])('closes the connection after the 503 for %s', async (_what, framing) => {
    const slot = await holdSlot(server.port, 'again');
    const c = await RawConnection.open(server.port);
    c.socket.write(`POST /ingest HTTP/1.1\r\nHost: x\r\n${framing}\r\n`);
    const refused = await c.answer();
    expect(refused.status).toBe(503);
    expect(refused.headers.connection).toBe('close');
    c.socket.end();
    expect(await c.closedWithin(5000)).toBe(true);
    await slot.release();
  });
});
