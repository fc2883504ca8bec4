package jwt

import "testing"

func TestStringsInto(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    [3]string
		wantErr bool
	}{
		{name: "ok/plain", payload: `{"sub":"user:sam","jti":"j1","client_id":"agent:a"}`, want: [3]string{"user:sam", "j1", "agent:a"}},
		{name: "ok/absent", payload: `{"sub":"user:sam"}`, want: [3]string{"user:sam", "", ""}},
		{name: "ok/escaped", payload: `{"sub":"user:s\u0061m","jti":"j1","client_id":"agent:a"}`, want: [3]string{"user:sam", "j1", "agent:a"}},
		{name: "fail/not-a-string", payload: `{"sub":"user:sam","jti":7}`, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := indexClaims([]byte(tc.payload))
			if !ok {
				t.Fatal("not a claims object")
			}
			var got [3]string
			err := c.StringsInto([]string{"sub", "jti", "client_id"}, got[:])
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if err == nil && got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
