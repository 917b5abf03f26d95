/** What the client does on the browser's signals. */
export interface SignalHandlers {
  /** The browser is back on the network. */
  online(): void;
  /** The browser lost the network: the connection cannot work. */
  offline(): void;
  /** The page became visible again, after its timers may have been throttled. */
  visible(): void;
}

interface EventSource {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}

/**
 * BrowserSignals listens to the window's online and offline events and the
 * document's visibilitychange while the client runs. Outside a browser it
 * does nothing.
 */
export class BrowserSignals {
  private readonly onOnline = () => this.handlers.online();
  private readonly onOffline = () => this.handlers.offline();
  private readonly onVisibility = () => {
    if ((globalThis as { document?: { visibilityState?: string } }).document?.visibilityState === "visible") {
      this.handlers.visible();
    }
  };
  private started = false;

  constructor(private readonly enabled: boolean, private readonly handlers: SignalHandlers) {}

  start(): void {
    if (!this.enabled || this.started) return;
    this.started = true;
    const { win, doc } = targets();
    win?.addEventListener("online", this.onOnline);
    win?.addEventListener("offline", this.onOffline);
    doc?.addEventListener("visibilitychange", this.onVisibility);
  }

  stop(): void {
    if (!this.started) return;
    this.started = false;
    const { win, doc } = targets();
    win?.removeEventListener("online", this.onOnline);
    win?.removeEventListener("offline", this.onOffline);
    doc?.removeEventListener("visibilitychange", this.onVisibility);
  }
}

function targets(): { win?: EventSource; doc?: EventSource } {
  const g = globalThis as { window?: unknown; document?: unknown };
  return { win: asSource(g.window), doc: asSource(g.document) };
}

function asSource(v: unknown): EventSource | undefined {
  return typeof (v as EventSource | undefined)?.addEventListener === "function" ? (v as EventSource) : undefined;
}
