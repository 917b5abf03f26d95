import { ServerError, TokenError } from "./errors.js";
/** How long after a failed refresh the client tries again. */
const REFRESH_RETRY_MS = 5_000;
/**
 * TokenKeeper holds the token the client connects with. It asks the
 * application's getToken for a fresh one when there is none, when the
 * server rejected it (close 4001) or when it has expired, and refreshes a
 * connection's token ahead of a JWT's exp. A token the server rejected is
 * never sent again.
 */
export class TokenKeeper {
    aheadMs;
    host;
    token;
    getToken;
    stale; // rejected or expired: never sent again
    needToken;
    expiresAt;
    refreshAt = 0;
    refreshing = false;
    live = false;
    timer;
    constructor(opts, aheadMs, host) {
        this.aheadMs = aheadMs;
        this.host = host;
        this.token = opts.token ?? "";
        this.getToken = opts.getToken;
        this.needToken = !this.token && !!this.getToken;
        this.expiresAt = this.token ? tokenExpiry(this.token) : undefined;
    }
    /** forConnect returns the token for a new connection, "" for none. */
    async forConnect() {
        const expired = this.expiresAt !== undefined && this.expiresAt <= Date.now();
        if (this.getToken && (this.needToken || expired)) {
            if (expired)
                this.stale = this.token;
            this.use(await this.fresh());
            this.needToken = false;
        }
        return this.token;
    }
    /**
     * reject notes that the server refused the current token, and reports
     * whether a fresh one can be asked for.
     */
    reject() {
        if (!this.getToken)
            return false;
        this.stale = this.token;
        this.needToken = true;
        return true;
    }
    /** connected schedules the refresh of the new connection's token. */
    connected() {
        this.live = true;
        if (this.expiresAt !== undefined)
            this.schedule(refreshTime(this.expiresAt, Date.now(), this.aheadMs));
    }
    disconnected() {
        this.live = false;
        clearTimeout(this.timer);
    }
    stop() {
        this.disconnected();
        this.refreshAt = 0;
    }
    /**
     * check refreshes when the refresh is due by the wall clock: a timer may
     * have been throttled (late) or fire a little early, so it is checked
     * again then.
     */
    check() {
        if (!this.live || !this.refreshAt || this.refreshing)
            return;
        if (Date.now() < this.refreshAt)
            this.schedule(this.refreshAt);
        else
            void this.refresh();
    }
    schedule(at) {
        if (!this.getToken)
            return;
        clearTimeout(this.timer);
        this.refreshAt = at;
        this.timer = setTimeout(() => this.check(), Math.max(0, at - Date.now()));
    }
    async refresh() {
        this.refreshing = true;
        const old = this.token;
        let token;
        try {
            this.stale = old;
            token = await this.fresh();
        }
        catch (err) {
            this.refreshing = false;
            this.host.error(err);
            if (this.live)
                this.schedule(Date.now() + REFRESH_RETRY_MS);
            return;
        }
        this.use(token);
        const sent = this.host.send(token, (f) => this.onReply(token, f));
        if (!sent)
            this.refreshing = false; // the next connection uses the new token
    }
    onReply(token, f) {
        this.refreshing = false;
        if (f?.type === "refreshed") {
            this.expiresAt = f.expires_at ? f.expires_at * 1000 : tokenExpiry(token);
            if (this.expiresAt !== undefined && this.live)
                this.schedule(refreshTime(this.expiresAt, Date.now(), this.aheadMs));
        }
        else if (f?.type === "error") {
            this.host.error(new ServerError("refresh", f));
            if (this.live)
                this.schedule(Date.now() + REFRESH_RETRY_MS);
        }
    }
    /** fresh asks the application for a token other than the stale one. */
    async fresh() {
        let token;
        try {
            token = await this.getToken();
        }
        catch (err) {
            throw new TokenError(`herald: token callback: ${err?.message ?? String(err)}`, { cause: err });
        }
        if (typeof token !== "string" || token === "")
            throw new TokenError("herald: token callback returned no token");
        if (token === this.stale)
            throw new TokenError("herald: token callback returned a token the server rejected or that expired");
        return token;
    }
    use(token) {
        this.token = token;
        this.expiresAt = tokenExpiry(token);
    }
}
/**
 * tokenExpiry returns the `exp` claim of a JWT in milliseconds since the
 * epoch, or undefined when token is not a JWT or has no numeric exp. The
 * signature is not checked: the client only uses this to refresh in time.
 */
export function tokenExpiry(token) {
    const parts = token.split(".");
    if (parts.length !== 3)
        return undefined;
    try {
        const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
        const claims = JSON.parse(atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, "=")));
        const exp = claims?.exp;
        return typeof exp === "number" && Number.isFinite(exp) ? exp * 1000 : undefined;
    }
    catch {
        return undefined;
    }
}
/**
 * refreshTime returns when to refresh a token that expires at expiresAt
 * (ms): aheadMs before it, or halfway there for a token that lives less
 * than twice that.
 */
export function refreshTime(expiresAt, now, aheadMs) {
    return expiresAt - Math.min(aheadMs, Math.max(0, (expiresAt - now) / 2));
}
