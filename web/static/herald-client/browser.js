/**
 * BrowserSignals listens to the window's online and offline events and the
 * document's visibilitychange while the client runs. Outside a browser it
 * does nothing.
 */
export class BrowserSignals {
    enabled;
    handlers;
    onOnline = () => this.handlers.online();
    onOffline = () => this.handlers.offline();
    onVisibility = () => {
        if (globalThis.document?.visibilityState === "visible") {
            this.handlers.visible();
        }
    };
    started = false;
    constructor(enabled, handlers) {
        this.enabled = enabled;
        this.handlers = handlers;
    }
    start() {
        if (!this.enabled || this.started)
            return;
        this.started = true;
        const { win, doc } = targets();
        win?.addEventListener("online", this.onOnline);
        win?.addEventListener("offline", this.onOffline);
        doc?.addEventListener("visibilitychange", this.onVisibility);
    }
    stop() {
        if (!this.started)
            return;
        this.started = false;
        const { win, doc } = targets();
        win?.removeEventListener("online", this.onOnline);
        win?.removeEventListener("offline", this.onOffline);
        doc?.removeEventListener("visibilitychange", this.onVisibility);
    }
}
function targets() {
    const g = globalThis;
    return { win: asSource(g.window), doc: asSource(g.document) };
}
function asSource(v) {
    return typeof v?.addEventListener === "function" ? v : undefined;
}
