/** The defaults of ClientOptions. */
export const DEFAULTS = {
    connectTimeoutMs: 10_000,
    queueMessages: 100,
    queueBytes: 1 << 20,
    queueTimeoutMs: 60_000,
    refreshAheadMs: 30_000,
    clientName: "herald-js/0.1",
    /** Assumed until the first welcome says better. */
    maxMessageBytes: 64 << 10,
    /** How long close() waits for the server to answer its close frame. */
    closeWaitMs: 1_000,
};
