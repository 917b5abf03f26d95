import { SUBPROTOCOL, parseServerFrame } from "./protocol.js";
import { CloseError, ConnectionLostError, NoPongError } from "./errors.js";
const OPEN = 1;
/**
 * Connection is one WebSocket connection and its liveness check. It reads
 * frames, hands them to the client, and watches by the wall clock (Date.now)
 * that the server is still there: after ping_interval_ms of silence it sends
 * an application ping, and when nothing at all arrives within
 * pong_timeout_ms after it, the connection is dead.
 */
export class Connection {
    newId;
    ws;
    events;
    welcomed = false;
    done = false;
    heartbeat = { intervalMs: 0, timeoutMs: 0 };
    lastRecv = Date.now();
    pingAt = 0;
    tick;
    connectTimer;
    closedPromise;
    markClosed;
    /**
     * open starts a connection to url. hello, when given, is sent as the first
     * frame; newId makes the ids of the client's pings.
     */
    constructor(WS, url, events, newId, hello, connectTimeoutMs) {
        this.newId = newId;
        this.events = events;
        this.closedPromise = new Promise((resolve) => (this.markClosed = resolve));
        this.ws = new WS(url, SUBPROTOCOL);
        this.ws.onopen = () => {
            if (hello)
                this.send(hello);
        };
        this.ws.onmessage = (ev) => this.onMessage(ev.data);
        this.ws.onclose = (ev) => {
            this.markClosed();
            const code = ev.code ?? 1006;
            this.fail(code === 1006 || code === 1005 ? new ConnectionLostError(`no close frame (${code})`) : new CloseError(code, ev.reason ?? ""));
        };
        this.ws.onerror = () => { }; // onclose follows with the details there are
        this.connectTimer = setTimeout(() => this.fail(new ConnectionLostError(`no welcome within ${connectTimeoutMs} ms`)), connectTimeoutMs);
    }
    /** Whether the connection has ended. */
    get ended() {
        return this.done;
    }
    /** send writes one frame; it does nothing once the socket is not open. */
    send(f) {
        if (this.done || this.ws.readyState !== OPEN)
            return;
        this.ws.send(typeof f === "string" ? f : JSON.stringify(f));
    }
    /**
     * fail ends the connection with err: the socket is closed (with code, when
     * given, else without a close handshake worth waiting for) and the client
     * is told once. The first cause wins.
     */
    fail(err, code, reason) {
        if (this.done)
            return;
        this.done = true;
        clearTimeout(this.connectTimer);
        clearInterval(this.tick);
        this.ws.onmessage = null;
        try {
            if (code !== undefined)
                this.ws.close(code, reason);
            else
                this.ws.close();
        }
        catch {
            // already closing
        }
        this.events.ended(this, err);
    }
    /** closed resolves when the socket has closed, or after maxWaitMs. */
    waitClosed(maxWaitMs) {
        let timer;
        const timeout = new Promise((resolve) => (timer = setTimeout(resolve, maxWaitMs)));
        return Promise.race([this.closedPromise, timeout]).finally(() => clearTimeout(timer));
    }
    onMessage(data) {
        if (this.done)
            return;
        this.lastRecv = Date.now();
        if (typeof data !== "string")
            return; // the server sends text only
        const f = parseServerFrame(data);
        if (!f)
            return; // a newer server's frame we cannot read
        if (this.welcomed) {
            this.events.frame(this, f);
        }
        else if (f.type === "welcome") {
            this.onWelcome(f);
        }
    }
    onWelcome(w) {
        this.welcomed = true;
        clearTimeout(this.connectTimer);
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
    checkLiveness(probe = false) {
        const { intervalMs, timeoutMs } = this.heartbeat;
        if (this.done || !this.welcomed || intervalMs <= 0 || timeoutMs <= 0)
            return;
        const now = Date.now();
        if (this.pingAt !== 0 && this.lastRecv >= this.pingAt)
            this.pingAt = 0; // answered, or other proof of life
        const silent = now - this.lastRecv;
        if (silent >= intervalMs + timeoutMs || (this.pingAt !== 0 && now - this.pingAt >= timeoutMs)) {
            this.fail(new NoPongError());
        }
        else if (this.pingAt === 0 && (probe || silent >= intervalMs)) {
            this.pingAt = now;
            this.send({ type: "ping", id: this.newId() });
        }
    }
}
