/**
 * A Phoenix Channels v2 server on Cinder actors: see `protocol.ts` for the wire protocol in one
 * page, `endpoint.ts` for the WebSocket endpoint, `channel.ts` for writing channels.
 */
export * from "./protocol.js";
export * from "./channel.js";
export * from "./fastlane.js";
export * from "./pubsub.js";
export * from "./cinder_pubsub.js";
export { Connection, type ConnectionHooks, type ConnectionLimits, type EndpointStats, type SocketMsg } from "./socket.js";
export * from "./endpoint.js";
export { WriteCoalescer } from "./coalesce.js";
