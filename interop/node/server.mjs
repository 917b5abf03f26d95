// Starts and stops `herald serve` processes for the interop tests. The
// binary comes from HERALD_BIN (interop/run builds it).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

// Heartbeat and size settings of the shared test server: short, so that a
// test can wait past interval + timeout.
export const PING_INTERVAL_MS = 400;
export const PONG_TIMEOUT_MS = 400;
export const MAX_MESSAGE_BYTES = 4096;

export const defaultArgs = [
  '--ping-interval', `${PING_INTERVAL_MS}ms`,
  '--pong-timeout', `${PONG_TIMEOUT_MS}ms`,
  '--max-message-bytes', String(MAX_MESSAGE_BYTES),
  '--shutdown-timeout', '2s',
];

// startServer runs herald serve on a free port of 127.0.0.1 and resolves
// once it listens: { url, proc, exited, stop() }.
export async function startServer(args = defaultArgs, env = {}) {
  const bin = process.env.HERALD_BIN;
  if (!bin) throw new Error('HERALD_BIN is not set: run interop/run, or build cmd/herald and point HERALD_BIN at it');
  const proc = spawn(bin, ['serve', '--addr', '127.0.0.1:0', '--log-format', 'json', ...args], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...env },
  });
  const log = [];
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`herald serve did not start:\n${log.join('\n')}`)), 30_000);
    createInterface({ input: proc.stderr }).on('line', (line) => {
      log.push(line);
      try {
        const rec = JSON.parse(line);
        if (rec.msg === 'herald serving') {
          clearTimeout(timer);
          resolve(rec.ws);
        }
      } catch {
        // not JSON: the race detector or a panic; kept in log
      }
    });
    exited.then(({ code }) => reject(new Error(`herald serve exited with ${code}:\n${log.join('\n')}`)));
  });
  return {
    url,
    proc,
    log,
    exited,
    // stop sends SIGTERM, unless a test already did (a second one during
    // the shutdown makes herald exit at once, with 1), and resolves with the
    // exit status; it rejects when the server does not exit cleanly (the
    // race detector exits 66).
    async stop() {
      if (!proc.killed && proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      const st = await exited;
      if (st.code !== 0) throw new Error(`herald serve exited with ${st.code ?? st.signal}:\n${log.join('\n')}`);
      return st;
    },
  };
}

// channel returns a fresh channel name, so that tests sharing a server do
// not see each other's messages.
let seq = 0;
export function channel(prefix = 'interop') {
  return `${prefix}:${process.pid}-${Date.now().toString(36)}-${++seq}`;
}

// startBackend runs examples/hooks/backend.py, the example application
// backend of the HTTP hooks, and resolves with its base URL and stop().
export async function startBackend(secret) {
  const proc = spawn('python3', [new URL('../../examples/hooks/backend.py', import.meta.url).pathname, '127.0.0.1:0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, HERALD_HOOK_SECRET: secret },
  });
  const addr = await new Promise((resolve, reject) => {
    createInterface({ input: proc.stdout }).once('line', (line) => {
      const m = /^listening on (\S+)$/.exec(line);
      if (m) resolve(m[1]);
      else reject(new Error(`backend said ${line}`));
    });
    proc.on('exit', (code) => reject(new Error(`backend exited with ${code}`)));
  });
  return { url: `http://${addr}`, stop: () => proc.kill() };
}

// metric reads a counter of the server's /metrics (served on its own
// address when it has no API key).
export async function metric(url, name) {
  const res = await fetch(url.replace(/^ws/, 'http').replace(/\/ws$/, '/metrics'));
  const text = await res.text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`no metric ${name} in /metrics`);
  return Number(line.split(' ')[1]);
}
