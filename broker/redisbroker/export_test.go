package redisbroker

// Inbox returns how many publications read from Redis wait for delivery.
func Inbox(b *Broker) int { return len(b.inbox) }
