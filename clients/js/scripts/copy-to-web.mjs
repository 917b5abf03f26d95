// Copies the built ES modules to web/static/herald-client, where herald serve
// embeds them for the demo page, so that `go build` needs no npm.
import { copyFileSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const target = join(root, "..", "..", "web", "static", "herald-client");

rmSync(target, { recursive: true, force: true });
mkdirSync(target, { recursive: true });
for (const f of readdirSync(dist).filter((f) => f.endsWith(".js"))) {
  copyFileSync(join(dist, f), join(target, f));
}
