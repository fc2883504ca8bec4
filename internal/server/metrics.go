package server

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus collectors.
type metrics struct {
	requests *prometheus.CounterVec
	issued   *prometheus.CounterVec
	refused  *prometheus.CounterVec
	// subscribers counts the open revocation streams.
	subscribers prometheus.Gauge
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mandate_http_requests_total", Help: "HTTP requests by route and status class.",
		}, []string{"route", "code"}),
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mandate_tokens_issued_total", Help: "Tokens issued, by agent and grant.",
		}, []string{"agent", "grant"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mandate_tokens_refused_total", Help: "Token requests refused, by reason.",
		}, []string{"reason"}),
		subscribers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mandate_revocation_feed_subscribers", Help: "Open revocation streams (GET /revocations/stream).",
		}),
	}
	reg.MustRegister(m.requests, m.issued, m.refused, m.subscribers)
	return m
}

// feedMetrics exports where the revocation feed stands and how long ago it
// last read the store: the lag every subscriber inherits.
func feedMetrics(reg *prometheus.Registry, position func() (seq int64, age float64)) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mandate_revocation_feed_sequence", Help: "Sequence number of the last revocation entry the server has read.",
		}, func() float64 { seq, _ := position(); return float64(seq) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "mandate_revocation_feed_staleness_seconds", Help: "Seconds since the server last read the revocation entries from the store.",
		}, func() float64 { _, age := position(); return age }),
	)
}
