// Package agent is what an agent builder imports to hold delegated tokens:
// an RFC 8693 token-exchange client that authenticates the agent
// (client_secret_post or private_key_jwt, RFC 7523), exchanges a person's
// token for one the agent holds on their behalf for a given audience and
// scopes, caches the result until shortly before it expires, and plugs
// into http.Client as a Transport.
//
//	c, _ := agent.New(agent.Config{TokenURL: "https://mandate.example/token",
//		ClientID: "agent:infrabot", ClientSecret: secret})
//	httpClient := &http.Client{Transport: c.Transport(nil, agent.Request{
//		SubjectToken: samToken, SubjectTokenType: agent.TokenTypeAccessToken,
//		Audience: "https://deploy.example", Scopes: []string{"deploy:create"}})}
package agent
