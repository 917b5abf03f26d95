import { UpgradeError } from "./errors.js";
/** How long the HTTP probe of a failed upgrade may take. */
const PROBE_TIMEOUT_MS = 3_000;
/** herald serve's WebSocket endpoint, named in the hints. */
const ENDPOINT = "/ws";
/**
 * retryableStatus reports whether an HTTP refusal of the upgrade may pass
 * later (PROTOCOL.md, Clients): 401, 408, 425, 429 and 5xx. Any other is
 * terminal before the first welcome.
 */
export function retryableStatus(status) {
    return status === 401 || status === 408 || status === 425 || status === 429 || status >= 500;
}
/**
 * statusFromEvent reads the HTTP status of a refused upgrade from a
 * WebSocket error event, where the implementation states it: the `ws`
 * package says "Unexpected server response: 403". Browsers and Node's
 * built-in WebSocket do not.
 */
export function statusFromEvent(ev) {
    const e = ev;
    const m = /Unexpected server response: (\d{3})/.exec(`${e?.message ?? ""} ${e?.error?.message ?? ""}`);
    return m ? Number(m[1]) : undefined;
}
/**
 * refusal describes an upgrade the URL answered with an HTTP status: what
 * it answered, and what is likely wrong. contentType and body, when known,
 * come from the probe.
 */
export function refusal(url, status, contentType = "", body = "") {
    const ct = contentType ? ` (${contentType.split(";")[0]})` : "";
    const said = body ? `: ${body}` : "";
    const terminal = !retryableStatus(status);
    if (status < 400 || status === 404) {
        return new UpgradeError(`herald: ${url} is not a WebSocket endpoint: it answered HTTP ${status}${ct}${said} instead of ` +
            `upgrading; check the URL (herald serve's endpoint is ${ENDPOINT})`, status, terminal);
    }
    const origin = pageOrigin();
    const hint = status === 403 && origin ? `; if this page's origin is not allowed, start herald serve with --allowed-origins ${origin}` : "";
    return new UpgradeError(`herald: ${url} refused the WebSocket upgrade with HTTP ${status}${said}${hint}`, status, terminal);
}
/**
 * probeUpgrade asks the URL over HTTP (a GET on the same address) why the
 * WebSocket upgrade failed before the connection opened. It returns
 * undefined when it learns nothing: the server is unreachable (an ordinary
 * connection failure), or answers 426, which shows the URL is a WebSocket
 * endpoint that refused for another reason. Where the answer can be read
 * (Node, a page on the server's origin, or a server that allows the page
 * to read it with CORS), the error carries its status. A page on another
 * origin usually cannot read it: the server is reachable but the browser
 * hides why, and the error says what is most likely (the origin), without
 * a status and not terminal.
 */
export async function probeUpgrade(url, fetchFn) {
    if (typeof fetchFn !== "function")
        return undefined;
    const httpURL = url.replace(/^ws/i, "http");
    try {
        const res = await withTimeout((signal) => fetchFn(httpURL, { credentials: "omit", cache: "no-store", signal }));
        if (res.status === 426) {
            void res.body?.cancel();
            return undefined;
        }
        const contentType = res.headers.get("content-type") ?? "";
        const body = res.status >= 400 && contentType.startsWith("text/plain") ? firstLine(await res.text()) : "";
        if (!body)
            void res.body?.cancel().catch(() => { });
        return refusal(url, res.status, contentType, body);
    }
    catch {
        // Unreachable, or a cross-origin answer the page may not read.
    }
    try {
        await withTimeout((signal) => fetchFn(httpURL, { mode: "no-cors", credentials: "omit", cache: "no-store", signal }));
    }
    catch {
        return undefined; // unreachable: an ordinary connection failure
    }
    const origin = pageOrigin();
    return new UpgradeError(`herald: ${url} answers HTTP but refused the WebSocket upgrade, and this page may not read why. ` +
        `Most often the page's origin${origin ? ` (${origin})` : ""} is not allowed: start herald serve with ` +
        `--allowed-origins ${origin || "<origin>"}. Otherwise the URL is not the WebSocket endpoint (herald serve's is ${ENDPOINT})`);
}
function withTimeout(f) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), PROBE_TIMEOUT_MS);
    return f(ctl.signal).finally(() => clearTimeout(timer));
}
function firstLine(s) {
    return s.trim().split("\n")[0].slice(0, 200);
}
/** pageOrigin is the origin of the page the client runs in, "" outside a browser. */
function pageOrigin() {
    const loc = globalThis.location;
    return loc?.origin && loc.origin !== "null" ? loc.origin : "";
}
