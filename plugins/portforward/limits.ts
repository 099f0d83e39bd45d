/**
 * Memory bounds of the port-forward transports (v4 and SPDY): what one connection or session may
 * hold for an app that does not read, a pod that does not read, or an API server that sends more
 * than asked. Each bound is paid for with backpressure towards the sender, never with data loss.
 */

/**
 * The largest WebSocket message accepted (`ws` allows 100 MiB by default and holds a message
 * whole). The API server relays the kubelet's 32 KiB copy buffers, one message each; a bigger
 * message is hostile and closes the socket (1009).
 */
export const MAX_MESSAGE = 1024 * 1024;

/**
 * Bytes a connection's readable may hold for an app that does not read before reading from the
 * API server pauses (v4: that connection's socket; SPDY: the session, or the stream's window when
 * the peer honours flow control).
 */
export const STREAM_HIGH_WATER = 1024 * 1024;

/** Bytes all of a SPDY session's readables may hold together before the session pauses. */
export const SESSION_HIGH_WATER = 16 * 1024 * 1024;

/** Pause taking the app's bytes while this much is queued on the socket towards the API server. */
export const SEND_HIGH_WATER = 4 * 1024 * 1024;
