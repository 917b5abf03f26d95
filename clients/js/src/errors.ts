import type { ErrorCode, ErrorFrame } from "./protocol.js";

/** HeraldError is the base class of every error the client rejects with. */
export class HeraldError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * ServerError is an `error` frame the server answered a request with. `code`
 * is one of PROTOCOL.md's stable codes.
 */
export class ServerError extends HeraldError {
  readonly code: ErrorCode;
  /** Set with rate_limited: when to try again. */
  readonly retryAfterMs: number | undefined;

  constructor(what: string, frame: ErrorFrame) {
    super(`herald: ${what}: ${frame.code}: ${frame.message}`);
    this.code = frame.code;
    this.retryAfterMs = frame.retry_after_ms;
  }
}

/**
 * EpochChangedError rejects a history() call whose `epoch` option is not
 * the channel's epoch any more: the stream was reset and its offsets
 * restarted, so `before` no longer points where the previous page ended.
 */
export class EpochChangedError extends HeraldError {
  constructor(channel: string, was: string, is: string) {
    super(`herald: the stream of ${channel} was reset while paging (epoch ${was}, now ${is})`);
  }
}

/** CloseError is the WebSocket close code a connection ended with. */
export class CloseError extends HeraldError {
  readonly code: number;
  readonly reason: string;

  constructor(code: number, reason: string) {
    super(`herald: connection closed with ${code} (${closeCodeMeaning(code)})${reason ? ": " + reason : ""}`);
    this.code = code;
    this.reason = reason;
  }
}

/**
 * ClosedError rejects calls on a client that was closed, by close() or by a
 * terminal close code (then `cause` is the CloseError).
 */
export class ClosedError extends HeraldError {
  constructor(cause?: Error) {
    super(cause ? `herald: client closed: ${cause.message}` : "herald: client closed", cause ? { cause } : undefined);
  }
}

/**
 * QueueFullError rejects, at once, a publish made while disconnected when the
 * offline queue already holds its limit of messages or bytes.
 */
export class QueueFullError extends HeraldError {
  constructor() {
    super("herald: offline publish queue full");
  }
}

/**
 * QueueTimeoutError rejects a publish that waited in the offline queue for
 * the queue timeout without being confirmed. A publish sent before its
 * connection dropped may still have been applied; publishing it again with
 * the same key is safe.
 */
export class QueueTimeoutError extends HeraldError {
  constructor() {
    super("herald: publish not confirmed within the offline queue timeout");
  }
}

/**
 * TooLargeError rejects a publish whose frame is larger than the server's
 * max_message_bytes; sending it would make the server close with 1009.
 */
export class TooLargeError extends HeraldError {
  constructor(limit: number) {
    super(`herald: message larger than the server's max_message_bytes (${limit} bytes)`);
  }
}

/**
 * TimeoutError rejects a subscribe or publish not confirmed within its
 * timeout (subscribeTimeoutMs, publishTimeoutMs or the call's timeoutMs).
 * The subscription has ended; a publish that was sent may still have been
 * applied, and publishing it again with the same key is safe.
 */
export class TimeoutError extends HeraldError {
  constructor(what: string, ms: number) {
    super(`herald: ${what}: not confirmed within ${ms} ms`);
  }
}

/** UnsubscribedError is why a subscription ended after unsubscribe(). */
export class UnsubscribedError extends HeraldError {
  constructor() {
    super("herald: unsubscribed");
  }
}

/**
 * NoPongError is why a connection was dropped when the server sent nothing
 * for the ping interval plus the pong timeout.
 */
export class NoPongError extends HeraldError {
  constructor() {
    super("herald: server silent past the ping interval and pong timeout");
  }
}

/** ConnectionLostError is a connection that ended without a close frame. */
export class ConnectionLostError extends HeraldError {
  constructor(detail: string) {
    super(`herald: connection lost: ${detail}`);
  }
}

/**
 * TokenRequiredError is why a client that has no token stopped: the server
 * needs one. It answered the client's first request "send hello with a token
 * first", or closed with 4001 when no hello came within its hello_timeout.
 * Its code is 4001, as for any refused token: without getToken it is
 * terminal, with getToken the client asks for a token and tries again.
 */
export class TokenRequiredError extends CloseError {
  constructor(detail: string) {
    super(4001, detail);
    this.message = `herald: this server needs a token: pass the token or getToken option (the server said: ${detail})`;
  }
}

/**
 * UpgradeError is an attempt the URL did not accept as a WebSocket
 * connection: the HTTP answer to the upgrade was not 101, or the connection
 * failed before opening. `status` is the HTTP status when the client could
 * learn it (Node, or a page allowed to read the answer); a browser cannot
 * read the status of a refused upgrade, and the client then probes the URL
 * with fetch() (see README, "When it does not connect"). `terminal` is set
 * when the answer shows that trying again cannot help, before the first
 * welcome: the client then stops with this error.
 */
export class UpgradeError extends HeraldError {
  readonly status: number | undefined;
  readonly terminal: boolean;

  constructor(message: string, status?: number, terminal = false) {
    super(message);
    this.status = status;
    this.terminal = terminal;
  }
}

/** TokenError is a failed token callback, or one that returned a rejected token. */
export class TokenError extends HeraldError {}

/** closeCodeMeaning names a close code as PROTOCOL.md does. */
export function closeCodeMeaning(code: number): string {
  switch (code) {
    case 1000: return "normal close";
    case 1001: return "server shutting down";
    case 1006: return "connection lost";
    case 1007: return "invalid UTF-8";
    case 1009: return "message too big";
    case 1011: return "internal error";
    case 1013: return "overloaded";
    case 4001: return "unauthorized";
    case 4008: return "slow consumer";
    case 4029: return "too many bad requests";
    case 4403: return "forbidden";
  }
  if (code >= 4500 && code <= 4999) return "terminal application close";
  if (code >= 4000 && code < 4500) return "application close";
  return "close";
}

/** isRetryableErrorCode reports whether a refused request may succeed later. */
export function isRetryableErrorCode(code: ErrorCode): boolean {
  return code === "unavailable" || code === "internal" || code === "rate_limited";
}
