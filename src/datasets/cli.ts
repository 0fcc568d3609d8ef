/**
 * Operator commands for datasets files, without starting the service:
 *
 *   npm run datasets -- check FILE
 *   npm run datasets -- ddl FILE [--dialect duckdb|clickhouse] [--dir CSV_DIR]
 *
 * `check` exits 0 and prints a summary when the file would start the service, else prints the
 * same message start-up would and exits 1.
 */
import { DatasetsFileError, loadDatasetsFile } from './datasets-file.js';
import { ddl, type Dialect } from './ddl.js';

const USAGE =
  'usage: npm run datasets -- check FILE\n' +
  '       npm run datasets -- ddl FILE [--dialect duckdb|clickhouse] [--dir CSV_DIR]\n';

function main(argv: string[]): number {
  const [command, file, ...rest] = argv;
  if ((command !== 'check' && command !== 'ddl') || file === undefined) {
    process.stderr.write(USAGE);
    return 2;
  }
  const options = new Map<string, string>();
  for (let i = 0; i < rest.length; i += 2) {
    if (!rest[i].startsWith('--') || rest[i + 1] === undefined) {
      process.stderr.write(USAGE);
      return 2;
    }
    options.set(rest[i].slice(2), rest[i + 1]);
  }
  const eol = process.env.CSV_EOL === 'lf' ? 'lf' : 'crlf';
  let definition;
  try {
    definition = loadDatasetsFile(file, eol);
  } catch (err) {
    if (err instanceof DatasetsFileError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    throw err;
  }
  if (command === 'check') {
    process.stdout.write(`${file}: ok, ${definition.datasets.length} dataset(s)\n`);
    for (const d of definition.datasets) {
      const marks = [
        d.name === definition.defaultName ? 'default' : '',
        d.header ? 'header' : '',
        d.tokens.length > 0 ? `${d.tokens.length} token(s)` : '',
      ].filter((m) => m !== '');
      process.stdout.write(
        `  ${d.name}: ${d.specs.length} column(s), files ${d.prefix}-YYYY-MM-DD.csv, eol ${d.eol}` +
          `${marks.length > 0 ? ` (${marks.join(', ')})` : ''}\n`,
      );
    }
    return 0;
  }
  const dialect = options.get('dialect') ?? 'duckdb';
  if (dialect !== 'duckdb' && dialect !== 'clickhouse') {
    process.stderr.write(`--dialect must be duckdb or clickhouse, got ${dialect}\n`);
    return 2;
  }
  for (const d of definition.datasets) {
    process.stdout.write(ddl(d, dialect as Dialect, options.get('dir') ?? 'csv') + '\n');
  }
  return 0;
}

process.exitCode = main(process.argv.slice(2));
