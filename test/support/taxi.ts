/**
 * Taxi-like NDJSON, generated: the project's own data for tests and benchmarks, so that a clone
 * without ../shared still runs them. Same fields, order and value shapes as the NYC sample.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const DEFAULT_COLUMNS = [
  'vendorid',
  'tpep_pickup_datetime',
  'trip_distance',
  'total_amount',
] as const;

/** ../shared/data/nyc_taxi_example.ndjson relative to the project root. */
export const SAMPLE_PATH = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'shared',
  'data',
  'nyc_taxi_example.ndjson',
);

export function sampleAvailable(): boolean {
  return existsSync(SAMPLE_PATH);
}

/** A small deterministic PRNG (mulberry32), so generated bodies are the same in every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function money(r: () => number, max: number): number {
  return Math.round(r() * max * 100) / 100;
}

function timestamp(seconds: number): string {
  return new Date(Date.UTC(2017, 0, 1) + seconds * 1000)
    .toISOString()
    .slice(0, 19)
    .replace('T', ' ');
}

/** One taxi-like record as an NDJSON line (with LF). */
export function taxiLine(r: () => number, index: number): string {
  const pickup = index * 2 + Math.floor(r() * 3);
  const fare = money(r, 60);
  const record = {
    vendorid: 1 + Math.floor(r() * 2),
    tpep_pickup_datetime: timestamp(pickup),
    tpep_dropoff_datetime: timestamp(pickup + Math.floor(r() * 3600)),
    passenger_count: 1 + Math.floor(r() * 5),
    trip_distance: money(r, 20),
    ratecodeid: 1 + Math.floor(r() * 2),
    store_and_fwd_flag: r() < 0.98 ? 'N' : 'Y',
    pulocationid: 1 + Math.floor(r() * 265),
    dolocationid: 1 + Math.floor(r() * 265),
    payment_type: 1 + Math.floor(r() * 2),
    fare_amount: fare,
    extra: r() < 0.5 ? 0 : 0.5,
    mta_tax: 0.5,
    tip_amount: money(r, 10),
    tolls_amount: r() < 0.9 ? 0 : 5.54,
    improvement_surcharge: 0.3,
    total_amount: Math.round((fare + 0.8) * 100) / 100,
  };
  return JSON.stringify(record) + '\n';
}

/** `count` generated records. */
export function taxiBody(count: number, seed = 1): Buffer {
  const r = prng(seed);
  let text = '';
  for (let i = 0; i < count; i++) text += taxiLine(r, i);
  return Buffer.from(text);
}

/**
 * The reference benchmark body: 16 copies of the sample (1,600 records, 584,480 bytes) when
 * ../shared is there, else 1,600 generated records of the same shape.
 */
export function referenceBody(): { body: Buffer; source: string } {
  if (sampleAvailable()) {
    const sample = readFileSync(SAMPLE_PATH);
    return { body: Buffer.concat(Array.from({ length: 16 }, () => sample)), source: '16 × sample' };
  }
  return { body: taxiBody(1600), source: '1,600 generated taxi-like records' };
}
