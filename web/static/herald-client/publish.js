import { MAX_KEY_BYTES, isValidChannel } from "./protocol.js";
import { HeraldError, ServerError } from "./errors.js";
import { uuidv7 } from "./uuid.js";
const utf8 = new TextEncoder();
/** byteLength returns the UTF-8 size of s. */
export function byteLength(s) {
    return utf8.encode(s).length;
}
/**
 * PendingPublish is one publish, from publish() until its result. Its data
 * is encoded once, when publish() is called, so later changes to the object
 * the application passed do not change what is sent.
 */
export class PendingPublish {
    channel;
    key;
    dataJSON;
    /** What it counts against the queue's byte bound. */
    size;
    promise;
    finished = false;
    queued = false;
    /** When it fails if still queued (ms since the epoch); 0 before it is queued. */
    deadline = 0;
    timer;
    /** The id of the request in flight, 0 when none. */
    callId = 0;
    settle;
    constructor(channel, data, opts = {}) {
        if (!isValidChannel(channel)) {
            throw new ServerError(`publish to ${JSON.stringify(channel)}`, { type: "error", code: "invalid_channel", message: "channel name must be 1 to 255 bytes of A-Z a-z 0-9 _ - . : @ / =" });
        }
        const json = JSON.stringify(data);
        if (json === undefined)
            throw new HeraldError(`herald: publish to ${channel}: data is not a JSON value`);
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
    frame(id) {
        return `{"type":"publish","id":${id},"channel":${JSON.stringify(this.channel)},"data":${this.dataJSON},"key":${JSON.stringify(this.key)}}`;
    }
    /** frameBytes is the frame's size with the longest id the client uses. */
    frameBytes() {
        return byteLength(this.frame(Number.MAX_SAFE_INTEGER));
    }
    resolve(offset) {
        if (this.finished)
            return;
        this.finished = true;
        this.settle.resolve(offset);
    }
    reject(err) {
        if (this.finished)
            return;
        this.finished = true;
        this.settle.reject(err);
    }
}
/**
 * PublishQueue is the offline queue: publishes waiting for a ready
 * connection, oldest first, with their total size.
 */
export class PublishQueue {
    limits;
    items = [];
    total = 0;
    constructor(limits) {
        this.limits = limits;
    }
    get length() {
        return this.items.length;
    }
    get bytes() {
        return this.total;
    }
    /** fits reports whether p may join the queue within its bounds. */
    fits(p) {
        return this.limits.messages > 0 && this.items.length < this.limits.messages &&
            this.total + p.size <= this.limits.bytes;
    }
    /** push adds p at the end, or, with front, before everything queued. */
    push(p, front = false) {
        if (front)
            this.items.unshift(p);
        else
            this.items.push(p);
        this.total += p.size;
    }
    /** remove takes p out and reports whether it was there. */
    remove(p) {
        const i = this.items.indexOf(p);
        if (i < 0)
            return false;
        this.items.splice(i, 1);
        this.total -= p.size;
        return true;
    }
    /** drain empties the queue and returns what it held, oldest first. */
    drain() {
        const items = this.items;
        this.items = [];
        this.total = 0;
        return items;
    }
}
