/** The defaults of BackoffOptions, as PROTOCOL.md gives them. */
export const BACKOFF_DEFAULTS = {
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
export function withBackoffDefaults(o = {}) {
    const pick = (v, def) => (v !== undefined && v > 0 ? v : def);
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
export function backoffDelay(n, o = {}, random = Math.random) {
    const b = withBackoffDefaults(o);
    const d = Math.min(b.capMs, b.baseMs * 2 ** Math.min(n, 60));
    return Math.max(b.floorMs, Math.round(d * (0.5 + 0.5 * random())));
}
/**
 * goingAwayDelay returns the wait before the first attempt after a 1001
 * close: random in [0, 5 s], never less than the floor.
 */
export function goingAwayDelay(o = {}, random = Math.random) {
    return Math.max(withBackoffDefaults(o).floorMs, Math.round(GOING_AWAY_SPREAD_MS * random()));
}
