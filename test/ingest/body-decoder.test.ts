/**
 * The decoders against hostile streams (issue 13, items 1–3): declared windows, a worker's decoder
 * memory budget, concatenated and trailing data split at every position, truncation, and bombs
 * whose few input bytes ask for gigabytes. Each case asserts the documented answer, and the bombs
 * a bounded cost: the defects took seconds to minutes and gigabytes.
 */
import { describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { brotliCompressSync, constants, deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import {
  DecoderBudget,
  brotliWindowBits,
  createDecoder,
  zstdFrameWindow,
  type DecoderLimits,
} from '../../src/ingest/body-decoder.js';
import type { IngestError } from '../../src/http/errors.js';

const MiB = 1 << 20;

interface Outcome {
  data: Buffer;
  error: IngestError | null;
  ended: boolean;
  /** Longest pause of a 5 ms timer while decoding: the event loop stayed free. */
  maxLoopGapMs: number;
}

/**
 * Feeds `pieces` to a decoder as a request would (waiting for drain), and stops it once it has
 * produced `stopAfter` bytes, as the transform does at MAX_DECODED_BYTES.
 */
function decode(
  encoding: string,
  pieces: Buffer[],
  limits: DecoderLimits = { maxWindowBytes: 8 * MiB, budget: new DecoderBudget(128 * MiB) },
  stopAfter = 64 * MiB,
): Promise<Outcome> {
  return new Promise((resolve) => {
    const out: Buffer[] = [];
    let size = 0;
    let last = performance.now();
    let maxLoopGapMs = 0;
    const ticker = setInterval(() => {
      const now = performance.now();
      maxLoopGapMs = Math.max(maxLoopGapMs, now - last);
      last = now;
    }, 5);
    let settled = false;
    const done = (error: IngestError | null, ended: boolean): void => {
      if (settled) return;
      settled = true;
      clearInterval(ticker);
      resolve({ data: Buffer.concat(out), error, ended, maxLoopGapMs });
    };
    let i = 0;
    const next = (): void => {
      while (i < pieces.length && !settled) {
        if (!decoder.write(pieces[i++])) return; // resumed by onDrain
      }
      if (i === pieces.length && !settled) {
        i++;
        decoder.end();
      }
    };
    const decoder = createDecoder(
      encoding,
      {
        onData(chunk) {
          size += chunk.length;
          if (size <= stopAfter) out.push(Buffer.from(chunk));
          else {
            decoder.destroy();
            done(null, false);
          }
        },
        onEnd: () => done(null, true),
        onError: (err) => done(err, false),
        onDrain: () => setImmediate(next),
      },
      limits,
    );
    next();
  });
}

/** A zstd frame of `blocks` RLE blocks of `blockSize` bytes of 'a', window descriptor `wd`. */
function zstdRleFrame(wd: number, blocks: number, blockSize: number): Buffer {
  const parts = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, wd])];
  for (let b = 0; b < blocks; b++) {
    const last = b === blocks - 1 ? 1 : 0;
    const h = (blockSize << 3) | (1 << 1) | last;
    parts.push(Buffer.from([h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff, 0x61]));
  }
  return Buffer.concat(parts);
}

function zstdCli(data: Buffer, ...args: string[]): Buffer {
  return execFileSync('zstd', ['-q', '-c', ...args], { input: data, maxBuffer: 1 << 30 });
}

const br = (data: Buffer, lgwin = 22): Buffer =>
  brotliCompressSync(data, { params: { [constants.BROTLI_PARAM_LGWIN]: lgwin } });

const A = Buffer.from('{"stream":"A","n":1}\n'.repeat(20));
const B = Buffer.from('{"stream":"B","n":2}\n'.repeat(30));

describe('zstd', () => {
  it('refuses the 46-byte window bomb (a 1.9 GiB window) at once, holding nothing', async () => {
    const bomb = zstdRleFrame(0xa7, 10, 1);
    expect(bomb.length).toBe(46);
    expect(zstdFrameWindow(bomb)).toBeGreaterThan(1.8 * 1024 * MiB);
    const rss = process.memoryUsage().rss;
    const r = await decode('zstd', [bomb]);
    expect(r.error?.code).toBe('window_too_large');
    expect(r.error?.status).toBe(413);
    expect(process.memoryUsage().rss - rss).toBeLessThan(64 * MiB);
  });

  it('an RLE bomb within the window is decoded in bounded slices and stops when told', async () => {
    // 16,383 one-byte RLE blocks of 128 KiB: 64 KiB asking for 2 GiB.
    const bomb = zstdRleFrame(0x68, 16383, 128 * 1024); // window 8 MiB
    const t0 = performance.now();
    const r = await decode('zstd', [bomb], undefined, 256 * MiB);
    const ms = performance.now() - t0;
    expect(r.error).toBeNull();
    expect(r.ended).toBe(false); // stopped by the consumer, as at MAX_DECODED_BYTES
    expect(r.data.length).toBe(256 * MiB);
    // The defect held the loop for seconds; slices of 8 MiB take milliseconds each.
    expect(r.maxLoopGapMs).toBeLessThan(1000);
    expect(ms).toBeLessThan(20000);
  });

  it('decodes frames back to back and skippable frames, and refuses trailing junk', async () => {
    const skippable = Buffer.from([0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
    const both = Buffer.concat([zstdCli(A), skippable, zstdCli(B)]);
    const r = await decode('zstd', [both]);
    expect(r.error).toBeNull();
    expect(r.data.equals(Buffer.concat([A, B]))).toBe(true);
    const junk = await decode('zstd', [Buffer.concat([zstdCli(A), Buffer.from('JUNK')])]);
    expect(junk.error?.code).toBe('corrupt_body');
  });

  it('refuses a frame cut short', async () => {
    const whole = zstdCli(A);
    for (const cut of [5, 9, whole.length - 1]) {
      const r = await decode('zstd', [whole.subarray(0, cut)]);
      expect(r.error?.code).toBe('corrupt_body');
    }
  });

  it('refuses a frame whose window is over MAX_DECODER_WINDOW_BYTES (zstd --long)', async () => {
    const big = zstdCli(Buffer.alloc(64 * 1024, 'x'), '--long=24'); // 16 MiB window
    const r = await decode('zstd', [big]);
    expect(r.error?.code).toBe('window_too_large');
  });
});

describe('brotli', () => {
  it('reads the window bits of every lgwin from the first byte', () => {
    for (let lgwin = 10; lgwin <= 24; lgwin++) {
      const bits = brotliWindowBits(br(Buffer.alloc(4 << 20, 'a'), lgwin)[0]);
      expect(bits).toBe(lgwin);
    }
  });

  it('refuses a stream whose window passes MAX_DECODER_WINDOW_BYTES, before decoding', async () => {
    const r = await decode('br', [br(Buffer.alloc(1000, 'a'), 24)]);
    expect(r.error?.code).toBe('window_too_large');
    const ok = await decode('br', [br(A, 22)]);
    expect(ok.error).toBeNull();
    expect(ok.data.equals(A)).toBe(true);
  });

  it('503 overloaded with Retry-After when the worker budget is held by trickling streams', async () => {
    const budget = new DecoderBudget(10 * MiB);
    const limits = { maxWindowBytes: 8 * MiB, budget };
    const events = {
      onData: () => undefined,
      onEnd: () => undefined,
      onError: (e: IngestError) => errors.push(e),
      onDrain: () => undefined,
    };
    const errors: IngestError[] = [];
    const stream = br(Buffer.alloc(8 << 20, 'b'), 22); // 4 MiB window
    const held = [1, 2, 3].map(() => {
      const d = createDecoder('br', events, limits);
      d.write(stream.subarray(0, 20));
      return d;
    });
    expect(errors.map((e) => [e.code, e.status, e.retryAfter])).toEqual([['overloaded', 503, 1]]);
    for (const d of held) d.destroy();
    expect(budget.used).toBe(0);
  });
});

describe('data after the end of a stream is never dropped', () => {
  const kinds: [string, (b: Buffer) => Buffer][] = [
    ['br', (b) => br(b)],
    ['deflate', (b) => deflateSync(b)],
    ['deflate', (b) => deflateRawSync(b)],
  ];

  it.each(kinds)(
    '%s: two streams back to back are both decoded, split anywhere',
    async (enc, c) => {
      const body = Buffer.concat([c(A), c(B)]);
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 1, max: body.length - 1 }), async (cut) => {
          const r = await decode(enc, [body.subarray(0, cut), body.subarray(cut)]);
          expect(r.error).toBeNull();
          expect(r.data.toString()).toBe(Buffer.concat([A, B]).toString());
        }),
        { numRuns: 60 },
      );
      // Exactly at the boundary, and a byte at a time.
      const at = c(A).length;
      const r = await decode(enc, [body.subarray(0, at), body.subarray(at)]);
      expect(r.data.equals(Buffer.concat([A, B]))).toBe(true);
      const bytes = [...body].map((b) => Buffer.from([b]));
      const slow = await decode(enc, bytes);
      expect(slow.data.equals(Buffer.concat([A, B]))).toBe(true);
    },
  );

  it.each(kinds)('%s: a stream followed by junk is 400 corrupt_body', async (enc, c) => {
    const r = await decode(enc, [Buffer.concat([c(A), Buffer.from('JUNK')])]);
    expect(r.error?.code).toBe('corrupt_body');
  });

  it('gzip: members back to back are decoded; trailing zero bytes are 400, not ignored', async () => {
    const two = await decode('gzip', [Buffer.concat([gzipSync(A), gzipSync(B)])]);
    expect(two.data.equals(Buffer.concat([A, B]))).toBe(true);
    for (const tail of [Buffer.alloc(4), Buffer.from([0, 0x4a]), Buffer.from('JUNK')]) {
      const r = await decode('gzip', [gzipSync(A), tail]);
      expect(r.error?.code).toBe('corrupt_body');
      const joined = await decode('gzip', [Buffer.concat([gzipSync(A), tail])]);
      expect(joined.error?.code).toBe('corrupt_body');
    }
  });

  it.each([
    ['gzip', gzipSync(A)],
    ['br', br(A)],
    ['deflate', deflateSync(A)],
    ['deflate', deflateRawSync(A)],
  ])('%s cut short anywhere is 400 corrupt_body', async (enc, whole) => {
    for (const cut of [1, 2, whole.length >> 1, whole.length - 1]) {
      const r = await decode(enc, [whole.subarray(0, cut)]);
      expect(r.error?.code).toBe('corrupt_body');
    }
  });
});

describe('fuzz: random bytes and mangled streams', () => {
  const valid: [string, Buffer][] = [
    ['gzip', gzipSync(A)],
    ['br', br(A)],
    ['deflate', deflateSync(A)],
    ['deflate', deflateRawSync(A)],
    ['zstd', zstdCli(A)],
  ];

  it('any body ends in data or a catalogue error, within bounded output and time', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...valid),
        fc.uint8Array({ minLength: 0, maxLength: 64 }),
        fc.nat(),
        fc.nat(),
        async ([enc, stream], noise, at, mode) => {
          const p = at % (stream.length + 1);
          const n = Buffer.from(noise);
          const body =
            mode % 3 === 0
              ? Buffer.concat([stream.subarray(0, p), n, stream.subarray(p)]) // inserted
              : mode % 3 === 1
                ? Buffer.concat([stream.subarray(0, p), n]) // cut, then noise
                : Buffer.concat([n, stream]); // noise first (headers with any window)
          const t0 = performance.now();
          const r = await decode(enc, [body], undefined, 16 * MiB);
          expect(performance.now() - t0).toBeLessThan(5000);
          if (r.error !== null) {
            expect(['corrupt_body', 'window_too_large', 'overloaded']).toContain(r.error.code);
          } else {
            expect(r.data.length).toBeLessThanOrEqual(16 * MiB);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('zstd output around the 8 MiB slice', () => {
  it.each([63, 64, 65, 66])('%i RLE blocks of 128 KiB come out whole', async (blocks) => {
    const frame = zstdRleFrame(0x68, blocks, 128 * 1024);
    const r = await decode('zstd', [frame], undefined, 64 * MiB);
    expect(r.error).toBeNull();
    expect(r.ended).toBe(true);
    expect(r.data.length).toBe(blocks * 128 * 1024);
  });
});
