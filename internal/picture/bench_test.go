package picture

import "testing"

// BenchmarkChain draws the three-hop chain of the walk-through.
func BenchmarkChain(b *testing.B) {
	hops := threeHops()
	for b.Loop() {
		Chain("Token", hops)
	}
}

// BenchmarkRefusalBars draws the most bars a picture has.
func BenchmarkRefusalBars(b *testing.B) {
	bars := make([]Bar, MaxBars)
	for i := range bars {
		bars[i] = Bar{Label: "agent:infrabot", Refused: i, Total: 100}
	}
	for b.Loop() {
		RefusalBars("Refusals", bars)
	}
}
