/**
 * BackoffOptions is the reconnection schedule. Before attempt n (n = 0 for
 * the first retry) the client waits min(capMs, baseMs * 2^n) * random(0.5,
 * 1.0), and never less than floorMs. The jitter stays in force at the cap,
 * so clients that have been retrying for an hour are still spread out.
 * Missing fields take the defaults of PROTOCOL.md.
 */
export interface BackoffOptions {
  /** Default 500 ms. */
  baseMs?: number;
  /** Default 30 s. */
  capMs?: number;
  /** Default 100 ms. */
  floorMs?: number;
  /**
   * How long a connection must stay up, with all its resubscriptions
   * confirmed, before the attempt counter starts again from 0. A
   * connect-then-drop loop therefore keeps backing off. Default 10 s.
   */
  resetAfterMs?: number;
}

/** The defaults of BackoffOptions, as PROTOCOL.md gives them. */
export const BACKOFF_DEFAULTS: Required<BackoffOptions> = {
  baseMs: 500,
  capMs: 30_000,
  floorMs: 100,
  resetAfterMs: 10_000,
};

/**
 * GOING_AWAY_SPREAD_MS bounds the random delay before the first attempt
 * after the server closed with 1001 (shutting down or restarting).
 */
export const GOING_AWAY_SPREAD_MS = 5_000;

/** withBackoffDefaults fills the missing or non-positive fields of o. */
export function withBackoffDefaults(o: BackoffOptions = {}): Required<BackoffOptions> {
  const pick = (v: number | undefined, def: number) => (v !== undefined && v > 0 ? v : def);
  return {
    baseMs: pick(o.baseMs, BACKOFF_DEFAULTS.baseMs),
    capMs: pick(o.capMs, BACKOFF_DEFAULTS.capMs),
    floorMs: pick(o.floorMs, BACKOFF_DEFAULTS.floorMs),
    resetAfterMs: pick(o.resetAfterMs, BACKOFF_DEFAULTS.resetAfterMs),
  };
}

/**
 * backoffDelay returns the wait in whole milliseconds before attempt n (n >= 0).
 * random returns a number in [0, 1), like Math.random, which is the default.
 */
export function backoffDelay(n: number, o: BackoffOptions = {}, random: () => number = Math.random): number {
  const b = withBackoffDefaults(o);
  const d = Math.min(b.capMs, b.baseMs * 2 ** Math.min(n, 60));
  return Math.max(b.floorMs, Math.round(d * (0.5 + 0.5 * random())));
}

/**
 * goingAwayDelay returns the wait before the first attempt after a 1001
 * close: random in [0, 5 s], never less than the floor.
 */
export function goingAwayDelay(o: BackoffOptions = {}, random: () => number = Math.random): number {
  return Math.max(withBackoffDefaults(o).floorMs, Math.round(GOING_AWAY_SPREAD_MS * random()));
}
