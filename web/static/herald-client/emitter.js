/**
 * Emitter is a small typed event emitter. Listeners run in the order they
 * were added; one that throws is reported with reportError (or
 * console.error) and does not stop the others.
 */
export class Emitter {
    listeners = {};
    /** on adds a listener and returns a function that removes it. */
    on(event, listener) {
        const set = (this.listeners[event] ??= new Set());
        set.add(listener);
        return () => this.off(event, listener);
    }
    /** off removes a listener added with on. */
    off(event, listener) {
        this.listeners[event]?.delete(listener);
    }
    emit(event, arg) {
        const set = this.listeners[event];
        if (!set)
            return;
        for (const listener of [...set])
            safeCall(listener, arg);
    }
}
/** safeCall runs a user callback, reporting instead of throwing what it throws. */
export function safeCall(fn, arg) {
    try {
        fn(arg);
    }
    catch (err) {
        reportError(err);
    }
}
/** reportError hands an exception thrown by a callback to the platform, without stopping the client. */
export function reportError(err) {
    const g = globalThis;
    if (typeof g.reportError === "function")
        g.reportError(err);
    else
        console.error("herald: a callback threw:", err);
}
