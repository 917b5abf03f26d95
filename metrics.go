package herald

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/heraldhq/herald/broker"
	"github.com/heraldhq/herald/protocol"
)

// metrics are the server's Prometheus metrics. Hot paths add once per batch
// or per publication, never per delivered message.
type metrics struct {
	connections        prometheus.Gauge
	opened             prometheus.Counter
	closed             *prometheus.CounterVec // by close code
	subscriptions      prometheus.Gauge
	received           prometheus.Counter
	receivedBytes      prometheus.Counter
	delivered          prometheus.Counter
	framesSent         prometheus.Counter
	writes             prometheus.Counter
	sentBytes          prometheus.Counter
	publishSeconds     prometheus.Histogram
	fanoutSeconds      prometheus.Histogram
	queueDropped       prometheus.Counter
	slowConsumers      prometheus.Counter
	heartbeatKills     prometheus.Counter
	pingRTT            prometheus.Histogram
	brokerErrors       *prometheus.CounterVec // by operation
	recoveries         *prometheus.CounterVec // by outcome
	errors             *prometheus.CounterVec // error replies, by code
	rateLimitedReplies prometheus.Counter
	upgradesRefused    *prometheus.CounterVec // by reason
	compressions       prometheus.Counter
	compressionIn      prometheus.Counter
	compressionOut     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, b broker.Broker) *metrics {
	f := func(c prometheus.Collector) prometheus.Collector { reg.MustRegister(c); return c }
	counter := func(name, help string) prometheus.Counter {
		return f(prometheus.NewCounter(prometheus.CounterOpts{Name: "herald_" + name, Help: help})).(prometheus.Counter)
	}
	gauge := func(name, help string) prometheus.Gauge {
		return f(prometheus.NewGauge(prometheus.GaugeOpts{Name: "herald_" + name, Help: help})).(prometheus.Gauge)
	}
	vec := func(name, help, label string) *prometheus.CounterVec {
		return f(prometheus.NewCounterVec(prometheus.CounterOpts{Name: "herald_" + name, Help: help}, []string{label})).(*prometheus.CounterVec)
	}
	hist := func(name, help string, buckets []float64) prometheus.Histogram {
		return f(prometheus.NewHistogram(prometheus.HistogramOpts{Name: "herald_" + name, Help: help, Buckets: buckets})).(prometheus.Histogram)
	}
	latency := prometheus.ExponentialBuckets(50e-6, 2.5, 12) // 50 µs .. ~1.2 s
	if r, ok := b.(broker.StatsReporter); ok {
		stat := func(name, help string, v func(broker.Stats) int64) {
			f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "herald_" + name, Help: help}, func() float64 { return float64(v(r.Stats())) }))
		}
		stat("history_bytes", "Bytes of history the broker holds, as its history bound counts them.", func(s broker.Stats) int64 { return s.HistoryBytes })
		stat("channels", "Channels the broker holds.", func(s broker.Stats) int64 { return int64(s.Channels) })
	}
	m := &metrics{
		connections:        gauge("connections", "Open WebSocket connections."),
		opened:             counter("connections_opened_total", "WebSocket connections opened."),
		closed:             vec("connections_closed_total", "WebSocket connections closed, by close code (1006: lost without a close frame; client_other: a code of the client's own, 3000-4999).", "code"),
		subscriptions:      gauge("subscriptions", "Channel subscriptions held by open connections."),
		received:           counter("messages_received_total", "Messages received from clients."),
		receivedBytes:      counter("received_bytes_total", "Bytes of messages received from clients."),
		delivered:          counter("messages_delivered_total", "Publications queued for subscribers (one per subscriber)."),
		framesSent:         counter("frames_sent_total", "WebSocket frames written to clients."),
		writes:             counter("socket_writes_total", "Writes to client sockets, each of one or more frames: frames_sent_total over this is the frames per write."),
		sentBytes:          counter("sent_bytes_total", "Bytes written to clients."),
		publishSeconds:     hist("publish_duration_seconds", "Time the broker took to accept a publish.", latency),
		fanoutSeconds:      hist("fanout_duration_seconds", "Time to queue one publication for every local subscriber.", latency),
		queueDropped:       counter("send_queue_dropped_frames_total", "Frames dropped from send queues of slow consumers."),
		slowConsumers:      counter("slow_consumer_closes_total", "Connections closed with 4008 because their send queue overflowed."),
		heartbeatKills:     counter("heartbeat_terminations_total", "Connections terminated because they stopped answering."),
		pingRTT:            hist("ping_rtt_seconds", "Round-trip time of server pings.", prometheus.ExponentialBuckets(100e-6, 3, 12)),
		brokerErrors:       vec("broker_errors_total", "Broker operations that failed, by operation.", "op"),
		recoveries:         vec("recoveries_total", "Subscribes with since, by outcome (recovered true or false).", "recovered"),
		errors:             vec("errors_total", "Error replies sent to clients, by code.", "code"),
		rateLimitedReplies: counter("rate_limited_total", "Requests refused by the per-connection rate limit."),
		upgradesRefused:    vec("upgrades_refused_total", "WebSocket upgrades refused, by reason (origin: the Origin is not allowed, see --allowed-origins; host: the Host is not, see --allowed-hosts).", "reason"),
	}
	m.compressions = counter("compressed_messages_total", "Outgoing messages compressed (permessage-deflate); a publication counts once, however many subscribers get it compressed.")
	m.compressionIn = counter("compression_in_bytes_total", "Bytes of outgoing payloads before compression.")
	m.compressionOut = counter("compression_out_bytes_total", "Bytes of the same payloads after compression.")
	m.upgradesRefused.WithLabelValues("origin") // shown at 0, for alerts
	return m
}

// connClosed counts a connection that ended with code. A code the client
// chose is counted by number only when RFC 6455 defines it; the rest share
// the label client_other, so that clients cannot grow the label set.
func (m *metrics) connClosed(code protocol.CloseCode, byClient bool) {
	m.connections.Dec()
	label := strconv.Itoa(int(code))
	if byClient && code > 1014 {
		label = "client_other"
	}
	m.closed.WithLabelValues(label).Inc()
}

func observeSince(h prometheus.Histogram, start time.Time) { h.Observe(time.Since(start).Seconds()) }

// MetricsHandler serves the server's Prometheus metrics (herald_*) in the
// text format, plus whatever else is registered on Options.Registry.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{})
}

// Stats is a snapshot of the server's activity, for dashboards.
type Stats struct {
	Time                  int64  `json:"time_ms"` // Unix milliseconds
	Connections           int    `json:"connections"`
	Channels              int    `json:"channels"` // with local subscribers
	Subscriptions         int    `json:"subscriptions"`
	MessagesReceived      uint64 `json:"messages_received"`
	MessagesDelivered     uint64 `json:"messages_delivered"`
	HeartbeatTerminations uint64 `json:"heartbeat_terminations"`
	SlowConsumerCloses    uint64 `json:"slow_consumer_closes"`
}

// Stats returns the server's current counters.
func (s *Server) Stats() Stats {
	m := s.metrics
	return Stats{
		Time:                  time.Now().UnixMilli(),
		Connections:           int(value(m.connections)),
		Channels:              s.hub.count(),
		Subscriptions:         int(value(m.subscriptions)),
		MessagesReceived:      uint64(value(m.received)),
		MessagesDelivered:     uint64(value(m.delivered)),
		HeartbeatTerminations: uint64(value(m.heartbeatKills)),
		SlowConsumerCloses:    uint64(value(m.slowConsumers)),
	}
}

// value reads a counter's or gauge's current value.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return 0
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}
