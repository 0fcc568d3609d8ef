/**
 * Reads one request body as it arrives: counts and limits it, decodes it, feeds the transform and
 * collects the rows and quarantine records of the request, ready for one commit. Nothing here
 * writes to the CSV files; a request that fails here leaves no trace.
 */
import type { IncomingMessage } from 'node:http';
import { isUtf8 } from 'node:buffer';
import { NdjsonCsvTransform, type InvalidReason, type RowMeta } from './core/ndjson-csv.js';
import type { ColumnSpec } from './core/schema.js';
import { PendingBytes } from '../csv/pending-bytes.js';
import { createDecoder, type BodyDecoder, type DecoderLimits } from './body-decoder.js';
import { LONG_LINE_BYTES, type LongLineBudget } from './long-line-budget.js';
import { IngestError } from '../http/errors.js';

export interface BodyLimits {
  /** The dataset's columns (the same array for every request: its compiled form is cached). */
  columns: readonly (string | ColumnSpec)[];
  eol: 'crlf' | 'lf';
  maxLineBytes: number;
  maxBodyBytes: number;
  maxDecodedBytes: number;
  bodyTimeoutMs: number;
  /** Bytes/s on average since the request began, checked after the grace period (0: off). */
  minBodyRate: number;
  minBodyRateGraceMs: number;
  spillDir: string;
  spillThresholdBytes: number;
  /** Quarantine records of one request, in bytes (413 `quarantine_too_large` beyond). */
  maxQuarantineBytes: number;
  /** Window bound and the worker's decoder memory budget. */
  decoders: DecoderLimits;
  /** The worker's room for long lines being read (LONG_LINE_MEMORY_BYTES). */
  longLines: LongLineBudget;
}

export interface LineError {
  line: number;
  error: InvalidReason;
  message: string;
  /** The column of a column-level reason (type_mismatch, missing_value, invalid_unicode). */
  column?: string;
}

export interface ReadBody {
  receivedBytes: number;
  decodedBytes: number;
  valid: number;
  invalid: number;
  /** The first 10 invalid lines. */
  errors: LineError[];
  rows: PendingBytes;
  quarantine: PendingBytes;
  /** Seconds spent decoding and transforming. */
  parseSeconds: number;
}

export const MAX_REPORTED_ERRORS = 10;

const REASON_MESSAGES: Record<InvalidReason, string> = {
  invalid_json: 'the line is not one valid JSON text (RFC 8259)',
  invalid_utf8: 'the line is not valid UTF-8',
  not_object: 'the line is valid JSON but not an object',
  invalid_unicode: 'a kept string field holds a lone surrogate, which cannot be written as UTF-8',
  line_too_long: 'the line is longer than MAX_LINE_BYTES',
  type_mismatch: "the value is not of the column's type",
  missing_value: 'the value is missing or null, and the column is not nullable and has no default',
};

/**
 * One quarantine line: `{"request_id","line","error","raw"}`, with `raw_base64` instead of `raw`
 * when the line is not UTF-8, or when JSON escaping would grow it by more than 4/3 (what base64
 * costs), give or take ESCAPE_SLACK bytes.
 * A control byte escapes to 6 bytes (`\u0001`): a 99 KB gzip body of them wrote a 600 MB
 * quarantine file under the lock every worker shares (issue 13, item 7); base64 caps that at 4/3.
 */
export function quarantineRecord(
  requestId: string,
  line: number,
  reason: InvalidReason,
  raw: Buffer,
  lineBytes: number,
  column?: string,
): string {
  const named = column === undefined ? '' : `"column":${JSON.stringify(column)},`;
  const head = `{"request_id":${JSON.stringify(requestId)},"line":${line},"error":"${reason}",${named}`;
  const cut = lineBytes > raw.length ? `,"truncated":true,"line_bytes":${lineBytes}` : '';
  if (escapedLength(raw) <= (raw.length * 4) / 3 + ESCAPE_SLACK && isUtf8(raw)) {
    return `${head}"raw":${JSON.stringify(raw.toString('utf8'))}${cut}}\n`;
  }
  return `${head}"raw_base64":"${raw.toString('base64')}"${cut}}\n`;
}

/**
 * Escaping a short line may pass 4/3 by a few bytes (each `"` of a JSON line costs one): up to
 * this many more keep it readable as `raw`. A record already carries ~80 bytes of its own.
 */
const ESCAPE_SLACK = 64;

/** Bytes of `raw` inside a JSON string as JSON.stringify writes it (raw is taken as UTF-8). */
function escapedLength(raw: Buffer): number {
  let n = raw.length;
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i];
    if (b === 0x22 || b === 0x5c) n += 1;
    else if (b < 0x20)
      n += b === 0x08 || b === 0x09 || b === 0x0a || b === 0x0c || b === 0x0d ? 1 : 5;
  }
  return n;
}

export function readBody(
  req: IncomingMessage,
  encoding: string,
  requestId: string,
  limits: BodyLimits,
  /** Time left for the whole request (REQUEST_TIMEOUT_MS minus what has passed). */
  deadlineMs: number,
  /** Values of the dataset's meta columns, if it has any. */
  meta?: RowMeta,
  /** When the request began (performance.now()), for MIN_BODY_RATE. */
  startedAt = performance.now(),
): Promise<ReadBody> {
  return new Promise<ReadBody>((resolve, reject) => {
    const rows = new PendingBytes(limits.spillDir, limits.spillThresholdBytes);
    const quarantine = new PendingBytes(limits.spillDir, limits.spillThresholdBytes);
    const errors: LineError[] = [];
    // Set by the listener, which runs inside the transform: the request fails after the push.
    let quarantineOverflow = false;
    const transform = new NdjsonCsvTransform(
      { columns: limits.columns, eol: limits.eol, maxLineBytes: limits.maxLineBytes, meta },
      (line, reason, raw, lineBytes, column) => {
        if (errors.length < MAX_REPORTED_ERRORS) {
          const message = REASON_MESSAGES[reason];
          errors.push(
            column === undefined
              ? { line, error: reason, message }
              : { line, error: reason, column, message: `${message} (column ${column})` },
          );
        }
        if (quarantineOverflow) return;
        const record = Buffer.from(
          quarantineRecord(requestId, line, reason, raw, lineBytes, column),
        );
        if (quarantine.length + record.length > limits.maxQuarantineBytes) {
          quarantineOverflow = true;
          return;
        }
        quarantine.append(record);
      },
    );
    const quarantineTooLarge = (): IngestError =>
      new IngestError(
        'quarantine_too_large',
        `the invalid lines of this request make more than MAX_QUARANTINE_BYTES (${limits.maxQuarantineBytes}) of quarantine records; nothing was written`,
      );
    let receivedBytes = 0;
    let decodedBytes = 0;
    let parseNs = 0n;
    let done = false;
    let decoder: BodyDecoder | null = null;
    // Long lines (long-line-budget.ts): the room this request holds, or its place in line.
    const longLines = limits.longLines;
    const lineRoom = limits.maxLineBytes + 2;
    let reserved = 0;
    let leaveLine: (() => void) | null = null;
    let waitStarted = 0;
    /** Time spent waiting for long-line room: not the client's, so not held against its rate. */
    let waitedMs = 0;

    /**
     * After each push: reserve room when the copy of the partial line grows long, hand it on once
     * the transform has let go of that copy (the long line ended).
     */
    const checkLongLine = (): void => {
      const partial = transform.lineBufferBytes;
      if (reserved > 0) {
        if (partial <= LONG_LINE_BYTES) {
          longLines.release(reserved);
          reserved = 0;
        }
        return;
      }
      if (partial <= LONG_LINE_BYTES || leaveLine !== null) return;
      if (longLines.tryReserve(lineRoom)) {
        reserved = lineRoom;
        return;
      }
      // Wait with the body paused; output a decoder still makes from what it holds is taken in.
      req.pause();
      waitStarted = performance.now();
      leaveLine = longLines.wait(lineRoom, () => {
        leaveLine = null;
        reserved = lineRoom;
        waitedMs += performance.now() - waitStarted;
        idle.refresh();
        req.resume();
      });
    };

    const fail = (err: unknown): void => {
      if (done) return;
      done = true;
      if (err instanceof IngestError) err.receivedBytes = receivedBytes;
      cleanup();
      decoder?.destroy();
      transform.release();
      rows.dispose();
      quarantine.dispose();
      // Stop reading; the caller answers and closes the connection.
      req.pause();
      reject(err);
    };

    const feed = (chunk: Buffer): void => {
      if (done) return;
      decodedBytes += chunk.length;
      if (decodedBytes > limits.maxDecodedBytes) {
        fail(new IngestError('decoded_body_too_large'));
        return;
      }
      const t0 = process.hrtime.bigint();
      try {
        rows.append(transform.push(chunk));
      } catch (err) {
        fail(err);
        return;
      }
      parseNs += process.hrtime.bigint() - t0;
      if (quarantineOverflow) fail(quarantineTooLarge());
      else checkLongLine();
    };

    const finish = (): void => {
      if (done) return;
      try {
        rows.append(transform.end());
      } catch (err) {
        fail(err);
        return;
      }
      transform.release();
      if (quarantineOverflow) {
        fail(quarantineTooLarge());
        return;
      }
      done = true;
      cleanup();
      resolve({
        receivedBytes,
        decodedBytes,
        valid: transform.valid,
        invalid: transform.invalid,
        errors,
        rows,
        quarantine,
        parseSeconds: Number(parseNs) / 1e9,
      });
    };

    if (encoding !== 'identity') {
      decoder = createDecoder(
        encoding,
        {
          onData: feed,
          onEnd: finish,
          onError: fail,
          onDrain: () => {
            if (!done && leaveLine === null) req.resume();
          },
        },
        limits.decoders,
      );
    }

    // While waiting for long-line room the body is paused by us: no body_timeout then (the timer
    // is refreshed when the wait ends).
    let idle = setTimeout(() => {
      if (leaveLine === null) fail(new IngestError('body_timeout'));
    }, limits.bodyTimeoutMs);
    const whole = setTimeout(
      () => fail(new IngestError('request_timeout')),
      Math.max(1, deadlineMs),
    );
    // MIN_BODY_RATE: one timer, set for the moment the average could first fall below the rate
    // if no more bytes came; at that moment either it has (408) or the next such moment is set.
    // A slow client thus holds a MAX_IN_FLIGHT slot for the grace period plus what it sent at
    // the rate, not for REQUEST_TIMEOUT_MS.
    let slow: NodeJS.Timeout | undefined;
    const checkRate = (): void => {
      if (leaveLine !== null) {
        armRate(Math.max(50, limits.minBodyRateGraceMs));
        return;
      }
      const elapsed = performance.now() - startedAt - waitedMs;
      if (receivedBytes < (elapsed / 1000) * limits.minBodyRate) {
        fail(
          new IngestError(
            'body_too_slow',
            `the request body arrived at ${Math.round(receivedBytes / (elapsed / 1000))} bytes/s on average, below MIN_BODY_RATE (${limits.minBodyRate}) after MIN_BODY_RATE_GRACE_MS (${limits.minBodyRateGraceMs} ms); nothing was written`,
          ),
        );
        return;
      }
      const due = (receivedBytes / limits.minBodyRate) * 1000;
      armRate(Math.max(50, due - elapsed));
    };
    const armRate = (ms: number): void => {
      slow = setTimeout(checkRate, ms);
      slow.unref();
    };
    if (limits.minBodyRate > 0) {
      armRate(Math.max(0, limits.minBodyRateGraceMs - (performance.now() - startedAt)));
    }

    const onData = (chunk: Buffer): void => {
      receivedBytes += chunk.length;
      if (receivedBytes > limits.maxBodyBytes) {
        fail(new IngestError('body_too_large'));
        return;
      }
      idle.refresh();
      if (decoder === null) {
        feed(chunk);
      } else if (!decoder.write(chunk)) {
        req.pause();
      }
    };
    const onEnd = (): void => {
      // An empty body is a request with no records whatever its Content-Encoding (an empty
      // gzip or br "stream" carries nothing to lose), answered 200 like an empty identity body.
      if (decoder === null || receivedBytes === 0) {
        decoder?.destroy();
        finish();
      } else {
        decoder.end();
      }
    };
    const onError = (err: Error): void => {
      fail(
        new IngestError('client_aborted', `the client went away: ${err.message}`, { cause: err }),
      );
    };
    const onClose = (): void => {
      if (!req.complete) fail(new IngestError('client_aborted'));
    };
    const cleanup = (): void => {
      leaveLine?.();
      leaveLine = null;
      if (reserved > 0) longLines.release(reserved);
      reserved = 0;
      clearTimeout(idle);
      clearTimeout(whole);
      clearTimeout(slow);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    idle = idle.unref();
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}
