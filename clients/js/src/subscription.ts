import type { JSONValue, Member, StreamPosition } from "./protocol.js";
import { Emitter } from "./emitter.js";

/**
 * SubscriptionState is where a subscription is: subscribing (waiting for
 * the server's confirmation, at first and again after every reconnect),
 * subscribed, or unsubscribed (ended for good; see Subscription.error).
 */
export type SubscriptionState = "subscribing" | "subscribed" | "unsubscribed";

/** SubscriptionStateChange is one change of a subscription's state. */
export interface SubscriptionStateChange {
  state: SubscriptionState;
  /** Why it ended (unsubscribed). */
  error?: Error;
}

/** SubscriptionEvents are the events of Subscription.on. */
export interface SubscriptionEvents {
  state: SubscriptionStateChange;
  /**
   * A connection subscribed to the channel, on any node, when the server has
   * join-leave on for the channel's namespace. Joins and leaves are not part
   * of the stream: those that happen while disconnected are not replayed
   * (ask presence() again after a reconnect).
   */
  join: Member;
  /** A connection stopped being subscribed: it unsubscribed, closed, or was found dead. */
  leave: Member;
}

/** Message is one publication handed to a subscription's handler or held in a history page. */
export interface Message<T = JSONValue> {
  channel: string;
  offset: number;
  data: T;
  /**
   * When the server accepted the publication, in milliseconds since the Unix
   * epoch (`new Date(ts)`): the same on every node and in every later read.
   * Absent from a server that does not stamp messages.
   */
  ts?: number;
  /**
   * The connection that published it, as the server saw it (a client
   * cannot claim to be someone else); absent for a publication made through
   * the HTTP API.
   */
  from?: Member;
}

/**
 * Recovery reports how a subscribe with a position went: after every
 * reconnect, after a gap in offsets, and for a subscribe with `since`.
 */
export interface Recovery {
  channel: string;
  /**
   * True when every message published after `since` is being replayed: the
   * handler gets each of them, in order, before newer ones. False when they
   * are no longer in the server's history, or the stream restarted under a
   * new epoch: messages were missed, and the application should reload its
   * state; the handler continues after `position`.
   */
  recovered: boolean;
  /** The position the client asked from. */
  since: StreamPosition;
  /** The channel's newest position at the time. */
  position: StreamPosition;
}

/** SubscribeOptions are the per-subscription settings of HeraldClient.subscribe. */
export interface SubscribeOptions {
  /**
   * A backlog: the newest `last` messages the server's history holds (fewer
   * when it holds fewer) reach the handler first, then the live ones, in
   * offset order with no gap and no duplicate between them. 0 (none) to
   * MAX_LAST. Asked for with the first subscribe only: after a reconnect the
   * subscription continues where it stopped. Not with `since`.
   */
  last?: number;
  /**
   * Start after this position, one the application kept
   * (Subscription.position) from an earlier run: the server replays what was
   * published after it, and onRecovery tells whether that worked.
   */
  since?: StreamPosition;
  /**
   * Called for every Recovery of the subscription, before the replayed
   * messages it announces.
   */
  onRecovery?: (r: Recovery) => void;
  /**
   * Called when the server refused to renew the subscription after a
   * reconnect (for example forbidden, after a token change); the
   * subscription has ended. Retryable refusals do not end it: after
   * rate_limited the client asks again when the server says, after
   * unavailable or internal it reconnects and tries again.
   */
  onError?: (err: Error) => void;
  /** Overrides ClientOptions.subscribeTimeoutMs for this subscribe; 0: none. */
  timeoutMs?: number;
}

/** The part of the client a Subscription calls back into. */
export interface SubscriptionHost {
  unsubscribe(s: Subscription<any>): Promise<void>;
}

/**
 * Subscription is the client's interest in one channel. It survives
 * reconnects until unsubscribe() or the client's close. Its handler gets
 * every message of the channel in offset order, each once, also across
 * reconnects.
 */
export class Subscription<T = JSONValue> extends Emitter<SubscriptionEvents> {
  readonly channel: string;
  /** @internal */ readonly handler: (m: Message<T>) => void;
  /** @internal */ readonly options: SubscribeOptions;
  /** @internal The position of the last message handed to the handler. */
  pos: StreamPosition = { epoch: "", offset: 0 };
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
  /** @internal */ readonly first: Promise<void>;
  /** @internal */ settleFirst!: { resolve: () => void; reject: (err: Error) => void };
  private endReason: Error | undefined;
  private current: SubscriptionState = "subscribing";
  private readonly host: SubscriptionHost;

  /** @internal */
  constructor(host: SubscriptionHost, channel: string, handler: (m: Message<T>) => void, options: SubscribeOptions) {
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
    this.first.catch(() => {}); // the caller of subscribe() gets the error
  }

  /**
   * The epoch and offset of the last message handed to the handler (or,
   * before any, of the subscription's start). Keep it to resume later with
   * the `since` option.
   */
  get position(): StreamPosition {
    return { ...this.pos };
  }

  /** Whether the subscription is confirmed on the current connection. */
  get active(): boolean {
    return this.isActive;
  }

  /**
   * Where the subscription is; on("state", fn) follows its changes, for
   * example to show that a channel is catching up after a reconnect.
   */
  get state(): SubscriptionState {
    return this.current;
  }

  /** @internal setState records and announces a change of state. */
  setState(state: SubscriptionState, error?: Error): void {
    if (state === this.current) return;
    this.current = state;
    this.emit("state", error ? { state, error } : { state });
  }

  /** Why the subscription ended; undefined while it lasts. */
  get error(): Error | undefined {
    return this.endReason;
  }

  /**
   * unsubscribe ends the subscription: its handler is not called after this
   * returns. When connected, the promise waits for the server's
   * confirmation. Unsubscribing twice is harmless.
   */
  unsubscribe(): Promise<void> {
    return this.host.unsubscribe(this);
  }

  /** @internal member announces a join or a leave. */
  member(kind: "join" | "leave", m: Member): void {
    this.emit(kind, m);
  }

  /** @internal resolveFirst settles the promise subscribe() returned, once. */
  resolveFirst(err?: Error): void {
    if (this.firstDone) return;
    this.firstDone = true;
    if (err) this.settleFirst.reject(err);
    else this.settleFirst.resolve();
  }

  /** @internal end marks the subscription ended with err. */
  end(err: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.endReason = err;
    this.isActive = false;
    this.reqId = 0;
    this.resolveFirst(err);
    this.setState("unsubscribed", err);
  }
}
