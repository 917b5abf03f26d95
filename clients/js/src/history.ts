import type { JSONValue, Member } from "./protocol.js";
import type { Message } from "./subscription.js";

/** HistoryOptions choose a page of a channel's history. */
export interface HistoryOptions {
  /** The most messages the page holds, 1 to MAX_HISTORY_LIMIT; default DEFAULT_HISTORY_LIMIT. */
  limit?: number;
  /** Only messages with a smaller offset; absent: from the newest. */
  before?: number;
  /**
   * When set, history() rejects with EpochChangedError unless the channel's
   * epoch is this one (its stream was reset and its offsets restarted).
   * page.older() sets it.
   */
  epoch?: string;
  /** Reject with TimeoutError when no answer came within this; default none. */
  timeoutMs?: number;
}

/** Page is a part of a channel's history, as history() returns it. */
export interface Page<T = JSONValue> {
  channel: string;
  /** The newest held messages before `before`, oldest first. */
  messages: Message<T>[];
  /** The channel's epoch and newest offset when the server answered. */
  epoch: string;
  offset: number;
  /** True when the server holds messages older than the first of `messages`. */
  more: boolean;
  /** older fetches the page just before this one, with the same limit; undefined when there is none. */
  older(): Promise<Page<T> | undefined>;
}

/** PresenceOptions adjust a presence() call. */
export interface PresenceOptions {
  /** Ask for the counts without the members. */
  countOnly?: boolean;
  /** Reject with TimeoutError when no answer came within this; default none. */
  timeoutMs?: number;
}

/** Presence is who is subscribed to a channel, on every node of the service. */
export interface Presence {
  channel: string;
  /** Subscribed connections; complete. */
  clients: number;
  /** Distinct user ids among them (anonymous connections have none); complete. */
  users: number;
  /** The connections, at most 1,000 (truncated is true when there are more); empty with countOnly. */
  members: Member[];
  truncated: boolean;
}
