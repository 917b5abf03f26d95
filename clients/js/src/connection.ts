import { SUBPROTOCOL, parseServerFrame, type ClientFrame, type ServerFrame, type WelcomeFrame } from "./protocol.js";
import { CloseError, ConnectionLostError, NoPongError, TokenRequiredError } from "./errors.js";
import { refusal, statusFromEvent } from "./handshake.js";

/**
 * WebSocketLike is what the client needs of a WebSocket: the browser's, Node
 * 22's global one, or a compatible implementation such as the `ws` package.
 */
export interface WebSocketLike {
  readonly readyState: number;
  /** The extensions the server accepted, as the browser's WebSocket reports them. */
  readonly extensions?: string;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** WebSocketConstructor makes a WebSocketLike, as `new WebSocket(url, protocols)`. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

const OPEN = 1;

/**
 * How long after the upgrade a connection without a token waits for welcome
 * before asking whether the server needs a token: a server that admits
 * anonymous connections sends welcome at once, one that needs a token
 * answers the first request "unauthorized" until hello brings one.
 */
const TOKEN_PROBE_MS = 500;

/** The callbacks a Connection reports to. Each runs at most as documented. */
export interface ConnectionEvents {
  /** The server's welcome arrived; called once. */
  welcome(c: Connection, w: WelcomeFrame): void;
  /** A frame after welcome. */
  frame(c: Connection, f: ServerFrame): void;
  /** The connection ended, before or after welcome; called once. */
  ended(c: Connection, err: Error): void;
}

/** Liveness settings from the server's welcome. */
interface Heartbeat {
  intervalMs: number;
  timeoutMs: number;
}

/**
 * Connection is one WebSocket connection and its liveness check. It reads
 * frames, hands them to the client, and watches by the wall clock (Date.now)
 * that the server is still there: after ping_interval_ms of silence it sends
 * an application ping, and when nothing at all arrives within
 * pong_timeout_ms after it, the connection is dead.
 */
export class Connection {
  private readonly ws: WebSocketLike;
  private readonly events: ConnectionEvents;
  private welcomed = false;
  private isOpen = false;
  private done = false;
  private tokenProbe = 0;
  private heartbeat: Heartbeat = { intervalMs: 0, timeoutMs: 0 };
  private lastRecv = Date.now();
  private pingAt = 0;
  private tick: ReturnType<typeof setInterval> | undefined;
  private connectTimer: ReturnType<typeof setTimeout> | undefined;
  private probeTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly closedPromise: Promise<void>;
  private markClosed!: () => void;

  /**
   * open starts a connection to url. hello, when given, is sent as the first
   * frame; without it, a server that keeps waiting for one ends the
   * connection with TokenRequiredError. newId makes the ids of the client's
   * pings. A failure before the socket opened ends it at once (see opened).
   */
  constructor(
    WS: WebSocketConstructor,
    url: string,
    events: ConnectionEvents,
    private readonly newId: () => number,
    hello: ClientFrame | undefined,
    connectTimeoutMs: number,
    private readonly log?: (message: string, detail?: unknown) => void,
  ) {
    this.events = events;
    this.closedPromise = new Promise((resolve) => (this.markClosed = resolve));
    this.log?.(`opening ${url}`);
    this.ws = new WS(url, SUBPROTOCOL);
    this.ws.onopen = () => {
      this.isOpen = true;
      if (hello) this.send(hello);
      else this.probeTimer = setTimeout(() => this.probeToken(), TOKEN_PROBE_MS);
    };
    this.ws.onmessage = (ev: { data: unknown }) => this.onMessage(ev.data);
    this.ws.onclose = (ev: { code?: number; reason?: string }) => {
      this.markClosed();
      const code = ev.code ?? 1006;
      if (!this.isOpen) this.fail(this.notOpened(url, ev));
      else if (code === 1006 || code === 1005) this.fail(new ConnectionLostError(`no close frame (${code})`));
      else if (code === 4001 && !hello) this.fail(new TokenRequiredError(ev.reason || "unauthorized"));
      else this.fail(new CloseError(code, ev.reason ?? ""));
    };
    // Before the socket opened, an error is the end of the attempt: Node's
    // built-in WebSocket reports a refused upgrade with error and no close.
    // After, close follows with the details there are.
    this.ws.onerror = (ev: unknown) => {
      if (!this.isOpen) this.fail(this.notOpened(url, ev));
    };
    this.connectTimer = setTimeout(
      () => this.fail(new ConnectionLostError(`no welcome within ${connectTimeoutMs} ms`)),
      connectTimeoutMs,
    );
  }

  /** Whether the socket opened: the server accepted the WebSocket upgrade. */
  get opened(): boolean {
    return this.isOpen;
  }

  /**
   * The extensions the server accepted ("permessage-deflate" when messages
   * may come compressed; the WebSocket implementation inflates them), "" for
   * none or an implementation that does not say.
   */
  get extensions(): string {
    return this.ws.extensions ?? "";
  }

  /** Whether the connection has ended. */
  get ended(): boolean {
    return this.done;
  }

  /** send writes one frame; it does nothing once the socket is not open. */
  send(f: ClientFrame | string): void {
    if (this.done || this.ws.readyState !== OPEN) return;
    const text = typeof f === "string" ? f : JSON.stringify(f);
    this.log?.(`send ${typeof f !== "string" && "token" in f ? JSON.stringify({ ...f, token: "<token>" }) : text}`);
    this.ws.send(text);
  }

  /**
   * fail ends the connection with err: the socket is closed (with code, when
   * given, else without a close handshake worth waiting for) and the client
   * is told once. The first cause wins.
   */
  fail(err: Error, code?: number, reason?: string): void {
    if (this.done) return;
    this.done = true;
    this.log?.(`connection ended: ${err.message}`);
    clearTimeout(this.connectTimer);
    clearTimeout(this.probeTimer);
    clearInterval(this.tick);
    this.ws.onmessage = null;
    try {
      if (code !== undefined) this.ws.close(code, reason);
      else this.ws.close();
    } catch {
      // already closing
    }
    this.events.ended(this, err);
  }

  /** closed resolves when the socket has closed, or after maxWaitMs. */
  waitClosed(maxWaitMs: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, maxWaitMs)));
    return Promise.race([this.closedPromise, timeout]).finally(() => clearTimeout(timer));
  }

  private onMessage(data: unknown): void {
    if (this.done) return;
    this.lastRecv = Date.now();
    if (typeof data !== "string") return; // the server sends text only
    this.log?.(`recv ${data}`);
    const f = parseServerFrame(data);
    if (!f) return; // a newer server's frame we cannot read
    if (this.welcomed) {
      this.events.frame(this, f);
    } else if (f.type === "welcome") {
      this.onWelcome(f);
    } else if (f.type === "error" && this.tokenProbe !== 0 && f.id === this.tokenProbe && f.code === "unauthorized") {
      this.fail(new TokenRequiredError(f.message), 1000);
    }
  }

  /**
   * probeToken sends a ping when welcome is late on a connection without a
   * token: a Herald server waiting for hello answers it "unauthorized" at
   * once, so the client need not wait for the server's hello_timeout. One
   * that admits the connection has sent welcome before the pong.
   */
  private probeToken(): void {
    if (this.welcomed || this.done) return;
    this.tokenProbe = this.newId();
    this.send({ type: "ping", id: this.tokenProbe });
  }

  /**
   * notOpened is the error of a connection that failed before the upgrade
   * completed: an UpgradeError when the implementation tells the HTTP
   * status (the `ws` package), else a ConnectionLostError the client may
   * probe further (see probeUpgrade).
   */
  private notOpened(url: string, ev: unknown): Error {
    const status = statusFromEvent(ev);
    return status !== undefined ? refusal(url, status) : new ConnectionLostError(`no WebSocket connection to ${url}`);
  }

  private onWelcome(w: WelcomeFrame): void {
    this.welcomed = true;
    clearTimeout(this.connectTimer);
    clearTimeout(this.probeTimer);
    this.heartbeat = { intervalMs: w.ping_interval_ms, timeoutMs: w.pong_timeout_ms };
    const { intervalMs, timeoutMs } = this.heartbeat;
    if (intervalMs > 0 && timeoutMs > 0) {
      const period = Math.min(Math.max(Math.min(intervalMs, timeoutMs) / 8, 5), 1000);
      this.tick = setInterval(() => this.checkLiveness(), period);
    }
    this.events.welcome(this, w);
  }

  /**
   * checkLiveness follows PROTOCOL.md's heartbeat rules by the wall clock:
   * after the ping interval of silence it sends an application ping; when
   * nothing arrived within the pong timeout after that, or the silence
   * already exceeds interval + timeout (the machine slept, or the tab's
   * timers were throttled), the connection is dead. With probe, it sends a
   * ping at once unless one is outstanding, to learn quickly whether the
   * connection survived (a tab that became visible, a machine that woke).
   */
  checkLiveness(probe = false): void {
    const { intervalMs, timeoutMs } = this.heartbeat;
    if (this.done || !this.welcomed || intervalMs <= 0 || timeoutMs <= 0) return;
    const now = Date.now();
    if (this.pingAt !== 0 && this.lastRecv >= this.pingAt) this.pingAt = 0; // answered, or other proof of life
    const silent = now - this.lastRecv;
    if (silent >= intervalMs + timeoutMs || (this.pingAt !== 0 && now - this.pingAt >= timeoutMs)) {
      this.fail(new NoPongError());
    } else if (this.pingAt === 0 && (probe || silent >= intervalMs)) {
      this.pingAt = now;
      this.send({ type: "ping", id: this.newId() });
    }
  }
}
