// The frames of Herald's wire protocol, version 1 (herald.v1). One WebSocket
// text message holds exactly one of these as a JSON object. The contract is
// docs/PROTOCOL.md in the Herald repository.
/** The WebSocket subprotocol of this protocol version. */
export const SUBPROTOCOL = "herald.v1";
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
};
/**
 * isTerminalCloseCode reports whether a server's close code stops the client:
 * 4403 and 4500-4999. Every other code, and a connection lost without a close
 * frame (1006), is retried.
 */
export function isTerminalCloseCode(code) {
    return code === CloseCodes.FORBIDDEN || (code >= 4500 && code <= 4999);
}
const CHANNEL_RE = /^[A-Za-z0-9_\-.:@/=]{1,255}$/;
/** isValidChannel reports whether name follows PROTOCOL.md's channel rules. */
export function isValidChannel(name) {
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
export function parseServerFrame(text) {
    let v;
    try {
        v = JSON.parse(text);
    }
    catch {
        return undefined;
    }
    if (typeof v !== "object" || v === null || Array.isArray(v))
        return undefined;
    if (typeof v.type !== "string")
        return undefined;
    return v;
}
