/**
 * The datasets of this service, by name, with who may write to each (SPEC §3, §8). Built once
 * from the configuration; lookups per request are a Map get and a few constant-time compares.
 */
import { timingSafeEqual } from 'node:crypto';
import { IngestError } from '../http/errors.js';
import type { Dataset, DatasetsDefinition } from './datasets-file.js';

export class DatasetRegistry {
  private readonly byName = new Map<string, Dataset>();
  private readonly globalTokens: Buffer[];
  private readonly ownTokens = new Map<string, Buffer[]>();
  readonly defaultDataset: Dataset;

  constructor(definition: DatasetsDefinition, ingestTokens: readonly string[]) {
    for (const d of definition.datasets) {
      this.byName.set(d.name, d);
      this.ownTokens.set(
        d.name,
        d.tokens.map((t) => Buffer.from(t)),
      );
    }
    this.defaultDataset = this.byName.get(definition.defaultName)!;
    this.globalTokens = ingestTokens.map((t) => Buffer.from(t));
  }

  get all(): Dataset[] {
    return [...this.byName.values()];
  }

  /** The dataset of a route; undefined: 404 unknown_dataset. */
  find(name: string | undefined): Dataset | undefined {
    return name === undefined ? this.defaultDataset : this.byName.get(name);
  }

  /**
   * A request to a dataset that does not exist: 401 unless its token is valid somewhere (or no
   * token is needed anywhere), so that only a client allowed to write learns which names exist;
   * then 404 unknown_dataset.
   */
  refuseUnknown(name: string, header: string | undefined): never {
    const anyTokens =
      this.globalTokens.length > 0 || [...this.ownTokens.values()].some((t) => t.length > 0);
    if (anyTokens) {
      const given = bearer(header);
      const known =
        given !== null &&
        (matches(this.globalTokens, given) ||
          [...this.ownTokens.values()].some((t) => matches(t, given)));
      if (!known) throw new IngestError('unauthorized');
    }
    throw new IngestError(
      'unknown_dataset',
      name === ''
        ? 'POST /v0/events needs the dataset as ?name=<dataset>; nothing was written'
        : `no dataset named ${JSON.stringify(name.slice(0, 64))}; nothing was written`,
    );
  }

  /**
   * SPEC §3: with INGEST_TOKENS or the dataset's own tokens set, a request needs one of them;
   * none or an unknown one is 401, one valid for another dataset only is 403.
   */
  authorize(dataset: Dataset, header: string | undefined): void {
    const own = this.ownTokens.get(dataset.name)!;
    if (this.globalTokens.length === 0 && own.length === 0) return;
    const given = bearer(header);
    if (given === null) throw new IngestError('unauthorized');
    // Every list is compared in full, so the time does not tell which token matched.
    const global = matches(this.globalTokens, given);
    const mine = matches(own, given);
    if (global || mine) return;
    let elsewhere = false;
    for (const [name, tokens] of this.ownTokens) {
      if (name !== dataset.name && matches(tokens, given)) elsewhere = true;
    }
    if (elsewhere) {
      throw new IngestError('forbidden', `this token may not append to dataset "${dataset.name}"`);
    }
    throw new IngestError('unauthorized');
  }
}

function bearer(header: string | undefined): Buffer | null {
  if (header === undefined || !/^bearer /i.test(header)) return null;
  return Buffer.from(header.slice(7).trim());
}

function matches(tokens: readonly Buffer[], given: Buffer): boolean {
  let ok = false;
  for (const token of tokens) {
    // Constant time per token, so the answer time does not tell how much of a token matched.
    if (token.length === given.length && timingSafeEqual(token, given)) ok = true;
  }
  return ok;
}
