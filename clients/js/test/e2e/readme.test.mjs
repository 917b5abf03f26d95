// End-to-end: the code blocks of README.md, run as written by Node against
// `herald serve`: the quick start must chat, and the error handling example
// must end at once with a message that says what is wrong: a missing token
// (against --jwt-secret) and a URL that is not the WebSocket endpoint.
// Only the server's address is replaced; "herald-client" resolves to this
// package through a node_modules link, as it would once installed.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { HeraldServer, buildHerald, freePort, tempDir } from "./herald.mjs";

const PKG = resolve(fileURLToPath(import.meta.url), "../../..");
const README_URL = "ws://127.0.0.1:8080/ws";
const HELLO_TIMEOUT_MS = 3000;

const dirs = [];
let bin, open, secured, work;

/** codeBlocks returns the ```js blocks of README.md. */
async function codeBlocks() {
  const md = await readFile(join(PKG, "README.md"), "utf8");
  return [...md.matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
}

/**
 * run runs code as an ES module in a fresh Node with url in place of the
 * README's, until it exits or until its output matches every pattern of
 * until (it never exits by itself when it works); it returns the
 * exit code (null when stopped), the output and the time taken.
 */
async function run(name, code, url, until = []) {
  assert.ok(code.includes(README_URL), `the example does not use ${README_URL}`);
  const file = join(work, `${name}.mjs`);
  await writeFile(file, code.replaceAll(README_URL, url));
  const flags = Number(process.versions.node.split(".")[0]) < 22 ? ["--experimental-websocket", "--no-warnings"] : [];
  const started = Date.now();
  const proc = spawn(process.execPath, [...flags, file], { cwd: work, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  proc.stdout.on("data", (b) => {
    out += b;
    if (until.length && until.every((re) => re.test(out))) proc.kill();
  });
  proc.stderr.on("data", (b) => (out += b));
  const timer = setTimeout(() => proc.kill(), 15_000);
  const code_ = await new Promise((res) => proc.on("exit", (c) => res(c)));
  clearTimeout(timer);
  return { code: code_, out, ms: Date.now() - started };
}

before(async () => {
  bin = await buildHerald(await tempDir(dirs, "herald-readme-bin-"));
  open = new HeraldServer(bin, await freePort(), await tempDir(dirs, "herald-readme-data-"));
  secured = new HeraldServer(bin, await freePort(), await tempDir(dirs, "herald-readme-jwt-"),
    ["--hello-timeout", `${HELLO_TIMEOUT_MS}ms`]);
  await open.start();
  process.env.HERALD_JWT_SECRET = "readme-secret-readme-secret-readme-secret"; // the secret never on a command line
  try {
    await secured.start();
  } finally {
    delete process.env.HERALD_JWT_SECRET;
  }
  work = await tempDir(dirs, "herald-readme-work-");
  await mkdir(join(work, "node_modules"));
  await symlink(PKG, join(work, "node_modules", "herald-client"), "dir");
});

after(async () => {
  await Promise.all([open?.stop(), secured?.stop()]);
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

test("README.md has the three examples this file runs", async () => {
  assert.equal((await codeBlocks()).length, 3, "a js block was added or removed: run it here too");
});

test("the README quick start, as written, subscribes, publishes and gets its message", async () => {
  const [quick] = await codeBlocks();
  const r = await run("quick", quick, open.wsURL, [/published at offset \d+/, /message \d+ \{ text: 'hi' \}/]);
  assert.match(r.out, /state connected/, r.out);
  assert.match(r.out, /published at offset \d+/, r.out);
  assert.match(r.out, /message \d+ \{ text: 'hi' \}/, r.out);
});

test("the README chat room, as written, shows the backlog with sender and time, who is here and the history pages", async () => {
  const [, , room] = await codeBlocks();
  const srv = new HeraldServer(bin, await freePort(), await tempDir(dirs, "herald-readme-room-"), ["--presence", "--join-leave", "--api-key", "readme-key"]);
  await srv.start();
  try {
    for (const text of ["one", "two", "three"]) {
      const res = await fetch(`${srv.httpURL}/api/publish`, { method: "POST", headers: { Authorization: "Bearer readme-key" },
        body: JSON.stringify({ channel: "chat:lobby", data: { text } }) });
      assert.equal(res.status, 200, await res.text());
    }
    const r = await run("room", room, srv.wsURL, [/1 here/, /page of 3, offsets 1 to 3/]);
    assert.match(r.out, /^\d{4}-\d\d-\d\dT[\d:.]+Z the server 1 \{ text: 'one' \}$/m, r.out);
    assert.match(r.out, /the server 3 \{ text: 'three' \}/, r.out);
    assert.match(r.out, /1 here: s_/, r.out);
    assert.match(r.out, /page of 3, offsets 1 to 3/, r.out);
  } finally {
    await srv.stop();
  }
});

test("the README error example without a token against --jwt-secret says a token is needed, within the hello timeout", async () => {
  const [, handling] = await codeBlocks();
  const r = await run("token", handling, secured.wsURL);
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /this server needs a token/, r.out);
  assert.ok(r.ms < HELLO_TIMEOUT_MS + 1000, `it took ${r.ms} ms`);
});

test("the README error example with a URL without /ws says what the URL answered, at once", async () => {
  const [, handling] = await codeBlocks();
  const r = await run("wrongurl", handling, `ws://127.0.0.1:${open.port}`);
  assert.equal(r.code, 1, r.out);
  assert.match(r.out, /is not a WebSocket endpoint: it answered HTTP 200 \(text\/html\)/, r.out);
  assert.ok(r.ms < 3000, `it took ${r.ms} ms`);
});
