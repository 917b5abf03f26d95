/**
 * Emitter is a small typed event emitter. Listeners run in the order they
 * were added; one that throws is reported with reportError (or
 * console.error) and does not stop the others.
 */
export class Emitter<Events extends { [K in keyof Events]: unknown }> {
  private listeners: { [K in keyof Events]?: Set<(arg: Events[K]) => void> } = {};

  /** on adds a listener and returns a function that removes it. */
  on<K extends keyof Events>(event: K, listener: (arg: Events[K]) => void): () => void {
    const set = (this.listeners[event] ??= new Set());
    set.add(listener);
    return () => this.off(event, listener);
  }

  /** off removes a listener added with on. */
  off<K extends keyof Events>(event: K, listener: (arg: Events[K]) => void): void {
    this.listeners[event]?.delete(listener);
  }

  protected emit<K extends keyof Events>(event: K, arg: Events[K]): void {
    const set = this.listeners[event];
    if (!set) return;
    for (const listener of [...set]) safeCall(listener, arg);
  }
}

/** safeCall runs a user callback, reporting instead of throwing what it throws. */
export function safeCall<T>(fn: (arg: T) => void, arg: T): void {
  try {
    fn(arg);
  } catch (err) {
    reportError(err);
  }
}

/** reportError hands an exception thrown by a callback to the platform, without stopping the client. */
export function reportError(err: unknown): void {
  const g = globalThis as { reportError?: (e: unknown) => void };
  if (typeof g.reportError === "function") g.reportError(err);
  else console.error("herald: a callback threw:", err);
}
