import type { BackoffOptions } from "./backoff.js";
import type { WebSocketConstructor } from "./connection.js";
import type { Message, SubscribeOptions } from "./subscription.js";

/**
 * State is where a client is in its life: idle -> connecting -> connected ->
 * (disconnected -> connecting)* -> closed. It is idle until connect().
 */
export type State = "idle" | "connecting" | "connected" | "disconnected" | "closed";

/** StateChange is one change of a client's state, given to the state events. */
export interface StateChange {
  state: State;
  /**
   * Why the connection ended or the attempt failed (disconnected), or why
   * the client stopped (closed; undefined after close()). Close codes come as
   * a CloseError.
   */
  error?: Error;
  /** The wait before the next attempt in ms (disconnected). */
  retryInMs?: number;
  /** When the next attempt starts, as Date.now() (disconnected). */
  retryAt?: number;
  /** The current (connecting) or next (disconnected) attempt since the last healthy connection, from 0. */
  attempt: number;
  /** The server's id for the connection (connected). */
  session?: string;
}

/** ClientEvents are the events of HeraldClient.on. */
export interface ClientEvents {
  /** Every state change. */
  state: StateChange;
  connecting: StateChange;
  connected: StateChange;
  disconnected: StateChange;
  closed: StateChange;
  /**
   * Errors that belong to no call: a failing token callback or refresh, an
   * error frame answering a request sent without id.
   */
  error: Error;
}

/** DebugLog receives the client's debug lines (ClientOptions.debug). */
export type DebugLog = (message: string, detail?: unknown) => void;

/** ClientOptions configure a HeraldClient. Every field is optional. */
export interface ClientOptions {
  /**
   * The WebSocket implementation. Default globalThis.WebSocket (browsers,
   * Node 22+); in Node 20 pass one, for example the `ws` package's.
   */
  WebSocket?: WebSocketConstructor;
  /** The token to connect with; it is sent in the first frame (hello). */
  token?: string;
  /**
   * Returns a fresh token. It is called before the first connection when
   * `token` is empty, after the server rejected the token in use (close
   * 4001), before reconnecting with a token known to have expired, and ahead
   * of a JWT's expiry to refresh the connection's token without
   * reconnecting. The client never sends a rejected token again: a callback
   * that returns it counts as a failure, and the client backs off and asks
   * again. Without it a 4001 stops the client.
   */
  getToken?: () => string | Promise<string>;
  /** How long before a JWT's exp the client refreshes it. Default 30 s. */
  refreshAheadMs?: number;
  /**
   * Called when the server subscribes the connection to a channel the client
   * does not hold: a herald server's connect hook names such channels, each
   * confirmed by a subscribed frame without id right after the welcome.
   * Return the handler of the channel's messages (with subscribe options if
   * any): the client then holds the subscription as one of its own
   * (client.subscription(channel) returns it) and recovers what it missed
   * after a reconnect. Returning undefined, or no callback, leaves the
   * channel's messages unread.
   */
  onServerSubscribe?: (channel: string) => ServerSubscription | undefined;
  /** The reconnection schedule; missing fields take PROTOCOL.md's defaults. */
  backoff?: BackoffOptions;
  /** Bounds one connection attempt, up to the server's welcome. Default 10 s. */
  connectTimeoutMs?: number;
  /**
   * Bounds of the offline queue: publishes made while not connected wait
   * there and are sent after the next welcome and resubscription. A
   * publish that would overflow it is rejected at once with QueueFullError.
   * Defaults 100 messages and 1 MiB; queueMessages < 0 disables the queue.
   */
  queueMessages?: number;
  queueBytes?: number;
  /** How long one publish may wait in the offline queue. Default 60 s. */
  queueTimeoutMs?: number;
  /**
   * Asks the URL over HTTP why a WebSocket upgrade failed before the socket
   * opened, until the first welcome (a browser cannot read the status of a
   * refused upgrade). Default globalThis.fetch; null turns the probe off.
   */
  fetch?: typeof fetch | null;
  /**
   * Bounds subscribe(): it rejects with TimeoutError when the server has not
   * confirmed the subscription this many ms after the call (waiting for a
   * connection included), and the subscription ends. Default 0: no bound,
   * subscribe() waits for as long as the client tries.
   * SubscribeOptions.timeoutMs overrides it per call.
   */
  subscribeTimeoutMs?: number;
  /**
   * Bounds publish(): it rejects with TimeoutError when the server has not
   * answered this many ms after the call, queued or sent; the publish is
   * taken out of the offline queue. One already sent may still be applied
   * (its key makes publishing it again safe). Default 0: no bound but the
   * queue's (queueTimeoutMs). PublishOptions.timeoutMs overrides it.
   */
  publishTimeoutMs?: number;
  /**
   * Logs what the client does: state changes, every frame sent and
   * received (tokens replaced by "<token>"), and what it learned about a
   * failed upgrade. true logs with console.debug; a function gets each line.
   * Default off.
   */
  debug?: boolean | DebugLog;
  /** Sent in hello as `client`. Default "herald-js/0.1". */
  clientName?: string;
  /**
   * React to the browser's online/offline and visibilitychange events.
   * Default true where a window exists.
   */
  browserEvents?: boolean;
}

/** What ClientOptions.onServerSubscribe returns for a channel to read. */
export interface ServerSubscription {
  handler: (m: Message) => void;
  options?: SubscribeOptions;
}

/** The defaults of ClientOptions. */
export const DEFAULTS = {
  connectTimeoutMs: 10_000,
  queueMessages: 100,
  queueBytes: 1 << 20,
  queueTimeoutMs: 60_000,
  refreshAheadMs: 30_000,
  clientName: "herald-js/0.1",
  /** Assumed until the first welcome says better. */
  maxMessageBytes: 64 << 10,
  /** How long close() waits for the server to answer its close frame. */
  closeWaitMs: 1_000,
} as const;
