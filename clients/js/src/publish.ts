import { MAX_KEY_BYTES, isValidChannel } from "./protocol.js";
import { HeraldError, ServerError } from "./errors.js";
import { uuidv7 } from "./uuid.js";

/** PublishOptions are the per-publish settings of HeraldClient.publish. */
export interface PublishOptions {
  /**
   * The idempotency key (at most 64 bytes) instead of a new UUIDv7.
   * Publishing again with the same key on the same channel, within the
   * server's history window, returns the first publication's offset and
   * delivers nothing new.
   */
  key?: string;
  /** Overrides ClientOptions.publishTimeoutMs for this publish; 0: none. */
  timeoutMs?: number;
}

const utf8 = new TextEncoder();

/** byteLength returns the UTF-8 size of s. */
export function byteLength(s: string): number {
  return utf8.encode(s).length;
}

/**
 * PendingPublish is one publish, from publish() until its result. Its data
 * is encoded once, when publish() is called, so later changes to the object
 * the application passed do not change what is sent.
 */
export class PendingPublish {
  readonly channel: string;
  readonly key: string;
  readonly dataJSON: string;
  /** What it counts against the queue's byte bound. */
  readonly size: number;
  readonly promise: Promise<number>;
  finished = false;
  queued = false;
  /** When it fails if still queued (ms since the epoch); 0 before it is queued. */
  deadline = 0;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** The id of the request in flight, 0 when none. */
  callId = 0;
  private settle!: { resolve: (offset: number) => void; reject: (err: Error) => void };

  constructor(channel: string, data: unknown, opts: PublishOptions = {}) {
    if (!isValidChannel(channel)) {
      throw new ServerError(`publish to ${JSON.stringify(channel)}`,
        { type: "error", code: "invalid_channel", message: "channel name must be 1 to 255 bytes of A-Z a-z 0-9 _ - . : @ / =" });
    }
    const json = JSON.stringify(data);
    if (json === undefined) throw new HeraldError(`herald: publish to ${channel}: data is not a JSON value`);
    this.key = opts.key || uuidv7();
    if (byteLength(this.key) > MAX_KEY_BYTES) {
      throw new HeraldError(`herald: publish to ${channel}: key longer than ${MAX_KEY_BYTES} bytes`);
    }
    this.channel = channel;
    this.dataJSON = json;
    this.size = byteLength(json) + byteLength(channel) + byteLength(this.key);
    this.promise = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
  }

  /** frame returns the publish frame's text with request id. */
  frame(id: number): string {
    return `{"type":"publish","id":${id},"channel":${JSON.stringify(this.channel)},"data":${this.dataJSON},"key":${JSON.stringify(this.key)}}`;
  }

  /** frameBytes is the frame's size with the longest id the client uses. */
  frameBytes(): number {
    return byteLength(this.frame(Number.MAX_SAFE_INTEGER));
  }

  resolve(offset: number): void {
    if (this.finished) return;
    this.finished = true;
    this.settle.resolve(offset);
  }

  reject(err: Error): void {
    if (this.finished) return;
    this.finished = true;
    this.settle.reject(err);
  }
}

/** QueueLimits bound the offline queue. */
export interface QueueLimits {
  messages: number;
  bytes: number;
}

/**
 * PublishQueue is the offline queue: publishes waiting for a ready
 * connection, oldest first, with their total size.
 */
export class PublishQueue {
  private items: PendingPublish[] = [];
  private total = 0;

  constructor(private readonly limits: QueueLimits) {}

  get length(): number {
    return this.items.length;
  }

  get bytes(): number {
    return this.total;
  }

  /** fits reports whether p may join the queue within its bounds. */
  fits(p: PendingPublish): boolean {
    return this.limits.messages > 0 && this.items.length < this.limits.messages &&
      this.total + p.size <= this.limits.bytes;
  }

  /** push adds p at the end, or, with front, before everything queued. */
  push(p: PendingPublish, front = false): void {
    if (front) this.items.unshift(p);
    else this.items.push(p);
    this.total += p.size;
  }

  /** remove takes p out and reports whether it was there. */
  remove(p: PendingPublish): boolean {
    const i = this.items.indexOf(p);
    if (i < 0) return false;
    this.items.splice(i, 1);
    this.total -= p.size;
    return true;
  }

  /** drain empties the queue and returns what it held, oldest first. */
  drain(): PendingPublish[] {
    const items = this.items;
    this.items = [];
    this.total = 0;
    return items;
  }
}
