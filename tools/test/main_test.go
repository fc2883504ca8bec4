package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRelayCountsSkipsByReason(t *testing.T) {
	stream := strings.Join([]string{
		`{"Action":"run","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"    pg_test.go:12: MANDATE_TEST_POSTGRES_URL not set\n"}`,
		`{"Action":"output","Package":"p","Test":"TestA","Output":"--- SKIP: TestA (0.00s)\n"}`,
		`{"Action":"skip","Package":"p","Test":"TestA"}`,
		`{"Action":"output","Package":"q","Test":"TestB","Output":"    b_test.go:3: MANDATE_TEST_POSTGRES_URL not set\n"}`,
		`{"Action":"skip","Package":"q","Test":"TestB"}`,
		`{"Action":"output","Package":"q","Test":"TestC","Output":"    c_test.go:9: chromium not found\n"}`,
		`{"Action":"skip","Package":"q","Test":"TestC"}`,
		`{"Action":"skip","Package":"r"}`,
		`{"Action":"output","Package":"q","Test":"TestD","Output":"=== RUN   TestD\n"}`,
		`{"Action":"output","Package":"q","Test":"TestD","Output":"    d_test.go:1: quiet when it passes\n"}`,
		`{"Action":"pass","Package":"q","Test":"TestD"}`,
		`{"Action":"output","Package":"q","Test":"TestE","Output":"    e_test.go:2: shown when it fails\n"}`,
		`{"Action":"output","Package":"q","Test":"TestE","Output":"--- FAIL: TestE (0.00s)\n"}`,
		`{"Action":"fail","Package":"q","Test":"TestE"}`,
		`{"Action":"output","Package":"q","Output":"PASS\n"}`,
		`{"Action":"output","Package":"q","Output":"ok  \tq\t0.1s\n"}`,
		`# a build line`,
	}, "\n")
	var out bytes.Buffer
	skips, err := relay(strings.NewReader(stream), &out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ok  \tq", "# a build line", "shown when it fails", "--- FAIL: TestE"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("relayed output lacks %q:\n%s", want, out.String())
		}
	}
	for _, unwanted := range []string{"quiet when it passes", "=== RUN", "PASS\n", "--- SKIP"} {
		if strings.Contains(out.String(), unwanted) {
			t.Errorf("relayed output has %q, which go test shows only with -v:\n%s", unwanted, out.String())
		}
	}
	got := summary(skips)
	want := "skipped 3 tests: 2 × MANDATE_TEST_POSTGRES_URL not set; 1 × chromium not found"
	if got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
}

func TestSummaryWithoutSkips(t *testing.T) {
	if got := summary(map[string]int{}); got != "skipped: nothing" {
		t.Errorf("summary = %q", got)
	}
}

func TestReason(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"    x_test.go:4: no database\n", "no database"},
		{"", "no reason given"},
		{"    x.go:1: " + strings.Repeat("a", 200), strings.Repeat("a", 157) + "..."},
	} {
		if got := reason(tc.line); got != tc.want {
			t.Errorf("reason(%q) = %q, want %q", tc.line, got, tc.want)
		}
	}
}
