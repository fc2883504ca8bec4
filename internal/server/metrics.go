package server

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mandate-dev/mandate/internal/audit"
	"github.com/mandate-dev/mandate/oauth"
)

// agentUnauthenticated is the agent label of a token request refused before
// its client authenticated. Every other agent label value is the id of an
// agent the store knows (an authenticated client, or the client a stored
// token was issued to), so that made-up client ids cannot add series.
const agentUnauthenticated = "unauthenticated"

// latencyBuckets suit work measured in milliseconds that the request
// timeout (1.8 s) and the audit commit timeout (2 s) cut off.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// metrics are the server's Prometheus collectors.
type metrics struct {
	requests *prometheus.CounterVec
	issued   *prometheus.CounterVec
	refused  *prometheus.CounterVec
	revoked  *prometheus.CounterVec
	// tokenDuration is the /token handling time by grant; chainDepth the
	// number of actors in each token issued by token exchange.
	tokenDuration *prometheus.HistogramVec
	chainDepth    prometheus.Histogram
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
			Name: "mandate_tokens_refused_total",
			Help: `Token requests refused, by agent (the authenticated client, or "unauthenticated") and reason.`,
		}, []string{"agent", "reason"}),
		revoked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mandate_tokens_revoked_total",
			Help: "Tokens revoked one by one (POST /revoke, POST /admin/revoke with a jti), by the agent they were issued to.",
		}, []string{"agent"}),
		tokenDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "mandate_token_request_duration_seconds", Help: "Time to handle a token request, by grant.",
			Buckets: latencyBuckets,
		}, []string{"grant"}),
		chainDepth: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "mandate_delegation_chain_depth", Help: "Actors in the act chain of each token issued by token exchange.",
			Buckets: prometheus.LinearBuckets(1, 1, 8),
		}),
		subscribers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mandate_revocation_feed_subscribers", Help: "Open revocation streams (GET /revocations/stream).",
		}),
	}
	reg.MustRegister(m.requests, m.issued, m.refused, m.revoked, m.tokenDuration, m.chainDepth, m.subscribers)
	return m
}

// observeToken counts one token request: its handling time when the grant
// is one the server runs, then the token issued or the refusal.
func (m *metrics) observeToken(out tokenOutcome, took time.Duration) {
	switch out.grant {
	case oauth.GrantTokenExchange, oauth.GrantClientCredentials:
		// Only these two: grant_type is the client's text.
		m.tokenDuration.WithLabelValues(out.grant).Observe(took.Seconds())
	}
	if out.err != nil {
		agent := out.client
		if agent == "" {
			agent = agentUnauthenticated
		}
		m.refused.WithLabelValues(agent, oauth.As(out.err).Reason).Inc()
		return
	}
	m.issued.WithLabelValues(out.client, out.grant).Inc()
	if len(out.res.Chain) > 0 {
		m.chainDepth.Observe(float64(len(out.res.Chain)))
	}
}

// AuditMetrics registers the metrics of an audit.Recorder with reg and
// returns the audit.Config.OnCommitted hook that feeds them:
// mandate_audit_commit_duration_seconds, mandate_audit_commit_failures_total
// and mandate_audit_records_total (the events the Recorder made durable). It
// panics if they are registered already.
func AuditMetrics(reg prometheus.Registerer) func(audit.Commit) {
	duration := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "mandate_audit_commit_duration_seconds", Help: "Time of each audit commit (one transaction for a group of requests), failed or not.",
		Buckets: latencyBuckets,
	})
	failures := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mandate_audit_commit_failures_total", Help: "Audit commit attempts that failed; a request whose record was not committed was refused.",
	})
	records := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mandate_audit_records_total", Help: "Audit records committed by the audit recorder.",
	})
	reg.MustRegister(duration, failures, records)
	return func(c audit.Commit) {
		duration.Observe(c.Duration.Seconds())
		if c.Err != nil {
			failures.Inc()
			return
		}
		records.Add(float64(c.Events))
	}
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
