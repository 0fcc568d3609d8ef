/**
 * HTTP/1.1 written by hand on a TCP socket, for what real clients do but node:http will not:
 * pipelining, bytes after a body, a request sent while the server lingers, headers left out.
 */
import { connect, type Socket } from 'node:net';

/** Write bytes; pause; or wait until what was received so far matches. */
export type RawStep = string | Buffer | { pauseMs: number } | { until: RegExp };

export interface RawResult {
  /** Everything the server sent, as latin1 text. */
  text: string;
  /** The server closed the connection (FIN or reset) before the session ended. */
  closed: boolean;
  /** The statuses of the answers, in order (informational 1xx included). */
  statuses: number[];
}

/**
 * Runs the steps on one connection, then waits until the server closes it or stays silent for
 * `idleMs`. A step `until` fails the session when it does not match within `waitMs`.
 */
export function rawSession(
  port: number,
  steps: readonly RawStep[],
  { idleMs = 1000, waitMs = 10000 }: { idleMs?: number; waitMs?: number } = {},
): Promise<RawResult> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    let text = '';
    let closed = false;
    let onReceive: (() => void) | null = null;
    sock.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      onReceive?.();
    });
    sock.on('error', () => undefined); // a reset ends the session like a close
    sock.on('close', () => {
      closed = true;
      onReceive?.();
    });
    const finish = (): void => {
      sock.destroy();
      const statuses = [...text.matchAll(/HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
      resolve({ text, closed, statuses });
    };
    const run = async (): Promise<void> => {
      await new Promise<void>((ok, fail) => {
        sock.once('connect', ok);
        sock.once('error', fail);
      });
      for (const step of steps) {
        if (typeof step === 'string' || Buffer.isBuffer(step)) {
          if (!closed) sock.write(step);
        } else if ('pauseMs' in step) {
          await new Promise((ok) => setTimeout(ok, step.pauseMs));
        } else {
          await new Promise<void>((ok, fail) => {
            const timer = setTimeout(
              () => fail(new Error(`no ${String(step.until)} within ${waitMs} ms; got:\n${text}`)),
              waitMs,
            );
            onReceive = () => {
              if (step.until.test(text) || closed) {
                clearTimeout(timer);
                onReceive = null;
                ok();
              }
            };
            onReceive();
          });
        }
      }
      // Until the server closes, or says nothing more for idleMs.
      await new Promise<void>((ok) => {
        let timer = setTimeout(ok, idleMs);
        onReceive = () => {
          clearTimeout(timer);
          if (closed) ok();
          else timer = setTimeout(ok, idleMs);
        };
        if (closed) ok();
      });
    };
    run().then(finish, (err: unknown) => {
      sock.destroy();
      reject(err as Error);
    });
  });
}

/** A POST of `body` with Content-Length, as one string of bytes. */
export function rawPost(
  body: string | Buffer,
  { path = '/', headers = {} }: { path?: string; headers?: Record<string, string> } = {},
): Buffer {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const extra = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return Buffer.concat([
    Buffer.from(
      `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${b.length}\r\n${extra}\r\n`,
    ),
    b,
  ]);
}

/** The JSON body of the answer that starts at the n-th status line (0-based). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function rawJson(text: string, n = 0): any {
  const starts = [...text.matchAll(/HTTP\/1\.[01] \d{3} /g)].map((m) => m.index);
  const answer = text.slice(starts[n], starts[n + 1] ?? text.length);
  const body = answer.slice(answer.indexOf('\r\n\r\n') + 4);
  return JSON.parse(body);
}

/** One answer read off a raw connection. */
export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** A raw connection that reads answers one by one (Content-Length framed). */
export class RawConnection {
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;
  constructor(readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiters.splice(0).forEach((w) => w());
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiters.splice(0).forEach((w) => w());
    });
    socket.on('error', () => undefined);
  }
  static async open(port: number): Promise<RawConnection> {
    const s = connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => s.once('connect', resolve));
    return new RawConnection(s);
  }
  async answer(): Promise<RawAnswer> {
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n');
      if (end >= 0) {
        const [statusLine, ...lines] = this.buf.subarray(0, end).toString('latin1').split('\r\n');
        const headers = Object.fromEntries(
          lines.map((l) => [
            l.slice(0, l.indexOf(':')).toLowerCase(),
            l.slice(l.indexOf(':') + 1).trim(),
          ]),
        );
        const length = Number(headers['content-length']);
        if (this.buf.length >= end + 4 + length) {
          const body = this.buf.subarray(end + 4, end + 4 + length).toString('utf8');
          this.buf = this.buf.subarray(end + 4 + length);
          return { status: Number(statusLine.split(' ')[1]), headers, body };
        }
      }
      if (this.closed) throw new Error('connection closed before a whole answer');
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }
  async closedWithin(ms: number): Promise<boolean> {
    const until = Date.now() + ms;
    while (!this.closed && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    return this.closed;
  }
}
