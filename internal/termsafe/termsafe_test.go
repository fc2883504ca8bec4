package termsafe_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/mandate-dev/mandate/internal/termsafe"
)

func TestString(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{name: "ok/plain", in: "agent:infrabot", want: "agent:infrabot"},
		{name: "ok/spaces-and-punctuation", in: `a b=c "d" 'e' <f>`, want: `a b=c "d" 'e' <f>`},
		{name: "ok/letters-of-any-script", in: "Zoë 東京 Ωmega café", want: "Zoë 東京 Ωmega café"},
		{name: "ok/emoji", in: "deploy 🚀", want: "deploy 🚀"},
		{name: "ok/empty", in: "", want: ""},
		{name: "escape/backslash-doubled", in: `a\nb`, want: `a\\nb`},
		{name: "escape/newline", in: "x\ny", want: `x\ny`},
		{name: "escape/carriage-return", in: "x\ry", want: `x\ry`},
		{name: "escape/tab", in: "x\ty", want: `x\ty`},
		{name: "escape/nul", in: "x\x00y", want: `x\x00y`},
		{name: "escape/ansi-clear-screen", in: "\x1b[2J\x1b[31mred", want: `\x1b[2J\x1b[31mred`},
		{name: "escape/osc-title-bel", in: "\x1b]0;pwned\x07", want: `\x1b]0;pwned\x07`},
		{name: "escape/del", in: "a\x7fb", want: `a\x7fb`},
		{name: "escape/c1-csi", in: "a\u009b2Jb", want: `a\u009b2Jb`},
		{name: "escape/c1-nel", in: "a\u0085b", want: `a\u0085b`},
		{name: "escape/bidi-override", in: "exe.\u202etxt", want: `exe.\u202etxt`},
		{name: "escape/bidi-embeddings", in: "\u202a\u202b\u202c\u202d", want: `\u202a\u202b\u202c\u202d`},
		{name: "escape/bidi-isolates", in: "\u2066\u2067\u2068\u2069", want: `\u2066\u2067\u2068\u2069`},
		{name: "escape/bidi-marks", in: "\u200e\u200f\u061c", want: `\u200e\u200f\u061c`},
		{name: "escape/zero-width-space", in: "agent:infra\u200bbot", want: `agent:infra\u200bbot`},
		{name: "escape/bom", in: "\ufeffx", want: `\ufeffx`},
		{name: "escape/line-separator", in: "a\u2028b\u2029c", want: `a\u2028b\u2029c`},
		{name: "escape/tag-characters", in: "a\U000e0041", want: `a\U000e0041`},
		{name: "escape/private-use", in: "\ue000", want: `\ue000`},
		{name: "escape/invalid-utf8", in: "a\xffb\xc3", want: `a\xffb\xc3`},
		{name: "escape/escaped-text-is-not-confused", in: `\x1b`, want: `\\x1b`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := termsafe.String(tc.in)
			if got != tc.want {
				t.Errorf("String(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if back, err := unescape(got); err != nil || back != tc.in {
				t.Errorf("unescape(%q) = %q, %v; want %q", got, back, err, tc.in)
			}
		})
	}
}

func TestJSON(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{name: "ok/plain", in: `{"amount":"487.50"}`, want: `{"amount":"487.50"}`},
		{name: "ok/compacted", in: "{\n  \"a\": [1, 2]\n}", want: `{"a":[1,2]}`},
		{name: "ok/json-escapes-kept", in: `{"a":"x\ny\r\u0000\u001b\\"}`, want: `{"a":"x\ny\r\u0000\u001b\\"}`},
		{name: "escape/raw-bidi-in-string", in: "{\"a\":\"x\u202ey\"}", want: `{"a":"x\u202ey"}`},
		{name: "escape/raw-c1-and-del", in: "{\"a\":\"\u0085\x7f\"}", want: `{"a":"\u0085\u007f"}`},
		{name: "escape/astral-format-as-surrogates", in: "{\"a\":\"\U000e0041\"}", want: `{"a":"\udb40\udc41"}`},
		{name: "fallback/not-json", in: "not json\n\x1b", want: `not json\n\x1b`},
		{name: "fallback/invalid-utf8", in: "{\"a\":\"\xff\"}", want: `{"a":"\xff"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := termsafe.JSON([]byte(tc.in)); got != tc.want {
				t.Errorf("JSON(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestJSONLogWriter: a record of slog's JSON handler written through
// NewJSONLogWriter is one line of valid JSON, with no raw control, bidi or
// other invisible rune, whose values decode exactly as logged; slog's text
// handler quotes such values by itself.
func TestJSONLogWriter(t *testing.T) {
	hostile := "x\n{\"level\":\"INFO\",\"msg\":\"forged\"}\r\x00\x1b[2J\x7f\u0085\u202e\u2066\u200b\U000e0041\\"
	for _, tc := range []struct {
		name   string
		logger func(*bytes.Buffer) *slog.Logger
		decode bool
	}{
		{name: "json-handler", decode: true, logger: func(b *bytes.Buffer) *slog.Logger {
			return slog.New(slog.NewJSONHandler(termsafe.NewJSONLogWriter(b), nil))
		}},
		{name: "text-handler", logger: func(b *bytes.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := tc.logger(&buf)
			l.Info("request", slog.String("path", hostile), slog.Any("error", errors.New(hostile)),
				slog.Any("chain", []string{hostile}), slog.Group("g", slog.String("v", hostile)))
			l.Info("next")
			out := buf.String()
			if n := strings.Count(out, "\n"); n != 2 || !strings.HasSuffix(out, "\n") {
				t.Fatalf("%d lines for 2 records:\n%s", n, out)
			}
			if bad := nonGraphic(strings.ReplaceAll(out, "\n", "")); len(bad) > 0 {
				t.Errorf("raw runes in the log: %q\n%s", bad, out)
			}
			if !tc.decode {
				return
			}
			var rec struct {
				Path  string   `json:"path"`
				Error string   `json:"error"`
				Chain []string `json:"chain"`
				G     struct {
					V string `json:"v"`
				} `json:"g"`
			}
			if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &rec); err != nil {
				t.Fatal(err)
			}
			if rec.Path != hostile || rec.Error != hostile || len(rec.Chain) != 1 || rec.Chain[0] != hostile || rec.G.V != hostile {
				t.Errorf("the values do not decode as logged: %+v", rec)
			}
		})
	}
}

// nonGraphic lists the runes of s other than graphic ones and the space,
// and its invalid UTF-8.
func nonGraphic(s string) []string {
	var bad []string
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size == 1 {
				bad = append(bad, "invalid UTF-8")
				continue
			}
		}
		if r != ' ' && !unicode.IsGraphic(r) {
			bad = append(bad, strconv.QuoteRune(r))
		}
	}
	return bad
}

// unescape reads String's output back.
func unescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 >= len(s) {
			return "", errors.New("a lone backslash at the end")
		}
		switch s[i+1] {
		case '\\':
			b.WriteByte('\\')
			i += 2
			continue
		case 'n':
			b.WriteByte('\n')
			i += 2
			continue
		case 'r':
			b.WriteByte('\r')
			i += 2
			continue
		case 't':
			b.WriteByte('\t')
			i += 2
			continue
		}
		digits := map[byte]int{'x': 2, 'u': 4, 'U': 8}[s[i+1]]
		if digits == 0 || i+2+digits > len(s) {
			return "", errors.New("an unknown or short escape")
		}
		hex := s[i+2 : i+2+digits]
		if strings.ToLower(hex) != hex {
			return "", errors.New("upper-case hex")
		}
		v, err := strconv.ParseUint(hex, 16, 32)
		if err != nil {
			return "", err
		}
		if s[i+1] == 'x' {
			b.WriteByte(byte(v))
		} else {
			b.WriteRune(rune(v))
		}
		i += 2 + digits
	}
	return b.String(), nil
}

// FuzzString: String's output is valid UTF-8 of graphic runes and spaces
// only (nothing a terminal acts on, nothing invisible), it reads back to
// the input (so distinct inputs never look the same), and text that needs
// no escape is unchanged.
func FuzzString(f *testing.F) {
	for _, s := range []string{"", "agent:infrabot", "x\n2099-01-01 granted", "\x1b[2J", "\u202e", `\x1b`, "\xff\xfe", "\\", "a\x00\r\t\u0085\u2028\U000e0041"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := termsafe.String(s)
		if !utf8.ValidString(got) {
			t.Fatalf("String(%q) = %q: not UTF-8", s, got)
		}
		if bad := nonGraphic(got); len(bad) > 0 {
			t.Fatalf("String(%q) = %q holds %q", s, got, bad)
		}
		back, err := unescape(got)
		if err != nil || back != s {
			t.Fatalf("String(%q) = %q reads back as %q, %v", s, got, back, err)
		}
		if !strings.Contains(s, `\`) && len(nonGraphic(s)) == 0 && got != s {
			t.Fatalf("String(%q) = %q: changed text that needs no escape", s, got)
		}
	})
}

// FuzzJSON: JSON's output holds no raw control or invisible rune, and for
// a valid document it is JSON that decodes to the same value.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{`{"a":"b"}`, "{\"a\":\"\u202e\x7f\"}", `[1,"\u0000",{"k":null}]`, "not json\x1b", "{\"a\":\"\U000e0041\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		got := termsafe.JSON(doc)
		if bad := nonGraphic(got); len(bad) > 0 {
			t.Fatalf("JSON(%q) = %q holds %q", doc, got, bad)
		}
		var want, back any
		if !utf8.Valid(doc) || json.Unmarshal(doc, &want) != nil {
			return
		}
		if err := json.Unmarshal([]byte(got), &back); err != nil || !reflect.DeepEqual(back, want) {
			t.Fatalf("JSON(%q) = %q decodes to %v, %v; want %v", doc, got, back, err, want)
		}
	})
}
