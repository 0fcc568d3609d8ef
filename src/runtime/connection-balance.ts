/**
 * Keep-alive connections spread evenly over the workers of a pm2 cluster.
 *
 * Why: Node's cluster primary (pm2's, in cluster mode) hands each new connection to the first
 * worker that is free, and a worker that has just acknowledged one is free again at once. So a
 * burst of connections, as a client's connection pool or a load generator opens them, can fall
 * 5/3 or 6/2 on two workers, and stays so for as long as the connections live. The worker with
 * more of them answers each more slowly, and sets the tail: in `npm run bench` at concurrency 8,
 * every repeat of one run split 5/3.
 *
 * How: a worker refuses a new connection while it holds its share and another worker has room,
 * and the primary hands the connection to the next free worker. Node's cluster worker refuses a
 * connection when the server's `maxConnections` is reached, and the primary passes it on instead
 * of closing it (`onconnection` in lib/internal/cluster/child.js, `handoff` in
 * round_robin_handle.js). Here `maxConnections` is a getter, computed when the primary offers a
 * connection, from counts the workers share through a small file beside the CSV lock file: one
 * 16-byte slot per worker (pm2's NODE_APP_INSTANCE) with its pid, its open connections and a
 * heartbeat. A worker counts as present while its heartbeat is fresh.
 *
 * Not a balancer of requests: a connection stays with the worker that took it.
 */
import { closeSync, openSync, readSync, writeSync, constants } from 'node:fs';
import type { Server } from 'node:net';

const SLOT_BYTES = 16;
export const MAX_SLOTS = 256;
const HEARTBEAT_MS = 1000;
/** A slot whose heartbeat is older than this belongs to a worker that is gone. */
const STALE_MS = 5000;
/**
 * Refusals stop when they have gone on for this long with no connection taken: the counts may not
 * match the primary's view (another worker busy for milliseconds before it can take the
 * connection, or one that stopped listening without giving its slot up), and the primary offers
 * a refused connection to this worker again at once when no other worker is free.
 */
const REFUSING_MAX_MS = 20;
/** A refusal this long after the previous one starts a new run: it is another offer. */
const NEW_RUN_AFTER_MS = 100;

export interface Slot {
  pid: number;
  connections: number;
  heartbeat: number;
}

/**
 * The `maxConnections` a worker holding `mine` connections should have, given the other present
 * workers' counts: its share of all connections once the next one arrives, while at least one
 * other worker is below that share; otherwise 0 (no limit), so that a connection is never
 * refused by every worker.
 */
export function connectionLimit(mine: number, others: readonly number[]): number {
  if (others.length === 0) return 0;
  const total = others.reduce((a, b) => a + b, mine);
  const share = Math.ceil((total + 1) / (others.length + 1));
  return others.some((n) => n < share) ? share : 0;
}

/**
 * The slots in (a copy of) the shared file, by index: pid (int32), open connections (int32),
 * heartbeat (float64, ms since the epoch). A slot nobody holds has pid 0.
 */
export function readSlots(file: Buffer): Slot[] {
  const slots: Slot[] = [];
  for (let i = 0; i + SLOT_BYTES <= file.length; i += SLOT_BYTES) {
    slots.push({
      pid: file.readInt32LE(i),
      connections: file.readInt32LE(i + 4),
      heartbeat: file.readDoubleLE(i + 8),
    });
  }
  return slots;
}

export class ConnectionBalance {
  private fd = -1;
  private connections = 0;
  private readonly slot = Buffer.alloc(SLOT_BYTES);
  private readonly all = Buffer.alloc(SLOT_BYTES * MAX_SLOTS);
  private timer: NodeJS.Timeout | undefined;
  /** When the current run of refusals began (reset by a connection taken), or undefined. */
  private refusingSince: number | undefined;
  private lastRefusal = 0;
  /** The limit decided for the connection being offered now (see `limit`). */
  private decided: number | undefined;

  constructor(
    private readonly path: string,
    private readonly index: number,
    private readonly now: () => number = Date.now,
    private readonly pid: number = process.pid,
  ) {
    if (!Number.isInteger(index) || index < 0 || index >= MAX_SLOTS) {
      throw new Error(`worker slot ${index} is out of range (0–${MAX_SLOTS - 1})`);
    }
  }

  /** Starts counting the server's connections and sharing the count; returns `this`. */
  attach(server: Server): this {
    this.fd = openSync(this.path, constants.O_RDWR | constants.O_CREAT, 0o644);
    this.publish();
    server.on('connection', (socket) => {
      this.refusingSince = undefined;
      this.connections++;
      this.publish();
      socket.once('close', () => {
        this.connections--;
        this.publish();
      });
    });
    Object.defineProperty(server, 'maxConnections', {
      configurable: true,
      enumerable: true,
      get: () => this.limit(),
      set: () => undefined,
    });
    this.timer = setInterval(() => this.publish(), HEARTBEAT_MS).unref();
    return this;
  }

  /** The other present workers' slots. */
  others(): Slot[] {
    if (this.fd < 0) return [];
    const n = readSync(this.fd, this.all, 0, this.all.length, 0);
    const now = this.now();
    return readSlots(this.all.subarray(0, n)).filter(
      (s, i) =>
        !(i === this.index || s.pid <= 0 || s.pid === this.pid || now - s.heartbeat > STALE_MS),
    );
  }

  /**
   * The server's `maxConnections` now. Node reads it twice in the worker's cluster code and twice
   * more in net's `onconnection`, in one synchronous stretch; another worker may update its count
   * in between, so the first read decides for all of them, or an offer accepted by the cluster
   * code could be dropped by net.
   */
  limit(): number {
    if (this.decided === undefined) {
      this.decided = this.decide();
      queueMicrotask(() => (this.decided = undefined));
    }
    return this.decided;
  }

  private decide(): number {
    let limit: number;
    try {
      limit = connectionLimit(
        this.connections,
        this.others().map((s) => s.connections),
      );
    } catch {
      return 0; // the shared file is unreadable: take every connection, as without balancing
    }
    if (limit === 0 || this.connections < limit) return limit;
    const now = this.now();
    if (this.refusingSince === undefined || now - this.lastRefusal > NEW_RUN_AFTER_MS) {
      this.refusingSince = now;
    }
    this.lastRefusal = now;
    return now - this.refusingSince > REFUSING_MAX_MS ? 0 : limit;
  }

  /** Gives the slot up (at exit): the others stop counting this worker at once. */
  detach(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    if (this.fd < 0) return;
    this.slot.fill(0);
    try {
      writeSync(this.fd, this.slot, 0, SLOT_BYTES, this.index * SLOT_BYTES);
    } finally {
      closeSync(this.fd);
      this.fd = -1;
    }
  }

  private publish(): void {
    if (this.fd < 0) return;
    this.slot.writeInt32LE(this.pid, 0);
    this.slot.writeInt32LE(this.connections, 4);
    this.slot.writeDoubleLE(this.now(), 8);
    try {
      writeSync(this.fd, this.slot, 0, SLOT_BYTES, this.index * SLOT_BYTES);
    } catch {
      // A full or read-only disk shows in /health; the count is refreshed with the heartbeat.
    }
  }
}
