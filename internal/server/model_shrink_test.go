package server_test

// Shrinking a disagreement of the delegation model to a short sequence,
// and printing it as Go that a named regression test can hold.

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// shrinkModelCase drops operations (halves, then smaller runs, then one
// at a time), then policies and delegations of the world, as long as a
// replay on a fresh server still disagrees with the same Sig; it stops
// at budget and returns the smallest case found, its disagreement and
// the number of replays.
func shrinkModelCase(t *testing.T, c modelCase, d *modelDisagreement, budget time.Duration) (modelCase, *modelDisagreement, int) {
	deadline := time.Now().Add(budget)
	best, bestD := c, d
	best.Ops = slices.Clone(c.Ops[:d.Op+1])
	replays := 0
	try := func(cand modelCase) bool {
		if time.Now().After(deadline) {
			return false
		}
		replays++
		var got *modelDisagreement
		t.Run(fmt.Sprintf("replay-%03d", replays), func(t *testing.T) { got, _ = runModelCase(t, cand) })
		if got == nil || got.Sig != bestD.Sig {
			return false
		}
		cand.Ops = cand.Ops[:got.Op+1]
		best, bestD = cand, got
		return true
	}
	// First the slice of what the failing operation names (the tokens
	// and delegations it was made from, transitively), with and then
	// without the changes made in between; then halves and smaller runs.
	slice := modelSlice(best.Ops)
	for _, keepChanges := range []bool{true, false} {
		cand := best
		cand.Ops = nil
		for i, op := range best.Ops {
			mints := slices.Contains([]string{opSignIn, opIdP, opCC, opExchange, opApprove, opRedeem, opRefresh}, op.Kind)
			if slice[i] || keepChanges && !mints {
				cand.Ops = append(cand.Ops, op)
			}
		}
		if len(cand.Ops) < len(best.Ops) {
			try(cand)
		}
	}
	for chunk := len(best.Ops) / 2; chunk >= 1 && time.Now().Before(deadline); chunk /= 2 {
		for i := 0; i < len(best.Ops) && time.Now().Before(deadline); {
			cand := best
			cand.Ops = slices.Concat(best.Ops[:i], best.Ops[min(i+chunk, len(best.Ops)):])
			if !try(cand) {
				i += chunk
			}
		}
	}
	for i := len(best.World.Policies) - 1; i >= 0; i-- {
		cand := best
		cand.World.Policies = slices.Clip(slices.Delete(slices.Clone(best.World.Policies), i, i+1))
		if len(cand.World.Policies) == 0 {
			cand.World.Policies = nil
		}
		try(cand)
	}
	for i := len(best.World.Delegations) - 1; i >= 0; i-- {
		cand := best
		cand.World.Delegations = slices.Delete(slices.Clone(best.World.Delegations), i, i+1)
		if len(cand.World.Delegations) == 0 {
			cand.World.Delegations = nil
		}
		try(cand)
	}
	for i := len(best.World.People) - 1; i >= 0; i-- {
		cand := best
		cand.World.People = slices.Clone(best.World.People)
		if p := cand.World.People[i]; !modelMentions(cand, p.ID) {
			cand.World.People = slices.Delete(cand.World.People, i, i+1)
			if len(cand.World.People) == 0 {
				cand.World.People = nil
			}
		} else if p.Limits != nil {
			cand.World.People[i].Limits = nil
		} else {
			continue
		}
		try(cand)
	}
	for i := len(best.World.Agents) - 1; i >= 0; i-- {
		id := best.World.Agents[i].ID
		if modelMentions(best, id) {
			continue
		}
		cand := best
		cand.World.Agents = nil
		for j, a := range best.World.Agents {
			if j != i {
				a.DelegateTo = slices.DeleteFunc(slices.Clone(a.DelegateTo), func(s string) bool { return s == id })
				cand.World.Agents = append(cand.World.Agents, a)
			}
		}
		try(cand)
	}
	// Then the agents' fields that may not matter.
	for i := range best.World.Agents {
		for _, clear := range []func(*modelAgent){
			func(a *modelAgent) { a.DelegateTo = nil },
			func(a *modelAgent) { a.MaxDepth = 0 },
		} {
			cand := best
			cand.World.Agents = slices.Clone(best.World.Agents)
			before := cand.World.Agents[i]
			clear(&cand.World.Agents[i])
			if !reflect.DeepEqual(before, cand.World.Agents[i]) {
				try(cand)
			}
		}
	}
	return best, bestD, replays
}

// modelSlice marks the last operation of ops and those that made what it
// names, transitively: the tokens it presents and the tokens and
// delegations those came from.
func modelSlice(ops []modelOp) []bool {
	made := map[string]int{}
	for i, op := range ops {
		if op.Label != "" {
			made[op.Label] = i
		}
	}
	keep := make([]bool, len(ops))
	var mark func(i int)
	mark = func(i int) {
		if keep[i] {
			return
		}
		keep[i] = true
		for _, l := range []string{ops[i].Token, ops[i].ActorToken, ops[i].Delegation, ops[i].Code, ops[i].Refresh} {
			if j, ok := made[l]; ok && j < i {
				mark(j)
			}
		}
	}
	mark(len(ops) - 1)
	return keep
}

// modelMentions reports whether anything in c but the people and agents
// names id (a person or an agent).
func modelMentions(c modelCase, id string) bool {
	c.World.People, c.World.Agents = nil, nil
	return strings.Contains(modelGoString(c, ""), strconv.Quote(id))
}

// modelReport is the failure message of a disagreement: what parted, the
// shrunk sequence as a regression test, and how to rerun.
func modelReport(where string, d *modelDisagreement, shrunk modelCase, sd *modelDisagreement, replays int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "delegation model: the server and the model disagree: %s\n%s\n%s\n", d.Sig, where, d.Text)
	fmt.Fprintf(&b, "\nshrunk to %d operations (%d replays on fresh servers); at operation %d:\n%s\n",
		len(shrunk.Ops), replays, sd.Op, sd.Text)
	fmt.Fprintf(&b, "\nas a regression test:\n\nfunc TestModelRegression(t *testing.T) {\n\trunModelRegression(t, %s)\n}\n",
		strings.ReplaceAll(modelGoString(shrunk, ""), "\n", "\n\t"))
	return b.String()
}

// runModelRegression runs c on a fresh server and fails t at the first
// disagreement: the form in which shrunk sequences become named tests.
func runModelRegression(t *testing.T, c modelCase) {
	t.Helper()
	if d, _ := runModelCase(t, c); d != nil {
		t.Fatalf("delegation model: the server and the model disagree: %s\n%s", d.Sig, d.Text)
	}
}

// modelGoString prints v as a Go expression (zero struct fields left
// out), indent being the indentation of the line it starts on.
func modelGoString(v any, indent string) string {
	return modelGo(reflect.ValueOf(v), indent, true)
}

func modelGo(v reflect.Value, indent string, typed bool) string {
	if v.Kind() == reflect.Interface {
		if v.IsNil() {
			return "nil"
		}
		v, typed = v.Elem(), true
	}
	if v.Type() == reflect.TypeFor[time.Duration]() {
		d := time.Duration(v.Int())
		if d%time.Second == 0 {
			return fmt.Sprintf("%d * time.Second", d/time.Second)
		}
		return strconv.FormatInt(int64(d), 10)
	}
	typeName := func() string {
		if !typed {
			return ""
		}
		return strings.NewReplacer("server_test.", "", "interface {}", "any").Replace(v.Type().String())
	}
	switch v.Kind() {
	case reflect.String:
		return strconv.Quote(v.String())
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'g', -1, 64)
	case reflect.Struct:
		var fields []string
		long := false
		for i := range v.NumField() {
			if f := v.Field(i); !f.IsZero() {
				s := modelGo(f, indent+"\t", true)
				long = long || strings.Contains(s, "\n") || f.Kind() == reflect.Slice && f.Len() > 0 && f.Index(0).Kind() == reflect.Struct
				fields = append(fields, v.Type().Field(i).Name+": "+s)
			}
		}
		if !long {
			return typeName() + "{" + strings.Join(fields, ", ") + "}"
		}
		return typeName() + "{\n" + indent + "\t" + strings.Join(fields, ",\n"+indent+"\t") + ",\n" + indent + "}"
	case reflect.Slice:
		if v.IsNil() {
			return "nil"
		}
		var elems []string
		structs := v.Type().Elem().Kind() == reflect.Struct
		for i := range v.Len() {
			elems = append(elems, modelGo(v.Index(i), indent+"\t", false))
		}
		if !structs || len(elems) == 0 {
			return typeName() + "{" + strings.Join(elems, ", ") + "}"
		}
		return typeName() + "{\n" + indent + "\t" + strings.Join(elems, ",\n"+indent+"\t") + ",\n" + indent + "}"
	case reflect.Map:
		if v.IsNil() {
			return "nil"
		}
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		var elems []string
		for _, k := range keys {
			elems = append(elems, strconv.Quote(k.String())+": "+modelGo(v.MapIndex(k), indent, true))
		}
		return typeName() + "{" + strings.Join(elems, ", ") + "}"
	}
	return fmt.Sprintf("%#v", v.Interface())
}
