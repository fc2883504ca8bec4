package server_test

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Sizes of the fixed-seed run.
const (
	modelSeed          = 0x6d616e6461746521
	modelWorlds        = 50
	modelWorldsShort   = 8
	modelOpsPerWorld   = 400
	modelWorkers       = 8
	modelShrinkBudget  = 45 * time.Second
	modelShrinkFailure = 4 // kinds of disagreement shrunk per run
)

// TestDelegationModel runs random worlds and operation sequences on real
// servers and checks every answer against the reference model of the
// delegation rules (model_rule_test.go, and model_consent_test.go for what
// people approve on the consent page, the codes and refresh tokens): grant
// or refusal and its error code, the claims of every token minted and
// every bound on its path, and
// after each revocation or change which tokens are still in force, at the
// server and at a verifier following the revocation feed.
//
// The seed is fixed; MANDATE_MODEL_SEED and MANDATE_MODEL_WORLDS (and
// MANDATE_MODEL_OPS) explore others. A disagreement is reported with its
// world, shrunk to the shortest sequence that still shows it, printed as
// a regression test.
func TestDelegationModel(t *testing.T) {
	seed := uint64(modelSeed)
	worlds, ops := modelWorlds, modelOpsPerWorld
	if testing.Short() {
		worlds = modelWorldsShort
	}
	if s, err := strconv.ParseUint(os.Getenv("MANDATE_MODEL_SEED"), 0, 64); err == nil {
		seed = s
	}
	if n, err := strconv.Atoi(os.Getenv("MANDATE_MODEL_WORLDS")); err == nil && n > 0 {
		worlds = n
	}
	if n, err := strconv.Atoi(os.Getenv("MANDATE_MODEL_OPS")); err == nil && n > 0 {
		ops = n
	}
	stats := make([]modelStats, worlds)
	var mu sync.Mutex
	var sigs []string // kinds of disagreement seen, in order
	start := time.Now()
	jobs := make(chan int)
	var wg sync.WaitGroup
	// Worlds run side by side in subtests started from several
	// goroutines: a server spends much of a request waiting for SQLite
	// to sync, so more worlds than cores keep the cores busy.
	for range modelWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range jobs {
				c := genModelCase(rand.New(rand.NewPCG(seed, uint64(k))), ops)
				name := fmt.Sprintf("world-%03d", k)
				t.Run(name, func(t *testing.T) {
					d, st := runModelCase(t, c)
					stats[k] = st
					if d == nil {
						return
					}
					// The first world to show a kind of disagreement
					// shrinks it (the first few kinds); the others say
					// what they saw.
					mu.Lock()
					fresh := !slices.Contains(sigs, d.Sig)
					if fresh {
						sigs = append(sigs, d.Sig)
					}
					shrink := fresh && len(sigs) <= modelShrinkFailure
					mu.Unlock()
					if !shrink {
						t.Errorf("the server and the model disagree: %s\n%s", d.Sig, d.Text)
						return
					}
					shrunk, sd, replays := shrinkModelCase(t, c, d, modelShrinkBudget)
					where := fmt.Sprintf("seed %#x, %s (rerun: MANDATE_MODEL_SEED=%#x go test -run 'TestDelegationModel/%s$' ./internal/server)", seed, name, seed, name)
					t.Error(modelReport(where, d, shrunk, sd, replays))
				})
			}
		}()
	}
	for k := range worlds {
		jobs <- k
	}
	close(jobs)
	wg.Wait()

	var total modelStats
	run := 0
	for _, st := range stats {
		total.add(st)
		if st.Ops > 0 {
			run++
		}
	}
	t.Logf("delegation model: seed %#x, %d worlds, %v; in %v", seed, run, total, time.Since(start).Round(time.Millisecond))
	if len(sigs) > 0 {
		t.Errorf("delegation model: %d kinds of disagreement: %s", len(sigs), strings.Join(sigs, "; "))
	}
}

// FuzzDelegationModel draws a world and 20 to 83 operations from the
// input bytes (a fresh server each) and checks them like
// TestDelegationModel.
func FuzzDelegationModel(f *testing.F) {
	for _, seed := range modelFuzzSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := genModelFuzzCase(data)
		d, _ := runModelCase(t, c)
		if d == nil {
			return
		}
		shrunk, sd, replays := shrinkModelCase(t, c, d, 20*time.Second)
		t.Fatal(modelReport(fmt.Sprintf("fuzz input %q", data), d, shrunk, sd, replays))
	})
}

// modelFuzzSeeds are FuzzDelegationModel's seed inputs; between them
// they reach every kind of operation (TestModelFuzzSeedsReachEveryOp).
func modelFuzzSeeds() [][]byte {
	return [][]byte{
		[]byte("mandate"),
		{0x2a, 0, 0xff, 0x10, 0x80, 0x33, 0x01, 0xc4, 0x7e, 0x55, 0x99, 0x02},
		[]byte("a chain hop by an agent that holds its own delegation"),
		[]byte("?a person approves an agent, which redeems the code and refreshes"),
	}
}

// genModelFuzzCase draws a world and 20 to 83 operations from data.
func genModelFuzzCase(data []byte) modelCase {
	h := fnv.New64a()
	h.Write(data)
	src := &modelByteSource{data: data, rest: rand.NewPCG(h.Sum64(), 0)}
	n := 20
	if len(data) > 0 {
		n += int(data[0]) % 64
	}
	return genModelCase(rand.New(src), n)
}

// TestModelFuzzSeedsReachEveryOp: the fuzzer starts from inputs that draw
// every kind of operation, the consent page's among them.
func TestModelFuzzSeedsReachEveryOp(t *testing.T) {
	seen := map[string]bool{}
	for _, seed := range modelFuzzSeeds() {
		for _, op := range genModelFuzzCase(seed).Ops {
			seen[op.Kind] = true
		}
	}
	for _, kind := range []string{opSignIn, opIdP, opCC, opExchange, opApprove, opRedeem, opRefresh, opRevokeSubject, opSetPermissions, opDisable} {
		if !seen[kind] {
			t.Errorf("no seed of FuzzDelegationModel draws %s", kind)
		}
	}
}

// modelByteSource is a rand.Source that reads the fuzz input first, so
// that the fuzzer's mutations steer the choices, then goes on with rest.
type modelByteSource struct {
	data []byte
	rest rand.Source
}

func (s *modelByteSource) Uint64() uint64 {
	if len(s.data) == 0 {
		return s.rest.Uint64()
	}
	var b [8]byte
	n := copy(b[:], s.data)
	s.data = s.data[n:]
	return binary.LittleEndian.Uint64(b[:]) ^ s.rest.Uint64()>>(8*n)
}
