package jwt_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/mandate-dev/mandate/jwks"
	"github.com/mandate-dev/mandate/jwt"
)

// wycheproofModule is the module holding the vectors; its version is the
// one go.mod requires.
const wycheproofModule = "github.com/c2sp/wycheproof"

// wycheproofDir finds testvectors_v1 in the module cache, downloading the
// module (the version go.mod requires) from the module proxy when it is not
// there yet, as on a fresh machine; it skips only when neither works.
func wycheproofDir(t *testing.T) string {
	t.Helper()
	var mod struct{ Dir string }
	out, err := exec.Command("go", "list", "-m", "-json", wycheproofModule).Output()
	if err == nil {
		err = json.Unmarshal(out, &mod)
	}
	if err != nil || mod.Dir == "" {
		out, err = exec.Command("go", "mod", "download", "-json", wycheproofModule).Output()
		if err == nil {
			err = json.Unmarshal(out, &mod)
		}
	}
	if err != nil || mod.Dir == "" {
		t.Skipf("Wycheproof vectors unavailable (go mod download %s: %v)", wycheproofModule, err)
	}
	return filepath.Join(mod.Dir, "testvectors_v1")
}

// wycheproofFile is the part of a JSON Web vector file that we read.
type wycheproofFile struct {
	TestGroups []struct {
		Comment string          `json:"comment"`
		Public  json.RawMessage `json:"public"`
		Private json.RawMessage `json:"private"`
		Tests   []struct {
			TcID    int             `json:"tcId"`
			Comment string          `json:"comment"`
			JWS     json.RawMessage `json:"jws"`
			JWE     json.RawMessage `json:"jwe"`
			Result  string          `json:"result"`
		} `json:"tests"`
	} `json:"testGroups"`
}

// allAlgorithms is every asymmetric algorithm; each key still pins its own.
var allAlgorithms = []string{"EdDSA", "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}

// keySet turns a group's key material into what a verifier would hold: the
// public JWK (or the public halves of a private key set) through
// jwks.ParseSet, which refuses sets with symmetric keys or duplicate kids
// and skips keys that cannot verify. A nil set means no key at all.
func keySet(public, private json.RawMessage) (jwks.Static, error) {
	var keys []map[string]any
	pick := public
	if len(pick) == 0 {
		pick = private
	}
	if len(pick) == 0 {
		return nil, nil
	}
	var one map[string]any
	if err := json.Unmarshal(pick, &one); err != nil {
		return nil, err
	}
	if list, ok := one["keys"].([]any); ok {
		for _, k := range list {
			keys = append(keys, k.(map[string]any))
		}
	} else {
		keys = []map[string]any{one}
	}
	for _, k := range keys {
		if k["kty"] != "oct" { // a symmetric key stays whole: ParseSet must refuse it
			for _, m := range []string{"d", "p", "q", "dp", "dq", "qi", "oth"} {
				delete(k, m)
			}
		}
	}
	data, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		return nil, err
	}
	return jwks.ParseSet(data)
}

// accepts reports whether the gate accepts jws under set: the structural
// gate, the key by kid, the algorithm the key pins, the signature. The
// payload is not read: these vectors are JWS, not JWTs.
func accepts(set jwks.Static, compact string) bool {
	j, err := jwt.ParseJWS(compact)
	if err != nil {
		return false
	}
	key, ok := set[j.Header.KeyID]
	if !ok {
		return false
	}
	return j.VerifySignature(key, jwt.AlgorithmsFor(key, allAlgorithms)) == nil
}

// disagreement is a vector whose expected result we deliberately do not
// give, and why.
// With jwe and no tcIDs it covers every valid JWE vector of the file.
type disagreement struct {
	file   string
	tcIDs  []int
	jwe    bool
	reason string
}

// wycheproofDisagreements lists every vector where Mandate's answer differs
// from Wycheproof's, and why. Every one is a vector Wycheproof calls valid
// that Mandate refuses: nothing Wycheproof says to refuse is accepted.
var wycheproofDisagreements = []disagreement{
	{file: "json_web_signature_test.json", tcIDs: []int{1, 348, 352, 357, 358, 359, 376, 377},
		reason: "HMAC (HS256) is never accepted: Mandate's tokens are signed with asymmetric keys, and a verifier holding a shared secret could mint tokens (DESIGN.md \"Never\", RFC 8725 §3.1)"},
	{file: "json_web_signature_test.json", tcIDs: []int{372, 373},
		reason: "a character outside the base64url alphabet is refused by the byte scan before anything is decoded (THREATS.md T06), whatever the key; Wycheproof tolerates decoders that skip it (and these are HMAC vectors too)"},
	{file: "json_web_signature_test.json", tcIDs: []int{259, 264, 268, 272, 320, 325},
		reason: "an empty payload segment is refused: a JWT's payload is a JSON object, and empty segments are refused structurally (THREATS.md T06)"},
	{file: "json_web_signature_test.json", tcIDs: []int{346, 350},
		reason: "the key's \"alg\" (PS256) pins the algorithm and the header says PS384; the algorithm comes from the key, never the header (RFC 7517 §4.4, RFC 8725 §3.1, THREATS.md T03)"},
	{file: "json_web_signature_test.json", tcIDs: []int{347, 351},
		reason: "the key's \"alg\" is \"ES521\" (RFC 7520's typo for ES512), which names no algorithm, so the key verifies nothing: a key's alg is binding"},
	{file: "json_web_key_test.json", tcIDs: []int{2, 13, 14, 15},
		reason: "HMAC keys are never accepted (see above); a key set holding symmetric keys is refused whole by jwks.ParseSet"},
	{file: "json_web_crypto_test.json", tcIDs: []int{1, 48},
		reason: "HMAC keys are never accepted (see above)"},
	{file: "json_web_crypto_test.json", tcIDs: []int{50, 67}, jwe: true,
		reason: "JWE is refused by the gate, with no decrypt attempted (THREATS.md T13): Mandate's tokens are signed, never encrypted"},
	{file: "json_web_encryption_test.json", jwe: true,
		reason: "every JWE is refused by the gate, with no decrypt attempted (THREATS.md T13): Mandate's tokens are signed, never encrypted"},
}

func TestWycheproof(t *testing.T) {
	dir := wycheproofDir(t)
	listed := map[string]string{}
	allJWE := map[string]string{}
	for _, d := range wycheproofDisagreements {
		if d.jwe && len(d.tcIDs) == 0 {
			allJWE[d.file] = d.reason
		}
		for _, id := range d.tcIDs {
			listed[d.file+"#"+itoa(id)] = d.reason
		}
	}
	seen := map[string]bool{}
	for _, name := range []string{"json_web_signature_test.json", "json_web_key_test.json", "json_web_crypto_test.json", "json_web_encryption_test.json"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		var f wycheproofFile
		if err := json.NewDecoder(bytes.NewReader(data)).Decode(&f); err != nil {
			t.Fatalf("decode %s: %v", name, err)
		}
		ran := 0
		for _, g := range f.TestGroups {
			set, setErr := keySet(g.Public, g.Private)
			for _, tc := range g.Tests {
				input := vectorInput(tc.JWS)
				if tc.JWS == nil {
					input = vectorInput(tc.JWE) // every JWE must be refused: no decrypt path exists
				}
				got := setErr == nil && accepts(set, input)
				want := tc.Result == "valid" || tc.Result == "acceptable" && got
				id := name + "#" + itoa(tc.TcID)
				reason, isListed := listed[id]
				if r, ok := allJWE[name]; ok && tc.JWE != nil && tc.Result == "valid" {
					reason, isListed = r, true
				}
				seen[id] = true
				ran++
				switch {
				case got == want && isListed:
					t.Errorf("%s (%s/%s) now agrees with Wycheproof; drop it from the list (%s)", id, g.Comment, tc.Comment, reason)
				case got != want && !isListed:
					t.Errorf("%s (%s/%s): accepted = %v, Wycheproof says %s", id, g.Comment, tc.Comment, got, tc.Result)
				case got && tc.Result == "invalid":
					t.Errorf("%s (%s/%s): accepted an invalid vector", id, g.Comment, tc.Comment)
				}
			}
		}
		t.Logf("%s: %d vectors", name, ran)
	}
	for id := range listed {
		if !seen[id] {
			t.Errorf("listed disagreement %s is not a vector", id)
		}
	}
}

// vectorInput is a vector's token: the compact string, or the JSON
// serialization as its text (which the gate must refuse).
func vectorInput(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

func itoa(n int) string { return strconv.Itoa(n) }
