// Package herald is an embeddable real-time messaging server over WebSocket.
//
// A Server is an http.Handler: mount it on your own mux (conventionally at
// /ws) next to your HTTP routes, and the WebSocket shares their port. The wire
// protocol is herald.v1, described in docs/PROTOCOL.md.
//
// http.Server.Shutdown does not touch hijacked connections, so WebSocket
// connections outlive it: call Server.Shutdown as well (after the HTTP
// server's) to close them with 1001 and drain their queues.
//
// # A connection's life, and the file that owns each stage
//
//  1. upgrade.go: ServeHTTP checks the limits, the Origin, the subprotocol
//     and the credentials (authn.go), then upgrades on the hijacked socket.
//  2. session.go: the session is opened, scheduled for heartbeats
//     (heartbeat.go) and greeted with welcome, or given its hello timeout.
//  3. reader.go: frames are read (through readbuf.go's pooled buffer, parked
//     in epoll between reads by netpoll_linux.go), reassembled and checked;
//     compressed messages are inflated (compress.go).
//  4. requests.go: each message is decoded and served, within the rate and
//     error limits of limits.go and the rules of access.go; subscription.go
//     joins channels and replays what a client missed; publish_batch.go
//     sends the publishes of one read to a batch-capable broker together.
//  5. hub.go: a publication from the broker is fanned out to local
//     subscribers, its frame built once (frame.go) and compressed at most
//     once for those that negotiated permessage-deflate (compress.go); a
//     batch of them is queued before any subscriber's writer starts.
//  6. send.go: frames wait in the connection's bounded queue and are written
//     in batches.
//  7. close.go: the connection ends, with a close handshake or without one,
//     and releases what it held.
package herald
