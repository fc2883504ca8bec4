package server

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the server's Prometheus collectors.
type metrics struct {
	requests *prometheus.CounterVec
	issued   *prometheus.CounterVec
	refused  *prometheus.CounterVec
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
	}
	reg.MustRegister(m.requests, m.issued, m.refused)
	return m
}
