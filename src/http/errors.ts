/**
 * The one catalogue of request-level failures: a stable code, its HTTP status and message.
 * Everything that answers an error (ingest, framework errors, unknown routes) maps through here,
 * and test/errors.test.ts checks that every code is documented in the README.
 */
export const ERRORS = {
  bad_request: { status: 400, message: 'malformed request' },
  corrupt_body: { status: 400, message: 'the compressed body could not be decoded' },
  client_aborted: {
    status: 400,
    message: 'the client closed the connection before the body ended',
  },
  unauthorized: { status: 401, message: 'a valid "Authorization: Bearer <token>" is required' },
  forbidden: { status: 403, message: 'this token may not append to this dataset' },
  not_found: { status: 404, message: 'no such route' },
  unknown_dataset: { status: 404, message: 'no dataset of that name; nothing was written' },
  method_not_allowed: { status: 405, message: 'method not allowed on this route' },
  body_timeout: { status: 408, message: 'the request body was not received in time' },
  request_timeout: { status: 408, message: 'the request took longer than REQUEST_TIMEOUT_MS' },
  body_too_slow: {
    status: 408,
    message:
      'the request body arrived slower than MIN_BODY_RATE bytes/s on average once MIN_BODY_RATE_GRACE_MS had passed; nothing was written',
  },
  expectation_failed: { status: 417, message: 'the only Expect value supported is 100-continue' },
  body_too_large: { status: 413, message: 'the request body is larger than MAX_BODY_BYTES' },
  decoded_body_too_large: {
    status: 413,
    message: 'the decompressed body is larger than MAX_DECODED_BYTES',
  },
  quarantine_too_large: {
    status: 413,
    message: 'the quarantine records of this request are larger than MAX_QUARANTINE_BYTES',
  },
  window_too_large: {
    status: 413,
    message: 'the compressed stream declares a window larger than MAX_DECODER_WINDOW_BYTES',
  },
  unsupported_encoding: {
    status: 415,
    message: 'Content-Encoding must be identity, gzip, x-gzip, deflate, br or zstd',
  },
  header_too_large: { status: 431, message: 'request headers too large' },
  overloaded: { status: 503, message: 'too many requests in flight, retry later' },
  no_space: { status: 507, message: 'no space left on the CSV file system; nothing was written' },
  internal: { status: 500, message: 'internal error; nothing was written' },
  lock_timeout: {
    status: 500,
    message: 'the commit lock was not obtained within LOCK_TIMEOUT_MS; nothing was written',
  },
  commit_record_unreadable: {
    status: 500,
    message:
      'the commit record in the lock file is unreadable; ingest stops until an operator repairs it (docs/OPERATIONS.md, Durability); nothing was written',
  },
  not_implemented: {
    status: 501,
    message: 'only the chunked transfer coding is supported (Transfer-Encoding)',
  },
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** A request-level failure: the request wrote nothing. */
export class IngestError extends Error {
  readonly status: number;
  /** Seconds for Retry-After (429/503). */
  readonly retryAfter: number | undefined;
  /** Body bytes received before the failure, when a body was being read (for the log line). */
  receivedBytes: number | undefined;

  constructor(
    readonly code: ErrorCode,
    message?: string,
    options?: { cause?: unknown; retryAfter?: number },
  ) {
    // A client's error or a refusal for load is an answer, not a fault: no stack trace, which
    // costs ~10 µs to capture and which nothing reads. Under a spike refusals come thousands a
    // second, and the capture was an eighth of a refusal's CPU (a profile of refusals alone).
    // Server-side failures keep theirs (the cause's, for a wrapped error, is what is logged).
    const limit = Error.stackTraceLimit;
    if (ERRORS[code].status < 500 || code === 'overloaded') Error.stackTraceLimit = 0;
    try {
      super(message ?? ERRORS[code].message, { cause: options?.cause });
    } finally {
      Error.stackTraceLimit = limit;
    }
    this.name = 'IngestError';
    this.status = ERRORS[code].status;
    this.retryAfter = options?.retryAfter;
  }
}

/** The error answer body: `{"result":{"status":"error","error":{code,message},"request_id"}}`. */
export function errorBody(
  code: string,
  message: string,
  requestId: string,
  /** On `/v0/events`: Tinybird's top-level `error` too, which its SDKs read (SPEC §3). */
  tinybird = false,
): string {
  const result = { status: 'error', error: { code, message }, request_id: requestId };
  return JSON.stringify(tinybird ? { error: message, result } : { result });
}

/** Maps any thrown value to a catalogue error; unknown ones become `internal`. */
export function toIngestError(err: unknown): IngestError {
  if (err instanceof IngestError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new IngestError('no_space', undefined, { cause: err });
  return new IngestError('internal', undefined, { cause: err });
}
