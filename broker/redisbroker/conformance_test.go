package redisbroker_test

import (
	"testing"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/broker/brokertest"
	"github.com/heraldhq/herald/broker/redisbroker"
)

func TestConformance(t *testing.T) {
	r := startRedis(t)
	brokertest.Run(t, func(t *testing.T, opts broker.HistoryOptions) broker.Broker {
		return newBroker(t, r, redisbroker.Options{History: opts})
	})
}
