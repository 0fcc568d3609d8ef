/** Injection tokens: the module options and the side effects a test can swap. */
export const INGEST_CONFIG = Symbol('INGEST_CONFIG');
export const INGEST_METRICS = Symbol('INGEST_METRICS');
