// Package agent is what an agent builder imports to hold delegated tokens:
// an RFC 8693 token-exchange client that authenticates the agent
// (client_secret_post or private_key_jwt, RFC 7523), exchanges a person's
// token for one the agent holds on their behalf for a given audience and
// scopes, caches the result until shortly before it expires (at most
// Config.CacheSize tokens, the least recently used leaving first), and plugs
// into http.Client as a Transport.
//
//	c, _ := agent.New(agent.Config{TokenURL: "https://mandate.example/token",
//		ClientID: "agent:infrabot", ClientSecret: secret})
//	rt, err := c.Transport(nil, agent.Request{
//		SubjectToken: samToken, SubjectTokenType: agent.TokenTypeAccessToken,
//		Audience: "https://deploy.example", Scopes: []string{"deploy:create"}})
//	httpClient := &http.Client{Transport: rt}
//
// The delegated token goes to the audience's origin (scheme, host and
// port) and nowhere else: not to where the API redirects, and not to where
// the token endpoint redirects, which is never followed. Plain http is
// allowed to loopback hosts only.
package agent
