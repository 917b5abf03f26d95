import type { ClientFrame } from "./protocol.js";

/**
 * The rate limit assumed for a server whose welcome does not state one (a
 * server older than the `rate` and `burst` fields): well under such a
 * server's default of 50 requests per second with a burst of 100, because
 * it counts rate_limited answers towards its 4029 limit.
 */
export const DEFAULT_SERVER_RATE = 10;
export const DEFAULT_SERVER_BURST = 20;

interface Paced {
  id: number;
  frame: ClientFrame | string;
  /** Runs when its turn comes; true when it is no longer wanted. */
  skip?: () => boolean;
}

/**
 * Pacer is the client's copy of the server's token bucket for one
 * connection (welcome's `rate` and `burst`). Requests the client sends in
 * bulk (resubscriptions, the offline queue, retries) wait in its line for a
 * token, in order; the application's own requests go out at once, taking a
 * token when there is one, unless the line is waiting (then they join it,
 * so publishes keep their order). A quarter of the server's burst is kept
 * back for what is never paced (pings, refresh, unsubscribe) and for
 * requests that reach the server closer together than they were sent.
 */
export class Pacer {
  readonly rate: number;
  /** The most it spends at once. */
  readonly size: number;
  private tokens: number;
  private last: number;
  private line: Paced[] = [];
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;

  constructor(rate: number | undefined, burst: number | undefined, private readonly write: (f: ClientFrame | string) => void) {
    if (!(rate !== undefined && rate > 0 && burst !== undefined && burst > 0)) {
      rate = DEFAULT_SERVER_RATE;
      burst = DEFAULT_SERVER_BURST;
    }
    this.rate = rate;
    this.size = Math.max(1, burst - Math.floor(burst / 4));
    this.tokens = this.size;
    this.last = Date.now();
  }

  /** send writes frame (request id) now, or when its turn comes: bulk ones always queue behind the line. */
  send(id: number, frame: ClientFrame | string, bulk: boolean, skip?: () => boolean): void {
    if (!bulk && this.line.length === 0) {
      this.take();
      this.write(frame);
      return;
    }
    this.line.push({ id, frame, skip });
    this.drain();
  }

  /** emptied notes that the server answered rate_limited: its bucket is empty, whatever this copy says. */
  emptied(): void {
    this.refill();
    this.tokens = Math.min(this.tokens, 0);
  }

  /** waiting reports whether the request with id is still in the line. */
  waiting(id: number): boolean {
    return this.line.some((r) => r.id === id);
  }

  /** busy reports whether requests wait in the line. */
  get busy(): boolean {
    return this.line.length > 0;
  }

  /** stop drops the line: its connection ended. */
  stop(): void {
    this.stopped = true;
    this.line = [];
    clearTimeout(this.timer);
  }

  private refill(): void {
    const now = Date.now();
    this.tokens = Math.min(this.size, this.tokens + ((now - this.last) / 1000) * this.rate);
    this.last = now;
  }

  private take(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }

  private drain(): void {
    while (!this.stopped && this.line.length > 0) {
      const r = this.line.shift()!; // before skip, which may send (and drain) again
      if (r.skip?.()) continue;
      if (!this.take()) {
        this.line.unshift(r);
        break;
      }
      this.write(r.frame);
    }
    if (!this.stopped && this.line.length > 0 && this.timer === undefined) {
      const wait = Math.max(1, Math.ceil(((1 - this.tokens) / this.rate) * 1000));
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.drain();
      }, wait);
    }
  }
}
