package agent_test

import (
	"context"
	"fmt"
	"net/http"

	"github.com/mandate-dev/mandate/agent"
)

// An agent holds a token on behalf of the person whose token it was given,
// for one service, with the scopes the task needs. The Transport exchanges
// and renews it by itself.
func ExampleClient_Transport() {
	c, err := agent.New(agent.Config{
		TokenURL:     "https://mandate.example/token",
		ClientID:     "agent:infrabot",
		ClientSecret: "from-your-secret-store",
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The token goes to https://deploy.example only: not to another
	// host, port or scheme, even when the API redirects there.
	rt, err := c.Transport(nil, agent.Request{
		SubjectToken:     "the person's token",
		SubjectTokenType: agent.TokenTypeAccessToken,
		Audience:         "https://deploy.example",
		Scopes:           []string{"deploy:create"},
		Context:          map[string]any{"environment": "prod", "trigger": "ci_pipeline"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	deployAPI := &http.Client{Transport: rt}
	_ = deployAPI // deployAPI.Post("https://deploy.example/deployments", ...)
	fmt.Println("ready")
	// Output: ready
}

// Exchange returns the token itself, cached until shortly before it expires.
func ExampleClient_Exchange() {
	c, _ := agent.New(agent.Config{TokenURL: "https://mandate.example/token", ClientID: "agent:infrabot", ClientSecret: "s"})
	_, err := c.Exchange(context.Background(), agent.Request{})
	fmt.Println(err)
	// Output: agent: SubjectToken is required
}
