import { CloseCodes, MAX_HISTORY_LIMIT, MAX_LAST, isTerminalCloseCode, isValidChannel } from "./protocol.js";
import { backoffDelay, goingAwayDelay, withBackoffDefaults } from "./backoff.js";
import { DEFAULTS } from "./options.js";
import { ClosedError, CloseError, ConnectionLostError, EpochChangedError, HeraldError, QueueFullError, QueueTimeoutError, ServerError, TimeoutError, TooLargeError, UnsubscribedError, UpgradeError, isRetryableErrorCode } from "./errors.js";
import { probeUpgrade } from "./handshake.js";
import { Connection } from "./connection.js";
import { Emitter, reportError, safeCall } from "./emitter.js";
import { PendingPublish, PublishQueue } from "./publish.js";
import { Subscription } from "./subscription.js";
import { BrowserSignals } from "./browser.js";
import { TokenKeeper } from "./tokens.js";
import { Pacer } from "./pacer.js";
/**
 * HeraldClient is a connection to a Herald server that keeps itself up until
 * close(). It reconnects with jittered exponential backoff, notices dead
 * connections by the wall clock, resubscribes every channel with the
 * position of the last message it handed to the application, so that no
 * message is lost or repeated across a reconnect, and queues publishes made
 * while disconnected, each with an idempotency key, so that a retried
 * publish is applied once.
 */
export class HeraldClient extends Emitter {
    url;
    WS;
    fetchFn;
    opts;
    log;
    onServerSubscribe;
    backoff;
    tokens;
    signals;
    subs = new Map();
    calls = new Map();
    asks = new Set();
    queue;
    lastId = 0;
    currentState = "idle";
    cause;
    conn;
    /** The current connection's rate limit, undefined when there is none. */
    pacer;
    session = "";
    ready = false;
    /** Whether any connection was welcomed: from then on, every failure is retried. */
    welcomedOnce = false;
    /** Whether a refused upgrade was reported on "error" since the last welcome. */
    refusalReported = false;
    resubscribing = 0;
    healthySince = 0;
    maxMessageBytes = DEFAULTS.maxMessageBytes;
    attempt = 0;
    retryTimer;
    retryAt = 0;
    firstReady;
    settleFirst;
    constructor(url, options = {}) {
        super();
        this.url = url;
        const WS = options.WebSocket ?? globalThis.WebSocket;
        if (typeof WS !== "function") {
            throw new HeraldError("herald: no WebSocket implementation: pass one as options.WebSocket");
        }
        this.WS = WS;
        const f = options.fetch === undefined ? globalThis.fetch : options.fetch;
        this.fetchFn = typeof f === "function" ? f.bind(globalThis) : null;
        this.opts = {
            connectTimeoutMs: positive(options.connectTimeoutMs, DEFAULTS.connectTimeoutMs),
            queueTimeoutMs: positive(options.queueTimeoutMs, DEFAULTS.queueTimeoutMs),
            clientName: options.clientName || DEFAULTS.clientName,
            subscribeTimeoutMs: positive(options.subscribeTimeoutMs, 0),
            publishTimeoutMs: positive(options.publishTimeoutMs, 0),
        };
        this.log = debugLog(options.debug);
        this.onServerSubscribe = options.onServerSubscribe;
        this.backoff = withBackoffDefaults(options.backoff);
        const qm = options.queueMessages ?? DEFAULTS.queueMessages;
        this.queue = new PublishQueue({
            messages: qm === 0 ? DEFAULTS.queueMessages : qm,
            bytes: positive(options.queueBytes, DEFAULTS.queueBytes),
        });
        this.tokens = new TokenKeeper(options, positive(options.refreshAheadMs, DEFAULTS.refreshAheadMs), {
            send: (token, reply) => this.sendRefresh(token, reply),
            error: (err) => this.emit("error", err),
        });
        this.signals = new BrowserSignals(options.browserEvents ?? true, {
            online: () => this.onOnline(),
            offline: () => this.conn?.fail(new HeraldError("herald: the browser went offline")),
            visible: () => this.onVisible(),
        });
    }
    /** The client's current state; "idle" before connect(). */
    get state() {
        return this.currentState;
    }
    /** Why the client stopped, after a terminal close code; undefined otherwise. */
    get error() {
        return this.cause;
    }
    /** The server's id for the current connection, "" when there is none. */
    get sessionId() {
        return this.conn ? this.session : "";
    }
    /**
     * The WebSocket extensions of the current connection, "" when there is
     * none: "permessage-deflate" when the browser (or the WebSocket
     * implementation) negotiated compression with a server that has it on.
     */
    get extensions() {
        return this.conn && this.session ? this.conn.extensions : "";
    }
    /** When the next connection attempt starts (Date.now()), 0 when none is scheduled. */
    get nextAttemptAt() {
        return this.retryTimer !== undefined ? this.retryAt : 0;
    }
    /**
     * connect starts the client. The promise resolves at the first connection
     * whose resubscriptions are confirmed, and rejects when the client stops
     * before that (a terminal close code, or close()). Failed attempts are
     * retried with backoff for as long as it takes. Calling it again returns
     * the same promise.
     */
    connect() {
        if (this.firstReady)
            return this.firstReady;
        this.firstReady = new Promise((resolve, reject) => (this.settleFirst = { resolve, reject }));
        if (this.currentState === "closed") {
            this.settleFirst.reject(new ClosedError(this.cause));
            return this.firstReady;
        }
        this.signals.start();
        void this.startAttempt();
        return this.firstReady;
    }
    /**
     * close sends close 1000, stops reconnecting, ends every subscription and
     * rejects every queued or unconfirmed publish with ClosedError. It resolves
     * when the server answered the close (or after a second). Idempotent.
     */
    async close() {
        const conn = this.conn;
        if (this.currentState !== "closed") {
            this.finish(undefined);
        }
        await conn?.waitClosed(DEFAULTS.closeWaitMs);
    }
    /**
     * dropConnection closes the current connection abruptly, as a network
     * failure would, and lets the client recover as from any unexpected drop.
     * It is there for demonstrations and tests.
     */
    dropConnection() {
        this.conn?.fail(new HeraldError("herald: connection dropped by the application"), 4000, "dropped by the application");
    }
    /**
     * subscribe subscribes to channel and resolves once the server confirmed
     * it; while the client is not connected it waits for the next connection,
     * and on a client not yet started it starts it, as connect() does.
     * handler gets every message of the channel in offset order, each once,
     * also across reconnects (see Recovery). A client holds one subscription
     * per channel.
     */
    subscribe(channel, handler, options = {}) {
        if (this.currentState === "closed")
            return Promise.reject(new ClosedError(this.cause));
        if (!isValidChannel(channel)) {
            return Promise.reject(new ServerError(`subscribe ${JSON.stringify(channel)}`, { type: "error", code: "invalid_channel", message: "channel name must be 1 to 255 bytes of A-Z a-z 0-9 _ - . : @ / =" }));
        }
        if (this.subs.has(channel))
            return Promise.reject(new HeraldError(`herald: already subscribed to ${channel}`));
        const badLast = lastError(options);
        if (badLast)
            return Promise.reject(new ServerError(`subscribe ${channel}`, { type: "error", code: "bad_request", message: badLast }));
        const s = new Subscription(this, channel, handler, options);
        this.subs.set(channel, s);
        this.limit(s.first, options.timeoutMs ?? this.opts.subscribeTimeoutMs, () => {
            if (!s.firstDone)
                void this.endAndUnsubscribe(s, new TimeoutError(`subscribe ${channel}`, options.timeoutMs ?? this.opts.subscribeTimeoutMs)).catch(() => { });
        });
        if (this.conn && !this.conn.ended && this.session)
            this.sendSubscribe(s, false, false);
        this.startIfIdle();
        return s.first.then(() => s);
    }
    /**
     * publish sends data to channel and resolves with the offset the server
     * gave it; on a client not yet started it starts it, as connect() does.
     * Every publish carries an idempotency key (a UUIDv7 unless given)
     * that it keeps when resent, so it is applied at most once. While the
     * client is not connected, or is still resubscribing after a reconnect,
     * the publish waits in the offline queue and is sent after the
     * resubscriptions, in order; a full queue rejects it at once with
     * QueueFullError, and one that waited too long rejects with
     * QueueTimeoutError. A publish sent on a connection that died before the
     * answer goes back to the queue and is sent again. The queue goes out
     * paced to the server's rate limit (see Pacer), and a publish made
     * meanwhile waits behind it; a rate_limited answer to either is retried
     * after retry_after_ms (until the queue timeout) rather than returned.
     */
    publish(channel, data, options = {}) {
        let p;
        try {
            p = new PendingPublish(channel, data, options);
        }
        catch (err) {
            return Promise.reject(err);
        }
        if (this.currentState === "closed")
            return Promise.reject(new ClosedError(this.cause));
        if (p.frameBytes() > this.maxMessageBytes)
            return Promise.reject(new TooLargeError(this.maxMessageBytes));
        if (this.ready)
            this.sendPublish(p, false);
        else if (!this.queue.fits(p))
            return Promise.reject(new QueueFullError());
        else
            this.enqueue(p, false);
        const ms = options.timeoutMs ?? this.opts.publishTimeoutMs;
        this.limit(p.promise, ms, () => this.expire(p, new TimeoutError(`publish to ${channel}`, ms)));
        this.startIfIdle();
        return p.promise;
    }
    /**
     * history resolves with a page of channel's history: the newest held
     * messages (before `before`), oldest first, each with its ts and from;
     * page.older() fetches the page before it. It needs no subscription, but
     * the same rights as subscribing to channel. Without a connection it waits
     * for the next one (starting a client not yet started); a request whose
     * connection ends before the answer is asked again on the next one.
     * Errors from the server reject with a ServerError.
     */
    history(channel, options = {}) {
        const what = `history ${channel}`;
        const { limit, before, epoch } = options;
        const bad = !isValidChannel(channel) ? "invalid_channel"
            : limit !== undefined && !(Number.isInteger(limit) && limit >= 1 && limit <= MAX_HISTORY_LIMIT) ? `limit must be an integer from 1 to ${MAX_HISTORY_LIMIT}`
                : before !== undefined && !(Number.isInteger(before) && before >= 1) ? "before must be a positive integer offset"
                    : "";
        if (bad) {
            return Promise.reject(new ServerError(what, bad === "invalid_channel"
                ? { type: "error", code: "invalid_channel", message: "channel name must be 1 to 255 bytes of A-Z a-z 0-9 _ - . : @ / =" }
                : { type: "error", code: "bad_request", message: bad }));
        }
        return this.ask(what, options.timeoutMs, (id) => ({ type: "history", id, channel, limit, before })).then((f) => {
            const page = f;
            if (epoch !== undefined && page.epoch !== epoch)
                throw new EpochChangedError(channel, epoch, page.epoch);
            const messages = page.messages.map((m) => toMessage(channel, m));
            return {
                channel, messages, epoch: page.epoch, offset: page.offset, more: page.more,
                older: () => page.more && messages.length > 0
                    ? this.history(channel, { limit, before: messages[0].offset, epoch: page.epoch, timeoutMs: options.timeoutMs })
                    : Promise.resolve(undefined),
            };
        });
    }
    /**
     * presence resolves with who is subscribed to channel, on every node:
     * counts always, and up to 1,000 members unless countOnly. It needs the
     * same rights as subscribing, and presence on for the channel's namespace
     * (otherwise it rejects with a bad_request ServerError). It waits for a
     * connection like history().
     */
    presence(channel, options = {}) {
        const what = `presence ${channel}`;
        if (!isValidChannel(channel)) {
            return Promise.reject(new ServerError(what, { type: "error", code: "invalid_channel", message: "channel name must be 1 to 255 bytes of A-Z a-z 0-9 _ - . : @ / =" }));
        }
        const countOnly = options.countOnly === true;
        return this.ask(what, options.timeoutMs, (id) => countOnly ? { type: "presence", id, channel, count_only: true } : { type: "presence", id, channel })
            .then((f) => {
            const p = f;
            return { channel, clients: p.clients, users: p.users, members: p.members ?? [], truncated: p.truncated === true };
        });
    }
    /** ask sends a request that reads and changes nothing, and resolves with the server's success frame. */
    ask(what, timeoutMs, frame) {
        if (this.currentState === "closed")
            return Promise.reject(new ClosedError(this.cause));
        let a;
        const promise = new Promise((resolve, reject) => (a = { what, frame, callId: 0, resolve, reject }));
        this.asks.add(a);
        if (this.conn && !this.conn.ended && this.session)
            this.sendAsk(a, false);
        this.limit(promise, timeoutMs ?? 0, () => {
            if (!this.asks.delete(a))
                return;
            if (a.callId)
                this.calls.delete(a.callId);
            a.reject(new TimeoutError(what, timeoutMs));
        });
        this.startIfIdle();
        return promise;
    }
    sendAsk(a, bulk) {
        const id = this.newId();
        a.callId = id;
        this.calls.set(id, {
            reply: (f) => {
                a.callId = 0;
                if (f.type === "error" && f.code === "rate_limited") {
                    this.pacer?.emptied();
                    afterLimit(f, () => {
                        if (this.asks.has(a) && !a.callId && this.conn && this.session)
                            this.sendAsk(a, true);
                    });
                    return;
                }
                this.asks.delete(a);
                if (f.type === "error")
                    a.reject(new ServerError(a.what, f));
                else
                    a.resolve(f);
            },
            lost: () => {
                if (a.callId === id)
                    a.callId = 0; // the next connection asks again
            },
        });
        this.pacer.send(id, a.frame(id), bulk, () => !this.calls.has(id));
    }
    /**
     * rpc asks the server's rpc hook (the application's backend) to run
     * method with data and resolves with its answer. It needs a connection at
     * the time of the call and is never sent again (the backend may have run
     * it already): it rejects with HeraldError when the client is not
     * connected, ConnectionLostError when the connection ends before the
     * answer, ServerError for an error frame (bad_request without an rpc
     * hook, unavailable when the backend failed), ClosedError after close().
     */
    rpc(method, data) {
        if (this.currentState === "closed")
            return Promise.reject(new ClosedError(this.cause));
        if (!isValidMethod(method)) {
            return Promise.reject(new ServerError(`rpc ${JSON.stringify(method)}`, { type: "error", code: "bad_request", message: "method must be 1 to 128 bytes of A-Z a-z 0-9 _ - . : /" }));
        }
        const conn = this.conn;
        if (!conn || conn.ended || !this.session)
            return Promise.reject(new HeraldError("herald: rpc: not connected"));
        return new Promise((resolve, reject) => {
            const id = this.newId();
            this.calls.set(id, {
                reply: (f) => {
                    if (f.type === "result")
                        resolve(f.data);
                    else if (f.type === "error")
                        reject(new ServerError(`rpc ${method}`, f));
                    else
                        reject(new HeraldError(`herald: rpc ${method}: unexpected ${f.type} frame`));
                },
                lost: () => reject(new ConnectionLostError(`rpc ${method} not answered`)),
            });
            conn.send(data === undefined ? { type: "rpc", id, method } : { type: "rpc", id, method, data });
        });
    }
    /** limit calls expire when promise is still pending after ms (none when ms <= 0). */
    limit(promise, ms, expire) {
        if (!(ms > 0))
            return;
        const timer = setTimeout(expire, ms);
        const stop = () => clearTimeout(timer);
        promise.then(stop, stop);
    }
    /** expire rejects p with err, taking it out of the queue or forgetting its request. */
    expire(p, err) {
        if (p.finished)
            return;
        if (p.queued && this.queue.remove(p)) {
            p.queued = false;
            clearTimeout(p.timer);
        }
        if (p.callId)
            this.calls.delete(p.callId); // an answer, or the pacer's turn, finds nothing
        p.callId = 0;
        p.reject(err);
    }
    /**
     * startIfIdle connects a client that was never started: subscribe() and
     * publish() before connect() start it, so that the order of the calls
     * does not matter. A failure to connect reaches them as their rejection.
     */
    startIfIdle() {
        if (this.currentState === "idle" && !this.firstReady)
            void this.connect().catch(() => { });
    }
    /** The number of publishes waiting in the offline queue, and their bytes. */
    get queued() {
        return { messages: this.queue.length, bytes: this.queue.bytes };
    }
    // Connection lifecycle.
    newId = () => ++this.lastId;
    async startAttempt() {
        this.retryTimer = undefined;
        this.setState({ state: "connecting", attempt: this.attempt });
        let token;
        try {
            token = await this.tokens.forConnect();
        }
        catch (err) {
            if (this.currentState !== "connecting")
                return; // closed meanwhile
            this.scheduleRetry(err);
            return;
        }
        if (this.currentState !== "connecting")
            return;
        const hello = token ? { type: "hello", id: this.newId(), token, client: this.opts.clientName } : undefined;
        try {
            this.conn = new Connection(this.WS, this.url, {
                welcome: (c, w) => this.onWelcome(c, w),
                frame: (c, f) => this.onFrame(c, f),
                ended: (c, err) => this.onEnded(c, err),
            }, this.newId, hello, this.opts.connectTimeoutMs, this.log);
        }
        catch (err) {
            this.finish(new HeraldError(`herald: cannot open ${this.url}: ${err.message}`, { cause: err }));
        }
    }
    onWelcome(c, w) {
        if (c !== this.conn)
            return;
        this.welcomedOnce = true;
        this.refusalReported = false;
        this.session = w.session;
        this.pacer = new Pacer(w.rate, w.burst, (f) => c.send(f));
        if (w.max_message_bytes > 0)
            this.maxMessageBytes = w.max_message_bytes;
        this.resubscribing = this.subs.size;
        for (const s of this.subs.values())
            this.sendSubscribe(s, true, true);
        for (const a of this.asks)
            if (!a.callId)
                this.sendAsk(a, true);
        if (this.resubscribing === 0)
            this.onReady();
        this.tokens.connected();
        this.setState({ state: "connected", attempt: this.attempt, session: w.session });
    }
    /**
     * onReady runs once the connection's resubscriptions are confirmed: it
     * sends the offline queue, in order and paced, and lets publishes go
     * straight out (behind the queue while it is still being sent).
     */
    onReady() {
        this.ready = true;
        this.healthySince = Date.now();
        for (const p of this.takeQueue())
            this.sendPublish(p, true);
        this.settleFirst?.resolve();
    }
    onFrame(c, f) {
        if (c !== this.conn)
            return;
        if (f.type === "message") {
            this.onMessage(f);
            return;
        }
        if (f.type === "join" || f.type === "leave") {
            this.subs.get(f.channel)?.member(f.type, f.member);
            return;
        }
        if (f.type === "unsubscribed" && !f.id) {
            this.onRevoked(f.channel, f.reason ?? "ended by the server");
            return;
        }
        if (f.type === "subscribed" && !f.id) {
            this.onServerSubscribed(f);
            return;
        }
        const id = f.id ?? 0;
        const call = id ? this.calls.get(id) : undefined;
        if (call) {
            this.calls.delete(id);
            call.reply(f);
        }
        else if (f.type === "error" && !id) {
            this.emit("error", new ServerError("request", f));
        }
    }
    onEnded(c, err) {
        if (c !== this.conn)
            return;
        const healthy = this.ready ? this.healthySince : 0;
        this.detach();
        if (healthy && Date.now() - healthy >= this.backoff.resetAfterMs)
            this.attempt = 0;
        if (this.currentState === "closed")
            return;
        if (!c.opened && !this.welcomedOnce && !(err instanceof UpgradeError))
            void this.probeThenRetry(err);
        else
            this.scheduleRetry(err);
    }
    /**
     * probeThenRetry asks the URL over HTTP why an attempt before the first
     * welcome failed before the socket opened, and reports what it answered
     * instead of the bare connection failure: a URL that is not a WebSocket
     * endpoint stops the client; a refusal the page may not read is reported
     * on "error" once, and retried.
     */
    async probeThenRetry(err) {
        const found = await probeUpgrade(this.url, this.fetchFn);
        this.log?.(`probe of ${this.url}: ${found ? found.message : "nothing learned"}`);
        if (this.currentState === "closed" || this.conn || this.retryTimer !== undefined)
            return;
        if (found && !found.terminal && !this.refusalReported) {
            this.refusalReported = true;
            this.emit("error", found);
        }
        this.scheduleRetry(found ?? err);
    }
    /**
     * detach forgets the current connection: unconfirmed publishes go back to
     * the front of the queue, in the order they were sent, and subscriptions
     * wait for the next connection.
     */
    detach() {
        this.conn = undefined;
        this.pacer?.stop();
        this.pacer = undefined;
        this.session = "";
        this.ready = false;
        this.resubscribing = 0;
        this.tokens.disconnected();
        const unsent = [];
        const ids = [...this.calls.keys()].sort((a, b) => a - b);
        for (const id of ids) {
            const call = this.calls.get(id);
            if (call.pub)
                unsent.push(call.pub);
            else
                call.lost?.();
        }
        this.calls.clear();
        for (let i = unsent.length - 1; i >= 0; i--) {
            const p = unsent[i];
            p.callId = 0;
            if (!p.finished)
                this.enqueue(p, true);
        }
        for (const s of this.subs.values()) {
            s.isActive = false;
            s.reqId = 0;
            s.setState("subscribing");
        }
    }
    /** scheduleRetry reports the end of a connection or attempt and schedules the next, or stops on a terminal error. */
    scheduleRetry(err) {
        const delay = this.nextDelay(err);
        if (delay === undefined) {
            this.finish(err);
            return;
        }
        this.retryAt = Date.now() + delay;
        this.retryTimer = setTimeout(() => void this.startAttempt(), delay);
        this.setState({ state: "disconnected", error: err, retryInMs: delay, retryAt: this.retryAt, attempt: this.attempt });
    }
    /** nextDelay returns the wait before the next attempt after err, or undefined when err is terminal. */
    nextDelay(err) {
        const delay = backoffDelay(this.attempt, this.backoff);
        this.attempt++;
        if (err instanceof UpgradeError)
            return err.terminal && !this.welcomedOnce ? undefined : delay;
        if (!(err instanceof CloseError))
            return delay;
        if (err.code === CloseCodes.UNAUTHORIZED)
            return this.tokens.reject() ? delay : undefined;
        if (isTerminalCloseCode(err.code))
            return undefined;
        if (err.code === CloseCodes.GOING_AWAY) {
            // The server restarts: spread the returns, unless still backing off.
            return this.attempt === 1 ? goingAwayDelay(this.backoff) : Math.max(delay, goingAwayDelay(this.backoff));
        }
        return delay;
    }
    /** retryNow moves a scheduled attempt forward to at most delayMs from now. */
    retrySoon(delayMs) {
        if (this.retryTimer === undefined || this.retryAt - Date.now() <= delayMs)
            return;
        clearTimeout(this.retryTimer);
        this.retryAt = Date.now() + delayMs;
        this.retryTimer = setTimeout(() => void this.startAttempt(), delayMs);
    }
    onOnline() {
        // Back on the network: try soon, still jittered so that a whole office
        // coming back does not return at once.
        this.retrySoon(backoffDelay(0, this.backoff));
    }
    onVisible() {
        if (this.conn)
            this.conn.checkLiveness(true);
        else if (this.retryTimer !== undefined && Date.now() >= this.retryAt)
            this.retrySoon(0); // a throttled timer
        this.tokens.check();
    }
    /** finish stops the client for good. */
    finish(cause) {
        if (this.currentState === "closed")
            return;
        this.cause = cause;
        clearTimeout(this.retryTimer);
        this.retryTimer = undefined;
        this.signals.stop();
        const conn = this.conn;
        this.currentState = "closed"; // before the connection ends, so that nothing is retried
        if (conn) {
            conn.fail(new ClosedError(), CloseCodes.NORMAL);
            this.detach();
        }
        this.tokens.stop();
        const closed = new ClosedError(cause);
        for (const s of this.subs.values())
            s.end(closed);
        this.subs.clear();
        for (const p of this.takeQueue())
            p.reject(closed);
        for (const a of this.asks)
            a.reject(closed);
        this.asks.clear();
        this.settleFirst?.reject(closed);
        this.firstReady?.catch(() => { });
        this.setState({ state: "closed", error: cause, attempt: this.attempt }, true);
    }
    setState(ch, force = false) {
        if (!force && this.currentState === "closed")
            return;
        this.currentState = ch.state;
        this.log?.(`state ${ch.state}${ch.error ? ": " + ch.error.message : ""}${ch.retryInMs !== undefined ? `, next attempt in ${ch.retryInMs} ms` : ""}`);
        this.emit("state", ch);
        this.emit(ch.state, ch);
    }
    // Subscriptions.
    /**
     * sendSubscribe sends a subscribe for s on the current connection, with
     * since when s has a position; bulk ones are paced (see Pacer). resub marks
     * one of the resubscriptions a new connection waits for before it is
     * ready.
     */
    sendSubscribe(s, resub, bulk) {
        const conn = this.conn;
        const id = this.newId();
        const since = s.hasPos ? { ...s.pos } : undefined;
        const last = since ? 0 : (s.options.last ?? 0);
        s.reqId = id;
        s.isActive = false;
        s.inBacklog = false;
        this.calls.set(id, {
            reply: (f) => this.onSubscribeReply(conn, s, id, since, last, f, resub),
            lost: () => {
                if (s.reqId === id)
                    s.reqId = 0;
            },
        });
        const frame = since ? { type: "subscribe", id, channel: s.channel, since }
            : last ? { type: "subscribe", id, channel: s.channel, last }
                : { type: "subscribe", id, channel: s.channel };
        this.pacer.send(id, frame, bulk, () => {
            if (!s.ended && s.reqId === id)
                return false;
            this.calls.delete(id); // no longer wanted: answer it here
            if (resub)
                this.resubscribed(conn);
            return true;
        });
    }
    onSubscribeReply(conn, s, id, since, last, f, resub) {
        if (!s.ended && s.reqId === id) {
            s.reqId = 0;
            if (f.type === "error" && f.code === "rate_limited") {
                this.pacer?.emptied();
                afterLimit(f, () => this.resendSubscribe(conn, s, resub));
                return; // still outstanding
            }
            if (f.type === "subscribed")
                this.onSubscribed(s, since, last, f);
            else if (f.type === "error")
                this.onSubscribeRefused(conn, s, f);
        }
        if (resub)
            this.resubscribed(conn);
    }
    /**
     * resendSubscribe sends again a subscribe the server rate-limited, when its
     * connection is still the current one; the next connection resubscribes
     * anyway.
     */
    resendSubscribe(conn, s, resub) {
        if (this.conn !== conn || conn.ended)
            return;
        if (s.ended || s.reqId !== 0) {
            if (resub)
                this.resubscribed(conn);
            return;
        }
        this.sendSubscribe(s, resub, true);
    }
    /** resubscribed counts one confirmed resubscription of conn. */
    resubscribed(conn) {
        if (--this.resubscribing === 0 && this.conn === conn && !this.ready && !conn.ended)
            this.onReady();
    }
    /**
     * onServerSubscribed takes a subscribed frame without id: the server
     * subscribed the connection on its own. A channel the client holds is
     * recovered by its own subscribe, sent after the welcome; any other
     * becomes one of the client's subscriptions when onServerSubscribe gives
     * it a handler, starting at the position the server confirmed.
     */
    onServerSubscribed(f) {
        if (this.subs.has(f.channel) || !this.onServerSubscribe)
            return;
        let taken;
        try {
            taken = this.onServerSubscribe(f.channel);
        }
        catch (err) {
            reportError(err);
        }
        if (!taken)
            return;
        const s = new Subscription(this, f.channel, taken.handler, taken.options ?? {});
        this.subs.set(f.channel, s);
        this.onSubscribed(s, undefined, 0, f);
    }
    /** subscription returns the client's subscription to channel, undefined when it holds none. */
    subscription(channel) {
        return this.subs.get(channel);
    }
    onSubscribed(s, since, last, f) {
        const recovered = since !== undefined && f.recovered === true;
        if (!recovered)
            s.pos = { epoch: f.epoch, offset: f.offset };
        if (last > 0) {
            s.inBacklog = true;
            s.backlogEnd = f.offset;
            s.pos.offset = Math.max(0, f.offset - last);
        }
        s.hasPos = true;
        s.isActive = true;
        s.resolveFirst();
        s.setState("subscribed");
        if (since && s.options.onRecovery) {
            safeCall(s.options.onRecovery, { channel: s.channel, recovered, since, position: { epoch: f.epoch, offset: f.offset } });
        }
    }
    /**
     * onSubscribeRefused handles an error answering a subscribe (other than
     * rate_limited, which is sent again when the server says). subscribe()
     * rejects with it; later, a retryable one drops the connection so that the
     * client tries again after backoff, and any other ends the subscription.
     */
    onSubscribeRefused(conn, s, f) {
        const err = new ServerError(`subscribe ${s.channel}`, f);
        if (!s.firstDone) {
            this.endSub(s, err);
        }
        else if (isRetryableErrorCode(f.code)) {
            conn.fail(err);
        }
        else {
            this.endSub(s, err);
            if (s.options.onError)
                safeCall(s.options.onError, err);
        }
    }
    /**
     * onMessage hands a message to its subscription's handler when it is the
     * next offset; it drops duplicates, and a gap makes the client resubscribe
     * from the last offset handed over, so the server replays what is missing.
     * The first message after a subscribe with last may start the backlog
     * anywhere after the newest offset minus last: history may hold fewer.
     */
    onMessage(f) {
        const { channel, offset } = f;
        const s = this.subs.get(channel);
        if (!s || !s.isActive)
            return;
        if (s.inBacklog) {
            s.inBacklog = false;
            if (offset > s.pos.offset && offset <= s.backlogEnd + 1)
                s.pos.offset = offset - 1;
        }
        if (offset <= s.pos.offset)
            return;
        if (offset > s.pos.offset + 1) {
            this.sendSubscribe(s, false, true);
            return;
        }
        s.pos.offset = offset;
        safeCall(s.handler, toMessage(channel, f));
    }
    /**
     * onRevoked ends a subscription the server ended on its own (after a
     * refresh to a token that no longer allows it): not subscribed again, its
     * error is a forbidden ServerError carrying the server's reason.
     */
    onRevoked(channel, reason) {
        const s = this.subs.get(channel);
        if (!s)
            return;
        const err = new ServerError(`subscription to ${channel}`, { type: "error", code: "forbidden", message: reason });
        this.endSub(s, err);
        if (s.options.onError)
            safeCall(s.options.onError, err);
    }
    endSub(s, err) {
        s.end(err);
        if (this.subs.get(s.channel) === s)
            this.subs.delete(s.channel);
    }
    /** unsubscribe ends s; the same as s.unsubscribe(). */
    unsubscribe(s) {
        return this.endAndUnsubscribe(s, new UnsubscribedError());
    }
    /** endAndUnsubscribe ends s with reason and tells the server when it holds the subscription. */
    endAndUnsubscribe(s, reason) {
        if (s.ended)
            return Promise.resolve();
        // Held by the server: subscribed, or a subscribe for it left the pacer.
        const held = s.isActive || (s.reqId !== 0 && !this.pacer?.waiting(s.reqId));
        this.endSub(s, reason);
        const conn = this.conn;
        if (!held || !conn || conn.ended)
            return Promise.resolve();
        return new Promise((resolve, reject) => {
            const id = this.newId();
            this.calls.set(id, {
                reply: (f) => {
                    if (f.type === "error" && f.code !== "not_subscribed")
                        reject(new ServerError(`unsubscribe ${s.channel}`, f));
                    else
                        resolve();
                },
                lost: () => resolve(), // the server forgot it with the connection
            });
            conn.send({ type: "unsubscribe", id, channel: s.channel });
        });
    }
    // Publishes.
    /**
     * sendPublish sends p on the ready connection; bulk ones (the offline
     * queue, retries) are paced, and any publish waits behind them. One that
     * waits gets a deadline, like a queued one: until then a rate_limited
     * answer is retried when the server says rather than returned.
     */
    sendPublish(p, bulk) {
        const id = this.newId();
        p.callId = id;
        if (!p.deadline && (bulk || this.pacer.busy))
            p.deadline = Date.now() + this.opts.queueTimeoutMs;
        this.calls.set(id, {
            pub: p,
            reply: (f) => {
                p.callId = 0;
                if (f.type === "published") {
                    p.resolve(f.offset);
                }
                else if (f.type === "error" && f.code === "rate_limited" && Date.now() < p.deadline) {
                    this.pacer?.emptied();
                    afterLimit(f, () => this.resendPublish(p));
                }
                else if (f.type === "error") {
                    if (f.code === "rate_limited")
                        this.pacer?.emptied();
                    p.reject(new ServerError(`publish to ${p.channel}`, f));
                }
            },
        });
        this.pacer.send(id, p.frame(id), bulk, () => !this.calls.has(id));
    }
    /** resendPublish sends again a publish the server rate-limited, or queues it while there is no ready connection. */
    resendPublish(p) {
        if (p.finished)
            return;
        if (this.currentState === "closed")
            p.reject(new ClosedError(this.cause));
        else if (this.ready)
            this.sendPublish(p, true);
        else
            this.enqueue(p, true);
    }
    /**
     * enqueue puts p in the offline queue, with a timer that rejects it when
     * it is still there after the queue timeout (counted from when it first
     * entered the queue).
     */
    enqueue(p, front) {
        const now = Date.now();
        if (!p.deadline)
            p.deadline = now + this.opts.queueTimeoutMs;
        this.queue.push(p, front);
        p.queued = true;
        p.timer = setTimeout(() => {
            if (p.queued && this.queue.remove(p)) {
                p.queued = false;
                p.reject(new QueueTimeoutError());
            }
        }, Math.max(0, p.deadline - now));
    }
    takeQueue() {
        const ps = this.queue.drain();
        for (const p of ps) {
            p.queued = false;
            clearTimeout(p.timer);
        }
        return ps;
    }
    // Tokens.
    sendRefresh(token, reply) {
        const conn = this.conn;
        if (!conn || conn.ended || !this.session)
            return false;
        const id = this.newId();
        this.calls.set(id, { reply, lost: () => reply(undefined) });
        conn.send({ type: "refresh", id, token });
        return true;
    }
}
/** toMessage makes the Message handed to the application from a message frame or a page's message. */
function toMessage(channel, m) {
    const msg = { channel, offset: m.offset, data: m.data };
    if (m.ts !== undefined)
        msg.ts = m.ts;
    if (m.from !== undefined)
        msg.from = m.from;
    return msg;
}
/** lastError says what is wrong with a subscribe's last option, "" when nothing. */
function lastError(o) {
    const last = o.last;
    if (last === undefined || last === 0)
        return "";
    if (!(Number.isInteger(last) && last >= 0 && last <= MAX_LAST))
        return `last must be an integer from 0 to ${MAX_LAST}`;
    return o.since ? "last and since together" : "";
}
/** isValidMethod checks an rpc method name as the server does. */
function isValidMethod(m) {
    return /^[A-Za-z0-9_\-.:/]{1,128}$/.test(m);
}
/** afterLimit runs f once a rate_limited error's retry_after_ms has passed. */
function afterLimit(f, fn) {
    setTimeout(fn, Math.max(f.retry_after_ms ?? 0, 1));
}
/** debugLog makes the logger of ClientOptions.debug, undefined when off. */
function debugLog(debug) {
    if (typeof debug === "function")
        return debug;
    return debug ? (message, detail) => (detail === undefined ? console.debug("herald:", message) : console.debug("herald:", message, detail)) : undefined;
}
function positive(v, def) {
    return v !== undefined && v > 0 ? v : def;
}
