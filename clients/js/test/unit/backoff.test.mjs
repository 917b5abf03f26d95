import { test } from "node:test";
import assert from "node:assert/strict";
import { backoffDelay, goingAwayDelay, uuidv7 } from "../../dist/index.js";

const SAMPLES = 4000;

function sample(f) {
  const xs = [];
  for (let i = 0; i < SAMPLES; i++) xs.push(f());
  return { xs, min: Math.min(...xs), max: Math.max(...xs), mean: xs.reduce((a, b) => a + b, 0) / xs.length };
}

test("backoff delay is min(cap, base*2^n) * random(0.5, 1): uniform over the upper half", () => {
  for (let n = 0; n <= 12; n++) {
    const d = Math.min(30_000, 500 * 2 ** n);
    const { xs, min, max, mean } = sample(() => backoffDelay(n));
    assert.ok(min >= d / 2 && max <= d, `n=${n}: delays in [${min}, ${max}], want within [${d / 2}, ${d}]`);
    assert.ok(Math.abs(mean - 0.75 * d) < 0.02 * d, `n=${n}: mean ${mean}, want about ${0.75 * d}`);
    // Uniform: each quarter of [d/2, d] holds about a quarter of the samples.
    for (let q = 0; q < 4; q++) {
      const lo = d / 2 + (q * d) / 8, hi = lo + d / 8;
      const share = xs.filter((x) => x >= lo && (x < hi || (q === 3 && x <= hi))).length / SAMPLES;
      assert.ok(Math.abs(share - 0.25) < 0.04, `n=${n}: quarter ${q} holds ${share}`);
    }
  }
});

test("backoff keeps its jitter at the cap, for an hour of retries and more", () => {
  for (const n of [6, 20, 100, 5000]) {
    const { min, max } = sample(() => backoffDelay(n));
    assert.ok(min >= 15_000 && max <= 30_000, `n=${n}: [${min}, ${max}]`);
    assert.ok(min < 16_000 && max > 29_000, `n=${n}: jitter lost at the cap: [${min}, ${max}]`);
  }
});

test("backoff never goes below the floor, and options change base, cap and floor", () => {
  assert.equal(backoffDelay(0, { baseMs: 10 }, () => 0), 100);
  assert.equal(backoffDelay(0, { baseMs: 10, floorMs: 3 }, () => 0), 5);
  assert.equal(backoffDelay(3, { baseMs: 100, capMs: 400 }, () => 0.999999), 400);
  assert.equal(backoffDelay(1, {}, () => 0), 500);
});

test("after 1001 the first attempt is random in [0, 5 s], with the floor", () => {
  const { min, max, mean } = sample(() => goingAwayDelay());
  assert.ok(min >= 100 && max <= 5000, `[${min}, ${max}]`);
  assert.ok(min < 200 && max > 4800, `not spread over the window: [${min}, ${max}]`);
  assert.ok(Math.abs(mean - 2500) < 150, `mean ${mean}`);
});

test("uuidv7 keys: RFC 9562 layout, the time in front, unique and ordered", () => {
  const now = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
  const id = uuidv7(now);
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(parseInt(id.replace(/-/g, "").slice(0, 12), 16), now);
  const ids = Array.from({ length: 10_000 }, () => uuidv7());
  assert.equal(new Set(ids).size, ids.length);
  assert.deepEqual([...ids].sort(), ids, "keys made one after another sort in order");
  const same = Array.from({ length: 5000 }, () => uuidv7(now + 1000));
  assert.deepEqual([...same].sort(), same, "keys made in one millisecond sort in order");
});
