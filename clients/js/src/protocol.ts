// The frames of Herald's wire protocol, version 1 (herald.v1). One WebSocket
// text message holds exactly one of these as a JSON object. The contract is
// docs/PROTOCOL.md in the Herald repository.

/** The WebSocket subprotocol of this protocol version. */
export const SUBPROTOCOL = "herald.v1";

/** Any JSON value: what a publication's `data` may be. */
export type JSONValue =
  | null
  | boolean
  | number
  | string
  | JSONValue[]
  | { [key: string]: JSONValue };

/**
 * JSONCompatible<T> is T when every part of it is a JSON value, also when it
 * is declared with an `interface` (which JSONValue's index signature does
 * not accept); a function, bigint, symbol or undefined in it makes it
 * never, so that publish() rejects it at compile time. Optional fields are
 * allowed (JSON.stringify leaves them out).
 */
export type JSONCompatible<T> =
  T extends JSONValue ? T
  : T extends bigint | symbol | undefined | ((...args: never[]) => unknown) ? never
  : T extends object ? { [K in keyof T]: JSONCompatible<T[K]> }
  : never;

/** A point in a channel's stream. */
export interface StreamPosition {
  epoch: string;
  offset: number;
}

// Client requests.

export interface HelloFrame {
  type: "hello";
  id?: number;
  token: string;
  client?: string;
}

/**
 * A client connection as the server knows it: its session id and, when it
 * authenticated, its user id. The sender of a message, and a member of a
 * channel's presence.
 */
export interface Member {
  client: string;
  /** Absent for an anonymous connection. */
  user?: string;
}

export interface SubscribeFrame {
  type: "subscribe";
  id?: number;
  channel: string;
  since?: StreamPosition;
  /** A backlog: the newest `last` held messages, 0 to MAX_LAST; not with since. */
  last?: number;
}

/** HistoryFrame asks for a page of a channel's history. */
export interface HistoryFrame {
  type: "history";
  id: number;
  channel: string;
  /** 1 to MAX_HISTORY_LIMIT; absent: DEFAULT_HISTORY_LIMIT. */
  limit?: number;
  /** Only messages with a smaller offset; absent: from the newest. */
  before?: number;
}

/** PresenceFrame asks who is subscribed to a channel. */
export interface PresenceFrame {
  type: "presence";
  id: number;
  channel: string;
  count_only?: boolean;
}

export interface UnsubscribeFrame {
  type: "unsubscribe";
  id?: number;
  channel: string;
}

export interface PublishFrame {
  type: "publish";
  id?: number;
  channel: string;
  data: JSONValue;
  key?: string;
}

export interface PingFrame {
  type: "ping";
  id?: number;
}

export interface RefreshFrame {
  type: "refresh";
  id?: number;
  token: string;
}

/** RpcFrame asks the server's rpc hook (the application's backend) to run method. */
export interface RpcFrame {
  type: "rpc";
  id?: number;
  /** 1 to 128 bytes of A-Z a-z 0-9 _ - . : / */
  method: string;
  data?: JSONValue;
}

/** A frame a client sends. */
export type ClientFrame =
  | HelloFrame
  | SubscribeFrame
  | UnsubscribeFrame
  | PublishFrame
  | PingFrame
  | RefreshFrame
  | HistoryFrame
  | PresenceFrame
  | RpcFrame;

// Server frames.

export interface WelcomeFrame {
  type: "welcome";
  /** Present only when answering a hello. */
  id?: number;
  session: string;
  server: string;
  ping_interval_ms: number;
  pong_timeout_ms: number;
  max_message_bytes: number;
  /** Absent for anonymous connections. */
  user?: string;
  /** The connection's request rate limit: requests per second (absent from older servers). */
  rate?: number;
  /** The connection's request rate limit: requests at once (absent from older servers). */
  burst?: number;
}

export interface SubscribedFrame {
  type: "subscribed";
  id?: number;
  channel: string;
  epoch: string;
  /** The channel's newest offset at subscribe time (0 when empty). */
  offset: number;
  /** Present only when the subscribe carried `since`. */
  recovered?: boolean;
}

export interface UnsubscribedFrame {
  type: "unsubscribed";
  id?: number;
  channel: string;
  /** Set, without id, when the server ended the subscription itself (a refreshed token no longer allows it). */
  reason?: string;
}

export interface PublishedFrame {
  type: "published";
  id?: number;
  channel: string;
  offset: number;
}

export interface PongFrame {
  type: "pong";
  id?: number;
}

export interface RefreshedFrame {
  type: "refreshed";
  id?: number;
  /** The new token's expiry in Unix seconds. */
  expires_at?: number;
}

export interface MessageFrame {
  type: "message";
  channel: string;
  offset: number;
  /** When the server accepted the publication, in ms since the Unix epoch (absent from older servers). */
  ts?: number;
  /** The connection that published it; absent for the HTTP API's publications. */
  from?: Member;
  data: JSONValue;
}

/** PageMessage is one message of a history page. */
export interface PageMessage {
  offset: number;
  ts?: number;
  from?: Member;
  data: JSONValue;
}

/** PageFrame answers history. */
export interface PageFrame {
  type: "page";
  id?: number;
  channel: string;
  epoch: string;
  /** The channel's newest offset. */
  offset: number;
  /** True when history holds messages older than the first returned. */
  more: boolean;
  /** Oldest first. */
  messages: PageMessage[];
}

/** PresentFrame answers presence. */
export interface PresentFrame {
  type: "present";
  id?: number;
  channel: string;
  clients: number;
  users: number;
  /** At most 1,000; absent with count_only. */
  members?: Member[];
  truncated?: boolean;
}

/** JoinFrame and LeaveFrame tell a channel's subscribers who arrives and leaves. */
export interface JoinFrame {
  type: "join";
  channel: string;
  member: Member;
}

export interface LeaveFrame {
  type: "leave";
  channel: string;
  member: Member;
}

/** ResultFrame answers an rpc with the backend's data. */
export interface ResultFrame {
  type: "result";
  id?: number;
  data: JSONValue;
}

/** The stable error codes of PROTOCOL.md's Errors table. */
export type ErrorCode =
  | "bad_request"
  | "unknown_type"
  | "invalid_channel"
  | "unauthorized"
  | "forbidden"
  | "not_subscribed"
  | "limit_exceeded"
  | "rate_limited"
  | "unavailable"
  | "internal";

export interface ErrorFrame {
  type: "error";
  id?: number;
  code: ErrorCode;
  message: string;
  /** Set with rate_limited. */
  retry_after_ms?: number;
}

/** A frame the server sends. */
export type ServerFrame =
  | WelcomeFrame
  | SubscribedFrame
  | UnsubscribedFrame
  | PublishedFrame
  | PongFrame
  | RefreshedFrame
  | MessageFrame
  | PageFrame
  | PresentFrame
  | JoinFrame
  | LeaveFrame
  | ResultFrame
  | ErrorFrame;

/** WebSocket close codes Herald uses (PROTOCOL.md, Close codes). */
export const CloseCodes = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  ABNORMAL: 1006,
  INVALID_PAYLOAD: 1007,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL: 1011,
  TRY_AGAIN_LATER: 1013,
  UNAUTHORIZED: 4001,
  SLOW_CONSUMER: 4008,
  TOO_MANY_ERRORS: 4029,
  FORBIDDEN: 4403,
} as const;

/**
 * isTerminalCloseCode reports whether a server's close code stops the client:
 * 4403 and 4500-4999. Every other code, and a connection lost without a close
 * frame (1006), is retried.
 */
export function isTerminalCloseCode(code: number): boolean {
  return code === CloseCodes.FORBIDDEN || (code >= 4500 && code <= 4999);
}

const CHANNEL_RE = /^[A-Za-z0-9_\-.:@/=]{1,255}$/;

/** isValidChannel reports whether name follows PROTOCOL.md's channel rules. */
export function isValidChannel(name: string): boolean {
  return CHANNEL_RE.test(name);
}

/** MAX_KEY_BYTES is the longest idempotency key a publish may carry. */
export const MAX_KEY_BYTES = 64;

/** MAX_LAST is the largest backlog a subscribe may ask for. */
export const MAX_LAST = 1000;

/** MAX_HISTORY_LIMIT is the largest page a history request may ask for. */
export const MAX_HISTORY_LIMIT = 1000;

/** DEFAULT_HISTORY_LIMIT is the size of a page when the request has no limit. */
export const DEFAULT_HISTORY_LIMIT = 100;

/**
 * parseServerFrame decodes one text message from the server. It returns
 * undefined for anything that is not an object with a string `type`.
 */
export function parseServerFrame(text: string): ServerFrame | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
  if (typeof (v as { type?: unknown }).type !== "string") return undefined;
  return v as ServerFrame;
}
