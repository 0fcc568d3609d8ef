/** Small helpers shared by the benchmarks. */
import { cpus, totalmem } from 'node:os';

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

export function machine(): string {
  const cpu = cpus();
  return `${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Node.js ${process.version}`;
}

/** The closing lines of every report section: where, how and when it was measured. */
export function provenance(
  command: string,
  date = new Date().toISOString().slice(0, 10),
): string[] {
  return [`Machine: ${machine()}.`, `Command: \`${command}\`.`, `Date: ${date}.`];
}

/** Replaces the text between `<!-- name:start -->` and `<!-- name:end -->`, or appends it. */
export function replaceSection(doc: string, name: string, body: string): string {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const a = doc.indexOf(start);
  const b = doc.indexOf(end);
  if (a < 0 || b < a) return `${doc.trimEnd()}\n\n${start}\n${body}\n${end}\n`;
  return `${doc.slice(0, a + start.length)}\n${body}\n${doc.slice(b)}`;
}
