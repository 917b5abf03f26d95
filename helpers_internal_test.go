package herald

import (
	"bufio"
	"net"

	"github.com/heraldhq/herald/auth"
)

// pipeSession connects a new session of srv to one end of an in-memory pipe,
// counted and tracked like an accepted connection but not yet serving, and
// returns the client's end. ok is false when srv is closed.
func pipeSession(srv *Server, name string) (client net.Conn, sess *session, ok bool) {
	client, server := net.Pipe()
	sess = newSession(srv, server, bufio.NewReader(server), name, auth.Identity{}, false)
	if !srv.reserve(remoteIP(sess.remote)) {
		return client, sess, false
	}
	if !srv.track(sess) {
		srv.release(remoteIP(sess.remote))
		return client, sess, false
	}
	return client, sess, true
}
