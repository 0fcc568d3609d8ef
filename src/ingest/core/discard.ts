/** Freeing a request's large buffers early (used by the transform and by the pending rows). */

const EMPTY = Buffer.alloc(0);

/**
 * Frees a request's buffer at the next scavenge instead of the next full GC. The carry, `out` and
 * their grown copies live as long as a request, so they are promoted to the old generation, and a
 * worker that then gets only ordinary requests runs no full GC for a long time (heap-tuning.ts):
 * after 64 concurrent bodies of 1 MB lines ~80 MB of dead buffers stayed allocated (bench:memory,
 * "RSS after"). Moving the backing store to a new ArrayBuffer that nothing references (a transfer,
 * no copy) leaves it to the young generation. Only for a buffer that owns its whole ArrayBuffer
 * (not a slice of Buffer's pool), and only above 64 KiB - 1, where it is worth a structuredClone.
 */
export function discard(b: Buffer): Buffer {
  const ab = b.buffer as ArrayBuffer; // Buffer.allocUnsafe never makes a SharedArrayBuffer
  if (b.byteOffset === 0 && b.length === ab.byteLength && ab.byteLength >= 65536) {
    structuredClone(ab, { transfer: [ab] });
  }
  return EMPTY;
}
