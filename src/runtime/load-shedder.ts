/**
 * Load shedding by proportion (issue 17). A worker that sheds every new request while its event
 * loop is behind, and none once it has caught up, swings between the two: refused bodies are still
 * read to keep their connections (src/http/http-answers.ts, OVERLOAD_DRAIN_BYTES), so under a
 * spike the loop stays behind on the refusals alone and nothing is admitted for seconds, then
 * everything is and the loop falls behind again.
 *
 * Instead, the share of new requests admitted follows the pressure signal, one step per sample
 * (SHED_SAMPLE_MS): halved while the worker is under pressure, down to MIN_SHARE, so that some
 * work always goes on; doubled once it is not, so full throughput is back a few samples after a
 * spike ends. Admissions are spread evenly (a running credit, not a coin toss), so a 0.25 share
 * admits one request in four.
 */
export const MIN_SHARE = 1 / 32;

export class LoadShedder {
  private admitShare = 1;
  private credit = 0;

  /** The share of new requests admitted now (1: all). */
  get share(): number {
    return this.admitShare;
  }

  /** One sample of the pressure signal. */
  sample(underPressure: boolean): void {
    this.admitShare = underPressure
      ? Math.max(MIN_SHARE, this.admitShare / 2)
      : Math.min(1, this.admitShare * 2);
    if (this.admitShare === 1) this.credit = 0;
  }

  /** Whether to admit the next request. */
  admit(): boolean {
    if (this.admitShare === 1) return true;
    this.credit += this.admitShare;
    if (this.credit < 1) return false;
    this.credit -= 1;
    return true;
  }
}
