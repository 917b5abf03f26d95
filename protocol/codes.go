package protocol

// Code is a stable error code carried by an error frame and by the HTTP API's
// JSON errors.
type Code string

// Error codes, with the HTTP status the HTTP API answers them with.
const (
	CodeBadRequest     Code = "bad_request"
	CodeUnknownType    Code = "unknown_type"
	CodeInvalidChannel Code = "invalid_channel"
	CodeUnauthorized   Code = "unauthorized"
	CodeForbidden      Code = "forbidden"
	CodeNotSubscribed  Code = "not_subscribed"
	CodeLimitExceeded  Code = "limit_exceeded"
	CodeRateLimited    Code = "rate_limited"
	CodeUnavailable    Code = "unavailable"
	CodeInternal       Code = "internal"
)

var httpStatus = map[Code]int{
	CodeBadRequest:     400,
	CodeUnknownType:    400,
	CodeInvalidChannel: 400,
	CodeUnauthorized:   401,
	CodeForbidden:      403,
	CodeNotSubscribed:  409,
	CodeLimitExceeded:  429,
	CodeRateLimited:    429,
	CodeUnavailable:    503,
	CodeInternal:       500,
}

// HTTPStatus returns the HTTP status that goes with c, 500 for an unknown code.
func (c Code) HTTPStatus() int {
	if s, ok := httpStatus[c]; ok {
		return s
	}
	return 500
}

// CloseCode is a WebSocket close code.
type CloseCode uint16

// Close codes used by Herald.
const (
	CloseNormal         CloseCode = 1000
	CloseGoingAway      CloseCode = 1001
	CloseProtocolError  CloseCode = 1002 // a framing violation by the peer
	CloseAbnormal       CloseCode = 1006 // never sent: the peer vanished without a close frame
	CloseInvalidPayload CloseCode = 1007
	CloseMessageTooBig  CloseCode = 1009
	CloseInternal       CloseCode = 1011
	CloseServiceRestart CloseCode = 1012 // the stream of a held channel was reset
	CloseTryAgainLater  CloseCode = 1013
	CloseUnauthorized   CloseCode = 4001
	CloseSlowConsumer   CloseCode = 4008
	CloseTooManyErrors  CloseCode = 4029
	CloseForbidden      CloseCode = 4403
	closeTerminalFirst  CloseCode = 4500
	closeTerminalLast   CloseCode = 4999
	closeRetryableFirst CloseCode = 4000
)

// Retryable reports whether a client should reconnect after the server closed
// the connection with c. 4403 and 4500-4999 are terminal; everything else,
// including a connection lost without a close frame, is retried. A 1000 sent
// by the client itself is handled by the client, not by this table.
func (c CloseCode) Retryable() bool {
	switch {
	case c == CloseForbidden:
		return false
	case c >= closeTerminalFirst && c <= closeTerminalLast:
		return false
	}
	return true
}

// String returns the code's meaning as PROTOCOL.md names it.
func (c CloseCode) String() string {
	switch c {
	case CloseNormal:
		return "normal close"
	case CloseGoingAway:
		return "server shutting down"
	case CloseAbnormal:
		return "connection lost"
	case CloseInvalidPayload:
		return "invalid UTF-8"
	case CloseMessageTooBig:
		return "message too big"
	case CloseInternal:
		return "internal error"
	case CloseServiceRestart:
		return "stream reset"
	case CloseTryAgainLater:
		return "overloaded"
	case CloseUnauthorized:
		return "unauthorized"
	case CloseSlowConsumer:
		return "slow consumer"
	case CloseTooManyErrors:
		return "too many bad requests"
	case CloseForbidden:
		return "forbidden"
	}
	if c >= closeTerminalFirst && c <= closeTerminalLast {
		return "terminal application close"
	}
	if c >= closeRetryableFirst && c < closeTerminalFirst {
		return "application close"
	}
	return "close"
}
