/**
 * Writes one section of a Markdown report (BENCHMARKS.md): creates the file with a title when it is
 * missing, replaces the section between its markers, and formats the result with the project's
 * Prettier settings, so that `npm run check` passes on a freshly written report.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { format, resolveConfig } from 'prettier';
import { replaceSection } from './report.js';

/**
 * Prints a report section; with `--write` on the command line, also writes it into BENCHMARKS.md
 * (the benchmarks whose sections are only rewritten on request).
 */
export async function publishSection(name: string, body: string): Promise<void> {
  console.log(`\n${body}`);
  if (process.argv.includes('--write')) {
    await writeSection(new URL('../BENCHMARKS.md', import.meta.url), name, body);
    console.log(`\nwrote the ${name} section of BENCHMARKS.md`);
  }
}

export async function writeSection(file: URL, name: string, body: string): Promise<void> {
  const path = fileURLToPath(file);
  const doc = existsSync(path) ? readFileSync(path, 'utf8') : '# Benchmarks\n';
  const options = (await resolveConfig(path)) ?? {};
  writeFileSync(
    path,
    await format(replaceSection(doc, name, body), { ...options, filepath: path }),
  );
}
