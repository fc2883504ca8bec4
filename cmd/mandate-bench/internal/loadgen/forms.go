package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mandate-dev/mandate/oauth"
)

// Agent is a client's credentials, sent as client_secret_post.
type Agent struct {
	ID     string
	Secret string
}

// Exchange describes token-exchange requests (RFC 8693 §2.1): an agent
// presents a person's subject token and asks for a token addressed to
// Audience with Scope.
type Exchange struct {
	// Agents are the clients; worker w authenticates as
	// Agents[w%len(Agents)]. Required.
	Agents []Agent
	// IdP mints each worker's subject token for Subject, again once half its
	// lifetime has passed. When nil, SubjectToken is sent as it is.
	IdP     *IdP
	Subject string
	// SubjectToken is a fixed subject token, used when IdP is nil.
	SubjectToken string
	// SubjectTokenType defaults to the id_token type.
	SubjectTokenType string
	// Audience and Scope are sent when not empty.
	Audience string
	Scope    string
	// ActorToken, when set, gives an agent's actor_token (RFC 8693 §2.1),
	// sent with every request of that agent: a second signature for the
	// server to check. It is asked for again whenever the body is rebuilt,
	// that is when the subject token is renewed.
	ActorToken func(Agent) (string, error)
}

// Bodies returns a Config.Body for workers workers. Each worker keeps its own
// body, so the returned function needs no lock.
func (e Exchange) Bodies(workers int) (func(w int) (string, error), error) {
	switch {
	case len(e.Agents) == 0:
		return nil, errors.New("loadgen: exchange needs at least one agent")
	case e.IdP == nil && e.SubjectToken == "":
		return nil, errors.New("loadgen: exchange needs an IdP or a subject token")
	case e.IdP != nil && e.Subject == "":
		return nil, errors.New("loadgen: exchange needs a subject for the IdP to mint tokens for")
	}
	typ := e.SubjectTokenType
	if typ == "" {
		typ = oauth.TokenTypeIDToken
	}
	type cached struct {
		body   string
		minted time.Time
	}
	cache := make([]cached, workers)
	return func(w int) (string, error) {
		c := &cache[w]
		if c.body != "" && (e.IdP == nil || e.IdP.Now().Sub(c.minted) < e.IdP.TTL/2) {
			return c.body, nil
		}
		subject := e.SubjectToken
		if e.IdP != nil {
			var err error
			if subject, err = e.IdP.Token(e.Subject, nil); err != nil {
				return "", fmt.Errorf("subject token: %w", err)
			}
			c.minted = e.IdP.Now()
		}
		a := e.Agents[w%len(e.Agents)]
		form := url.Values{
			"grant_type":         {oauth.GrantTokenExchange},
			"client_id":          {a.ID},
			"client_secret":      {a.Secret},
			"subject_token":      {subject},
			"subject_token_type": {typ},
		}
		setIf(form, "audience", e.Audience)
		setIf(form, "scope", e.Scope)
		if e.ActorToken != nil {
			at, err := e.ActorToken(a)
			if err != nil {
				return "", fmt.Errorf("actor token of %s: %w", a.ID, err)
			}
			form.Set("actor_token", at)
			form.Set("actor_token_type", oauth.TokenTypeAccessToken)
		}
		c.body = form.Encode()
		return c.body, nil
	}, nil
}

// ClientCredentials describes client-credentials requests (RFC 6749 §4.4),
// the baseline: client authentication and one signature, no subject token.
type ClientCredentials struct {
	// Agents are the clients; worker w authenticates as
	// Agents[w%len(Agents)]. Required.
	Agents []Agent
	// Audience and Scope are sent when not empty.
	Audience string
	Scope    string
}

// Bodies returns a Config.Body for workers workers.
func (c ClientCredentials) Bodies(workers int) (func(w int) (string, error), error) {
	if len(c.Agents) == 0 {
		return nil, errors.New("loadgen: client_credentials needs at least one agent")
	}
	bodies := make([]string, workers)
	for w := range bodies {
		a := c.Agents[w%len(c.Agents)]
		form := url.Values{
			"grant_type":    {oauth.GrantClientCredentials},
			"client_id":     {a.ID},
			"client_secret": {a.Secret},
		}
		setIf(form, "audience", c.Audience)
		setIf(form, "scope", c.Scope)
		bodies[w] = form.Encode()
	}
	return func(w int) (string, error) { return bodies[w], nil }, nil
}

func setIf(form url.Values, k, v string) {
	if v != "" {
		form.Set(k, v)
	}
}

// ClientToken asks the token endpoint at tokenURL for agent a's own token
// (client_credentials, no audience, scope when not empty): a token
// addressed to that server, usable as a's actor_token.
func ClientToken(ctx context.Context, tokenURL string, a Agent, scope string) (string, error) {
	form := url.Values{
		"grant_type":    {oauth.GrantClientCredentials},
		"client_id":     {a.ID},
		"client_secret": {a.Secret},
	}
	setIf(form, "scope", scope)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", fmt.Errorf("loadgen: client token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("loadgen: client token: %w", err)
	}
	defer res.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		Error       string `json:"error"`
	}
	if err := json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&body); err != nil {
		return "", fmt.Errorf("loadgen: client token: %s: %w", res.Status, err)
	}
	if res.StatusCode != http.StatusOK || body.AccessToken == "" {
		return "", fmt.Errorf("loadgen: client token: %s %s", res.Status, body.Error)
	}
	return body.AccessToken, nil
}
