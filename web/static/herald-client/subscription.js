import { Emitter } from "./emitter.js";
/**
 * Subscription is the client's interest in one channel. It survives
 * reconnects until unsubscribe() or the client's close. Its handler gets
 * every message of the channel in offset order, each once, also across
 * reconnects.
 */
export class Subscription extends Emitter {
    channel;
    /** @internal */ handler;
    /** @internal */ options;
    /** @internal The position of the last message handed to the handler. */
    pos = { epoch: "", offset: 0 };
    /** @internal */ hasPos = false;
    /**
     * @internal Set when the server confirmed a subscribe with last, until the
     * first message; backlogEnd is the newest offset then, and pos the offset
     * before which the backlog cannot start.
     */
    inBacklog = false;
    /** @internal */ backlogEnd = 0;
    /** @internal The subscribe waiting for its reply, 0 when none. */
    reqId = 0;
    /** @internal Subscribed on the current connection, in order. */
    isActive = false;
    /** @internal */ firstDone = false;
    /** @internal */ ended = false;
    /** @internal */ first;
    /** @internal */ settleFirst;
    endReason;
    current = "subscribing";
    host;
    /** @internal */
    constructor(host, channel, handler, options) {
        super();
        this.host = host;
        this.channel = channel;
        this.handler = handler;
        this.options = options;
        if (options.since) {
            this.pos = { ...options.since };
            this.hasPos = true;
        }
        this.first = new Promise((resolve, reject) => (this.settleFirst = { resolve, reject }));
        this.first.catch(() => { }); // the caller of subscribe() gets the error
    }
    /**
     * The epoch and offset of the last message handed to the handler (or,
     * before any, of the subscription's start). Keep it to resume later with
     * the `since` option.
     */
    get position() {
        return { ...this.pos };
    }
    /** Whether the subscription is confirmed on the current connection. */
    get active() {
        return this.isActive;
    }
    /**
     * Where the subscription is; on("state", fn) follows its changes, for
     * example to show that a channel is catching up after a reconnect.
     */
    get state() {
        return this.current;
    }
    /** @internal setState records and announces a change of state. */
    setState(state, error) {
        if (state === this.current)
            return;
        this.current = state;
        this.emit("state", error ? { state, error } : { state });
    }
    /** Why the subscription ended; undefined while it lasts. */
    get error() {
        return this.endReason;
    }
    /**
     * unsubscribe ends the subscription: its handler is not called after this
     * returns. When connected, the promise waits for the server's
     * confirmation. Unsubscribing twice is harmless.
     */
    unsubscribe() {
        return this.host.unsubscribe(this);
    }
    /** @internal member announces a join or a leave. */
    member(kind, m) {
        this.emit(kind, m);
    }
    /** @internal resolveFirst settles the promise subscribe() returned, once. */
    resolveFirst(err) {
        if (this.firstDone)
            return;
        this.firstDone = true;
        if (err)
            this.settleFirst.reject(err);
        else
            this.settleFirst.resolve();
    }
    /** @internal end marks the subscription ended with err. */
    end(err) {
        if (this.ended)
            return;
        this.ended = true;
        this.endReason = err;
        this.isActive = false;
        this.reqId = 0;
        this.resolveFirst(err);
        this.setState("unsubscribed", err);
    }
}
