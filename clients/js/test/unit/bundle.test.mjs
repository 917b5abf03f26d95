import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const dist = fileURLToPath(new URL("../../dist/", import.meta.url));
const web = fileURLToPath(new URL("../../../../web/static/herald-client/", import.meta.url));

test("web/static/herald-client, which herald serve embeds, is the current build (npm run build refreshes it)", () => {
  const built = readdirSync(dist).filter((f) => f.endsWith(".js")).sort();
  assert.deepEqual(readdirSync(web).sort(), built);
  for (const f of built) {
    assert.equal(readFileSync(web + f, "utf8"), readFileSync(dist + f, "utf8"), `web/static/herald-client/${f} is stale`);
  }
});
