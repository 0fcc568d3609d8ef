/**
 * Content-Encoding decoders with one push interface (SPEC §3): identity, gzip, x-gzip, deflate
 * (zlib-wrapped or raw, detected from the first two bytes), br and zstd.
 *
 * zstd: Node 20's zlib has no zstd, so it comes from fzstd (pure JS, streaming, no native build).
 */
import {
  createBrotliDecompress,
  createGunzip,
  createInflate,
  createInflateRaw,
  type Gunzip,
} from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import { IngestError } from '../errors.js';

export interface BodyDecoder {
  /** Decodes a piece; returns false when the caller should wait for `onDrain` before the next. */
  write(chunk: Buffer): boolean;
  /** No more input: `onEnd` follows the last output. */
  end(): void;
  destroy(): void;
}

export interface DecoderEvents {
  onData(chunk: Buffer): void;
  onEnd(): void;
  onError(err: IngestError): void;
  onDrain(): void;
}

export const SUPPORTED_ENCODINGS = ['identity', 'gzip', 'x-gzip', 'deflate', 'br', 'zstd'];

/** Normalised encoding, or throws 415. `undefined`/empty is identity. */
export function parseContentEncoding(header: string | string[] | undefined): string {
  const raw = Array.isArray(header) ? header.join(',') : (header ?? '');
  const codings = raw
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== '' && s !== 'identity');
  if (codings.length === 0) return 'identity';
  if (codings.length > 1 || !SUPPORTED_ENCODINGS.includes(codings[0])) {
    throw new IngestError(
      'unsupported_encoding',
      `Content-Encoding "${raw}" is not supported; use identity, gzip, x-gzip, deflate, br or zstd`,
    );
  }
  return codings[0];
}

/** A decoder for a non-identity encoding. */
export function createDecoder(encoding: string, events: DecoderEvents): BodyDecoder {
  if (encoding === 'zstd') return new ZstdDecoder(events);
  if (encoding === 'deflate') return new SniffingDeflateDecoder(events);
  return new ZlibDecoder(
    encoding === 'br' ? createBrotliDecompress() : (createGunzip() as Gunzip),
    events,
  );
}

class ZlibDecoder implements BodyDecoder {
  private failed = false;

  constructor(
    private readonly stream: NodeJS.ReadWriteStream & { destroy(): void },
    private readonly events: DecoderEvents,
  ) {
    stream.on('data', (chunk: Buffer) => {
      if (!this.failed) events.onData(chunk);
    });
    stream.on('end', () => {
      if (!this.failed) events.onEnd();
    });
    stream.on('drain', () => events.onDrain());
    stream.on('error', (err: Error) => {
      if (this.failed) return;
      this.failed = true;
      events.onError(
        new IngestError('corrupt_body', `the body could not be decoded: ${err.message}`, {
          cause: err,
        }),
      );
    });
  }

  write(chunk: Buffer): boolean {
    return this.stream.write(chunk);
  }

  end(): void {
    this.stream.end();
  }

  destroy(): void {
    this.failed = true;
    this.stream.destroy();
  }
}

/**
 * HTTP's `deflate` is zlib-wrapped (RFC 9110 §8.4.1.2), but some clients send raw deflate: a
 * zlib header is a CMF byte with method 8 and window ≤ 32 KiB, whose 16-bit value with FLG is a
 * multiple of 31; anything else is taken as raw deflate.
 */
class SniffingDeflateDecoder implements BodyDecoder {
  private inner: ZlibDecoder | null = null;
  private head: Buffer | null = null;
  private ended = false;

  constructor(private readonly events: DecoderEvents) {}

  write(chunk: Buffer): boolean {
    if (this.inner !== null) return this.inner.write(chunk);
    this.head = this.head === null ? chunk : Buffer.concat([this.head, chunk]);
    if (this.head.length < 2) return true;
    return this.start();
  }

  end(): void {
    this.ended = true;
    if (this.inner === null) {
      if (this.head === null || this.head.length === 0) {
        this.events.onEnd();
        return;
      }
      this.start();
    }
    this.inner!.end();
  }

  destroy(): void {
    this.inner?.destroy();
  }

  private start(): boolean {
    const h = this.head!;
    const zlibWrapped =
      h.length >= 2 && (h[0] & 0x0f) === 8 && h[0] >> 4 <= 7 && ((h[0] << 8) | h[1]) % 31 === 0;
    this.inner = new ZlibDecoder(zlibWrapped ? createInflate() : createInflateRaw(), this.events);
    this.head = null;
    return this.inner.write(h);
  }
}

class ZstdDecoder implements BodyDecoder {
  private readonly zstd: ZstdDecompress;
  private failed = false;

  constructor(private readonly events: DecoderEvents) {
    this.zstd = new ZstdDecompress((chunk: Uint8Array) => {
      if (!this.failed && chunk.length > 0) {
        events.onData(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
      }
    });
  }

  write(chunk: Buffer): boolean {
    this.push(chunk, false);
    return true;
  }

  end(): void {
    if (this.push(new Uint8Array(0), true)) this.events.onEnd();
  }

  destroy(): void {
    this.failed = true;
  }

  private push(chunk: Uint8Array, final: boolean): boolean {
    if (this.failed) return false;
    try {
      this.zstd.push(chunk, final);
      return !this.failed;
    } catch (err) {
      if (this.failed) return false;
      this.failed = true;
      this.events.onError(
        new IngestError(
          'corrupt_body',
          `the zstd body could not be decoded: ${(err as Error).message}`,
          {
            cause: err,
          },
        ),
      );
      return false;
    }
  }
}
