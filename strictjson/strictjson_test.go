package strictjson

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr error
	}{
		{name: "ok/object", in: `{"sub":"alice","exp":1722000600,"aud":["a","b"],"act":{"sub":"x"}}`},
		{name: "ok/same-name-different-objects", in: `{"a":{"x":1},"b":{"x":2}}`},
		{name: "ok/escaped-quote-in-string", in: `{"a":"{\"[["}`},
		{name: "fail/duplicate", in: `{"sub":"alice","sub":"admin"}`, wantErr: ErrDuplicateMember},
		{name: "fail/case-variant", in: `{"sub":"alice","SUB":"admin"}`, wantErr: ErrDuplicateMember},
		{name: "fail/nested-duplicate", in: `{"act":{"sub":"a","Sub":"b"}}`, wantErr: ErrDuplicateMember},
		{name: "fail/invalid-utf8", in: "{\"sub\":\"\xff\"}", wantErr: ErrInvalid},
		{name: "fail/lone-surrogate", in: `{"sub":"\ud800"}`, wantErr: ErrInvalid},
		{name: "fail/bom", in: "\ufeff{}", wantErr: ErrInvalid},
		{name: "fail/exp-1e400", in: `{"exp":1e400}`, wantErr: ErrInvalid},
		{name: "fail/trailing", in: `{} {}`, wantErr: ErrInvalid},
		{name: "fail/truncated", in: `{"a":`, wantErr: ErrInvalid},
		{name: "fail/deep", in: strings.Repeat("[", 100000) + strings.Repeat("]", 100000), wantErr: ErrTooDeep},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Check([]byte(tc.in), 0)
			if tc.wantErr == nil && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":"b","A":"c"}`, `[[[]]]`, `{"x":"\ud83d\ude00"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = Check(data, 8)
	})
}

// FuzzCheckAgreesWithDecoder compares Check with a slow reference built on
// json.Decoder tokens: both must accept and refuse the same documents.
func FuzzCheckAgreesWithDecoder(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":"b","A":"c"}`, `[{"x":1},{"x":2}]`, `{"\u0041":1,"a":2}`, `{"e":1e400}`, `{"s":"\ud800"}`, `{"k":{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"q":17,"A":18}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := Check(data, 8) == nil
		want := referenceCheck(data, 8) == nil
		if got != want {
			t.Fatalf("Check accepts=%v, reference accepts=%v for %q", got, want, data)
		}
	})
}

func TestLargeObjectIsLinear(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	for i := range 10000 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"m%d":%d`, i, i)
	}
	b.WriteString(`,"M5000":1}`)
	if err := Check([]byte(b.String()), 0); !errors.Is(err, ErrDuplicateMember) {
		t.Fatalf("err = %v", err)
	}
}

func BenchmarkCheck(b *testing.B) {
	payload := []byte(`{"iss":"https://idp.example","sub":"user:sam","aud":"mandate","iat":1722000000,"exp":1722000600,"jti":"abc","act":{"sub":"agent:infrabot","act":{"sub":"agent:argocd"}},"scope":"monitoring:read deploy:create","context":{"environment":"prod","trigger":"ci_pipeline"}}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := Check(payload, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// TestMemberErrorNamesTheMember: a repeated member is reported as a
// *MemberError naming the second occurrence as sent (unescaped), so that a
// caller can tell its client which member to fix.
func TestMemberErrorNamesTheMember(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "fail/duplicate", in: `{"sub":"alice","sub":"admin"}`, want: "sub"},
		{name: "fail/case-variant", in: `{"sub":"alice","SUB":"admin"}`, want: "SUB"},
		{name: "fail/escaped", in: `{"a":1,"\u0041":2}`, want: "A"},
		{name: "fail/nested-large-object", in: `{"o":{` + manyMembers(20) + `,"M3":0}}`, want: "M3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Check([]byte(tc.in), 0)
			var me *MemberError
			if !errors.As(err, &me) || !errors.Is(err, ErrDuplicateMember) {
				t.Fatalf("err = %v, want a *MemberError wrapping ErrDuplicateMember", err)
			}
			if me.Name != tc.want {
				t.Errorf("Name = %q, want %q", me.Name, tc.want)
			}
		})
	}
}

// manyMembers is n members "m0" to "m<n-1>", comma-separated.
func manyMembers(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(`"m%d":%d`, i, i)
	}
	return strings.Join(parts, ",")
}
