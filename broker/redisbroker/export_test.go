package redisbroker

// HoldDeliveries stops b from delivering until the returned func is called;
// publications read from Redis meanwhile wait in its inbox.
func HoldDeliveries(b *Broker) (release func()) {
	b.runMu.Lock()
	return b.runMu.Unlock
}

// Inbox returns how many publications read from Redis wait for delivery.
func Inbox(b *Broker) int { return len(b.link.inbox) }
