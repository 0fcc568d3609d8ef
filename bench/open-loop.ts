/**
 * HTTP load loops for the benchmarks that need more than autocannon's closed loop: a closed loop
 * with each answer's times, and an open loop (arrivals at a fixed rate, whatever the answers),
 * the shape of k6's arrival-rate executors.
 */
import { Agent, request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Answer {
  /** performance.now() when the request was launched and when its answer ended. */
  start: number;
  end: number;
  status: number;
  retryAfter: boolean;
  /**
   * No connection of the pool was free when it was launched: it waited in the client for one
   * (Node's agent marks a request `reusedSocket` only when it found a free one at once).
   */
  waited: boolean;
  /** Connection error code, or 'timeout'. */
  error?: string;
}

export function post(
  url: string,
  body: Buffer,
  agent: Agent,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const start = performance.now();
  return new Promise((resolve) => {
    const failed = (e: NodeJS.ErrnoException) =>
      resolve({
        start,
        end: performance.now(),
        status: 0,
        retryAfter: false,
        waited: !req.reusedSocket,
        error: e.code ?? e.message,
      });
    const req = request(
      url,
      { method: 'POST', agent, headers: { ...headers, 'content-length': body.length } },
      (res) => {
        res.resume();
        res.on('end', () =>
          resolve({
            start,
            end: performance.now(),
            status: res.statusCode ?? 0,
            retryAfter: res.headers['retry-after'] !== undefined,
            waited: !req.reusedSocket,
          }),
        );
        res.on('error', failed);
      },
    );
    req.setTimeout(30000, () =>
      req.destroy(Object.assign(new Error('timeout'), { code: 'timeout' })),
    );
    req.on('error', failed);
    req.end(body);
  });
}

/** `connections` loops, each sending its next request when the last is answered. */
export async function closedLoop(
  url: string,
  body: Buffer,
  connections: number,
  ms: number,
): Promise<Answer[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  const answers: Answer[] = [];
  const until = performance.now() + ms;
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < until) answers.push(await post(url, body, agent));
    }),
  );
  agent.destroy();
  return answers;
}

/**
 * Arrivals at `rate` per second for `ms`, whatever the answers (an open loop). `connections`: a
 * pool of that many keep-alive connections, all opened before the first arrival (as k6 opens its
 * pre-allocated VUs' connections, or an SDK its pool), with arrivals queued in the client while
 * every one is busy; without it, a new connection for each arrival that finds none free.
 */
export async function openLoop(
  url: string,
  body: Buffer,
  rate: number,
  ms: number,
  connections?: number,
): Promise<{ answers: Answer[]; launched: number; opened: number }> {
  // maxFreeSockets: Node's default (256) closes the idle connections beyond it, so a pool opened
  // before the first arrival would lose half its 512 before they were used.
  const agent = new Agent({
    keepAlive: true,
    maxSockets: connections ?? 4096,
    maxFreeSockets: connections ?? 4096,
  });
  if (connections !== undefined) {
    const live = new URL('/health/live', url).href;
    await Promise.all(
      Array.from(
        { length: connections },
        () =>
          new Promise<void>((resolve) =>
            request(live, { agent }, (res) => res.resume().on('end', resolve))
              .on('error', () => resolve())
              .end(),
          ),
      ),
    );
  }
  // Connections opened from here on: the pool's own were closed (by the server, or idle).
  let opened = 0;
  const create = agent.createConnection.bind(agent);
  agent.createConnection = ((...args: Parameters<typeof create>) => {
    opened++;
    return create(...args);
  }) as typeof agent.createConnection;
  const pending: Promise<Answer>[] = [];
  const t0 = performance.now();
  let launched = 0;
  while (performance.now() - t0 < ms) {
    const due = Math.floor(((performance.now() - t0) / 1000) * rate);
    while (launched < due) {
      pending.push(post(url, body, agent));
      launched++;
    }
    await sleep(2);
  }
  const answers = await Promise.all(pending);
  agent.destroy();
  return { answers, launched, opened };
}
