/**
 * The obvious alternative to the byte scanner: split lines, `JSON.parse` each, write the kept
 * fields as CSV. Used as the baseline in bench/core.bench.ts and by the naive server variant.
 * Differences from the real transform (on purpose, it is a baseline): numbers are re-serialised
 * (`1.50` becomes `1.5`), no UTF-8 or surrogate checks.
 */
export class JsonParseBaseline {
  valid = 0;
  invalid = 0;
  private tail = '';
  private readonly eol: string;

  constructor(
    private readonly columns: readonly string[],
    eol: 'crlf' | 'lf' = 'crlf',
  ) {
    this.eol = eol === 'lf' ? '\n' : '\r\n';
  }

  push(chunk: Buffer): string {
    const text = this.tail + chunk.toString('utf8');
    const lines = text.split('\n');
    this.tail = lines.pop() ?? '';
    return this.rows(lines);
  }

  end(): string {
    const rest = this.tail;
    this.tail = '';
    return rest === '' ? '' : this.rows([rest]);
  }

  private rows(lines: string[]): string {
    let out = '';
    for (const line of lines) {
      if (line.trim() === '') continue;
      let record: unknown;
      try {
        record = JSON.parse(line);
      } catch {
        this.invalid++;
        continue;
      }
      if (record === null || typeof record !== 'object' || Array.isArray(record)) {
        this.invalid++;
        continue;
      }
      const values = record as Record<string, unknown>;
      out += this.columns.map((c) => cell(values[c])).join(',') + this.eol;
      this.valid++;
    }
    return out;
  }
}

function cell(v: unknown): string {
  if (v === undefined || v === null) return '';
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}
