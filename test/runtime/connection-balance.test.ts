/**
 * The connection balance of pm2 workers (src/runtime/connection-balance.ts): the limit rule, and the
 * counts shared through the slot file, with two balances standing for two workers.
 */
import { describe, expect, it } from '@jest/globals';
import { EventEmitter } from 'node:events';
import { Server } from 'node:net';
import { join } from 'node:path';
import { ConnectionBalance, connectionLimit } from '../../src/runtime/connection-balance.js';
import { tempDir } from '../support/server.js';

describe('connectionLimit', () => {
  it('sets no limit without other workers', () => {
    expect(connectionLimit(7, [])).toBe(0);
  });

  it('limits a worker to its share of the next connection while another has room', () => {
    // [mine, others] → limit; a connection is refused when mine ≥ limit > 0.
    expect(connectionLimit(1, [0])).toBe(1); // 1 of 2: the next one goes to the other
    expect(connectionLimit(0, [1])).toBe(0); // the other is at its share: no limit here
    expect(connectionLimit(4, [3])).toBe(4); // the 8th connection goes to the other
    expect(connectionLimit(4, [4])).toBe(5); // even: whoever is offered the 9th takes it
    expect(connectionLimit(5, [3])).toBe(5);
    expect(connectionLimit(2, [3, 2])).toBe(3); // three workers, 8th connection: mine takes it
    expect(connectionLimit(3, [2, 2])).toBe(3);
  });

  it('never limits every worker at once', () => {
    for (let a = 0; a < 12; a++) {
      for (let b = 0; b < 12; b++) {
        const refusesA = connectionLimit(a, [b]) > 0 && a >= connectionLimit(a, [b]);
        const refusesB = connectionLimit(b, [a]) > 0 && b >= connectionLimit(b, [a]);
        expect(refusesA && refusesB).toBe(false);
      }
    }
  });
});

describe('ConnectionBalance', () => {
  /** Two workers (pids 1001 and 1002) sharing one slot file, each with its own server. */
  function twoWorkers(now: () => number = Date.now) {
    const file = join(tempDir(), '.t.connections');
    const servers = [new Server(), new Server()];
    const balances = [0, 1].map((i) =>
      new ConnectionBalance(file, i, now, 1001 + i).attach(servers[i]),
    );
    /** Stands for a connection the server accepted: what net emits. */
    const connect = (i: number) => {
      const socket = new EventEmitter();
      servers[i].emit('connection', socket);
      return socket;
    };
    return { servers, balances, connect };
  }

  it("reads the other worker's count from the shared file", () => {
    const { servers, balances, connect } = twoWorkers();
    try {
      expect(balances[0].others()).toEqual([
        expect.objectContaining({ pid: 1002, connections: 0 }),
      ]);
      connect(0);
      // Worker 0 holds 1 and worker 1 none: worker 0 refuses the next one (limit 1).
      expect(servers[0].maxConnections).toBe(1);
      expect(servers[1].maxConnections).toBe(0);
      const s = connect(1);
      expect(balances[0].others()[0].connections).toBe(1);
      s.emit('close');
      expect(balances[0].others()[0].connections).toBe(0);
    } finally {
      for (const b of balances) b.detach();
    }
  });

  it('ignores a worker whose heartbeat is stale, and a slot given up', () => {
    let clock = 1_000_000;
    const { balances } = twoWorkers(() => clock);
    try {
      expect(balances[0].others()).toHaveLength(1);
      clock += 6000; // worker 1 stopped publishing
      expect(balances[0].others()).toHaveLength(0);
      clock -= 6000;
      balances[1].detach();
      expect(balances[0].others()).toHaveLength(0);
    } finally {
      balances[0].detach();
    }
  });

  it('stops refusing after 20 ms of refusals, until it takes a connection', async () => {
    let clock = 1_000_000;
    const { servers, balances, connect } = twoWorkers(() => clock);
    const refuses = async () => {
      await Promise.resolve(); // each offer is decided anew (the limit holds within one)
      const limit = servers[0].maxConnections;
      return limit > 0 && limit <= 1;
    };
    try {
      connect(0); // 1 of 1: worker 1 has room
      expect(await refuses()).toBe(true);
      clock += 15;
      expect(await refuses()).toBe(true);
      clock += 10; // 25 ms of refusals: the counts must be wrong, take it
      expect(await refuses()).toBe(false);
      connect(1);
      connect(0); // 2 and 1: a connection taken starts the watch over
      clock += 1;
      expect(await refuses()).toBe(false); // limit 2, holding 2: refused, but limit > 1
      expect(servers[0].maxConnections).toBe(2);
      clock += 25;
      await Promise.resolve();
      expect(servers[0].maxConnections).toBe(0); // the same run, 26 ms on: taken
      connect(0);
      connect(1);
      connect(1); // 3 and 3: a limit of 4, so worker 0 takes the next one
      await Promise.resolve();
      expect(servers[0].maxConnections).toBe(4);
      connect(1); // 3 and 4: the other is at its share, no limit here
      await Promise.resolve();
      expect(servers[0].maxConnections).toBe(0);
    } finally {
      for (const b of balances) b.detach();
    }
  });

  it('counts a refusal long after the previous one as a new run, not as the same', async () => {
    let clock = 1_000_000;
    const { servers, balances, connect } = twoWorkers(() => clock);
    try {
      connect(0); // 1 and 0: worker 0 refuses, worker 1 takes the connection elsewhere
      expect(servers[0].maxConnections).toBe(1);
      await Promise.resolve();
      clock += 200; // another offer, 200 ms later (heartbeats still fresh): refused again
      expect(servers[0].maxConnections).toBe(1);
    } finally {
      for (const b of balances) b.detach();
    }
  });
});
