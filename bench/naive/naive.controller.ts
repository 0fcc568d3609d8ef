/**
 * The obvious way to write the service in Nest, for `npm run bench` to compare against: the body
 * arrives whole (Fastify's buffer parser), is split into lines, each line goes through
 * `JSON.parse`, and the kept fields are appended as CSV rows with `fs.appendFile`. Answers the
 * service's success shape. No streaming, no strict validation, no lock, no quarantine.
 */
import { randomUUID } from 'node:crypto';
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Body, Controller, HttpCode, Inject, Post } from '@nestjs/common';
import { JsonParseBaseline } from '../baseline.js';

export const NAIVE_OPTIONS = Symbol('NAIVE_OPTIONS');

export interface NaiveOptions {
  csvDir: string;
  csvPrefix: string;
  columns: readonly string[];
}

function localDay(d: Date): string {
  const m = String(d.getMonth() + 1).padStart(2, '0');
  return `${d.getFullYear()}-${m}-${String(d.getDate()).padStart(2, '0')}`;
}

@Controller()
export class NaiveIngestController {
  constructor(@Inject(NAIVE_OPTIONS) private readonly options: NaiveOptions) {}

  @Post(['/', '/ingest'])
  @HttpCode(200)
  async post(@Body() body: Buffer) {
    const csv = new JsonParseBaseline(this.options.columns);
    const rows = csv.push(body) + csv.end();
    const file = join(this.options.csvDir, `${this.options.csvPrefix}-${localDay(new Date())}.csv`);
    if (rows !== '') await appendFile(file, rows);
    return {
      result: {
        status: 'ok',
        stats: {
          bytes: body.length,
          records: { valid: csv.valid, invalid: csv.invalid, total: csv.valid + csv.invalid },
        },
        request_id: randomUUID(),
      },
    };
  }
}
