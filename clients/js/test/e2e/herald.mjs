// Builds and runs `herald serve` for the end-to-end tests, and launches
// Debian's Chromium through playwright-core.

import { execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { chromium } from "playwright-core";
import { HeraldClient } from "../../dist/index.js";

export const REPO = resolve(fileURLToPath(import.meta.url), "../../../../..");
export const ARTIFACTS = resolve(fileURLToPath(import.meta.url), "../../../artifacts");
const CHROMIUM = "/usr/bin/chromium";

/**
 * buildHerald compiles cmd/herald into dir and returns the binary's path, or
 * returns $HERALD_BIN when set, to test a binary built elsewhere.
 */
export async function buildHerald(dir) {
  if (process.env.HERALD_BIN) return resolve(process.env.HERALD_BIN);
  const bin = join(dir, "herald");
  await promisify(execFile)("go", ["build", "-o", bin, "./cmd/herald"], { cwd: REPO });
  return bin;
}

/** freePort returns a TCP port on 127.0.0.1 that nothing listens on. */
export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

/**
 * HeraldServer runs one `herald serve` process at a time on a fixed port and
 * data directory, so that it can be restarted under its clients.
 */
export class HeraldServer {
  constructor(bin, port, dataDir, extraArgs = []) {
    this.bin = bin;
    this.port = port;
    this.dataDir = dataDir;
    this.extraArgs = extraArgs;
    this.proc = undefined;
    this.log = "";
  }

  get httpURL() {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsURL() {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  /** start launches the server and waits until /healthz answers. */
  async start() {
    const args = ["serve", "--addr", `127.0.0.1:${this.port}`, "--data-dir", this.dataDir, "--shutdown-timeout", "2s", ...this.extraArgs];
    const proc = spawn(this.bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    proc.exited = new Promise((res) => proc.on("exit", (code, signal) => res({ code, signal })));
    proc.stdout.on("data", (b) => (this.log += b));
    proc.stderr.on("data", (b) => (this.log += b));
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`herald serve exited with ${proc.exitCode}:\n${this.log}`);
      try {
        const r = await fetch(`${this.httpURL}/healthz`);
        if (r.ok) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`herald serve did not come up:\n${this.log}`);
      await sleep(50);
    }
  }

  /** stop sends SIGTERM and waits for the process to exit; it returns the exit. */
  async stop() {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return proc ? proc.exited : undefined;
    proc.kill("SIGTERM");
    let timer;
    const timeout = new Promise((res) => (timer = setTimeout(res, 15_000)));
    const exit = await Promise.race([proc.exited, timeout]).finally(() => clearTimeout(timer));
    if (!exit) {
      proc.kill("SIGKILL");
      throw new Error(`herald serve did not exit within 15 s of SIGTERM:\n${this.log}`);
    }
    return exit;
  }
}

/** tempDir makes a fresh temporary directory and adds it to dirs, for removal. */
export async function tempDir(dirs, prefix) {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(dir);
  return dir;
}

/**
 * launchBrowser starts headless Chromium from Debian's package with a fresh
 * profile directory and no background networking, and returns a context.
 */
export async function launchBrowser(profileDir) {
  return chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 900, height: 760 },
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync",
    ],
  });
}

/**
 * startChat fills chat with what a chat test needs: herald built and
 * started with extraArgs (server), headless Chromium (browser) with a page,
 * and a Node client (Node's global WebSocket) subscribed to channel (node),
 * whose messages it collects in chat.nodeGot. Temporary directories go to
 * dirs; stopChat ends what was started, even when startChat failed midway.
 */
export async function startChat(chat, dirs, channel, extraArgs = []) {
  const bin = await buildHerald(await tempDir(dirs, "herald-bin-"));
  chat.server = new HeraldServer(bin, await freePort(), await tempDir(dirs, "herald-data-"), extraArgs);
  await chat.server.start();
  chat.browser = await launchBrowser(await tempDir(dirs, "herald-chromium-"));
  chat.page = await chat.browser.newPage();
  chat.page.on("pageerror", (err) => console.error("page error:", err));
  chat.node = new HeraldClient(chat.server.wsURL, { WebSocket: globalThis.WebSocket });
  chat.nodeGot = [];
  await chat.node.connect();
  await chat.node.subscribe(channel, (m) => chat.nodeGot.push(m));
}

/** stopChat ends what startChat started, whatever part of it did start. */
export async function stopChat(chat, dirs) {
  await chat.node?.close();
  await chat.browser?.close();
  await chat.server?.stop();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
}

export function sleep(ms) {
  return new Promise((res) => setTimeout(res, ms));
}

/** waitFor polls cond until it returns a truthy value, or fails after timeoutMs with what(). */
export async function waitFor(cond, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${typeof what === "function" ? await what() : what}`);
    await sleep(50);
  }
}
