package strictjson

import (
	"errors"
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
