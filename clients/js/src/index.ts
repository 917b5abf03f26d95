// herald-client: the browser and Node client of Herald, real-time messaging
// over WebSocket (protocol herald.v1).

export { HeraldClient } from "./client.js";
export { DEFAULTS } from "./options.js";
export type { ClientEvents, ClientOptions, DebugLog, ServerSubscription, State, StateChange } from "./options.js";
export { Subscription } from "./subscription.js";
export type { Message, Recovery, SubscribeOptions, SubscriptionEvents, SubscriptionState, SubscriptionStateChange } from "./subscription.js";
export type { PublishOptions } from "./publish.js";
export type { HistoryOptions, Page, Presence, PresenceOptions } from "./history.js";
export { backoffDelay, goingAwayDelay, BACKOFF_DEFAULTS, GOING_AWAY_SPREAD_MS } from "./backoff.js";
export type { BackoffOptions } from "./backoff.js";
export type { WebSocketConstructor, WebSocketLike } from "./connection.js";
export {
  ClosedError, CloseError, ConnectionLostError, EpochChangedError, HeraldError, NoPongError, QueueFullError, QueueTimeoutError,
  ServerError, TimeoutError, TokenError, TokenRequiredError, TooLargeError, UnsubscribedError, UpgradeError, closeCodeMeaning,
} from "./errors.js";
export { uuidv7 } from "./uuid.js";
export { tokenExpiry } from "./tokens.js";
export * from "./protocol.js";
