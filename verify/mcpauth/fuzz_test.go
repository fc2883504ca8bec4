package mcpauth

import (
	"bytes"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdkjson "github.com/segmentio/encoding/json"
)

// FuzzReadMessageAgreesWithSDK: whenever the Handler reads a body as one
// unambiguous message, the official Go SDK's decoder (its jsonrpc package,
// and for the tool's name the case-sensitive decoder it uses for params)
// reads the same method and the same tool. A body on which they differ
// would let the Handler check and record one tool while the SDK runs
// another.
func FuzzReadMessageAgreesWithSDK(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deploy","arguments":{}}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deploy","Name":"metrics"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","Method":"tools/list","params":{"name":"deploy"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"de\u0070loy"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"deploy"}} {}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, ok, ambiguous := readMessage(raw)
		if !ok || ambiguous {
			return
		}
		msg, err := jsonrpc.DecodeMessage(raw)
		if err != nil {
			return // the SDK refuses what it cannot read
		}
		req, isReq := msg.(*jsonrpc.Request)
		if !isReq {
			return
		}
		if req.Method != m.method {
			t.Fatalf("method: the Handler reads %q, the SDK %q, in %q", m.method, req.Method, raw)
		}
		if m.method != MethodCallTool || len(req.Params) == 0 {
			return
		}
		var p struct {
			Name string `json:"name"`
		}
		dec := sdkjson.NewDecoder(bytes.NewReader(req.Params))
		dec.DontMatchCaseInsensitiveStructFields()
		if dec.Decode(&p) != nil {
			return
		}
		if p.Name != m.tool {
			t.Fatalf("tool: the Handler reads %q, the SDK %q, in %q", m.tool, p.Name, raw)
		}
	})
}
