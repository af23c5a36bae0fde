package integration

import (
	"testing"

	"xmppgw/integration/bench/e2e"
)

// The end-to-end benchmarks run the gateway (or the thinnest possible
// bridge, for comparison) as a separate process between a private Prosody
// with real clients and the machine's RabbitMQ, and report items/s and the
// CPU µs per item of the bridge, Prosody and this process (the clients).
// Set-up (Prosody, clients, building the gateway) is not timed. b.N is the
// number of items, at least 1,000, after a warm-up of b.N/10 (at most
// 10,000). For stable figures:
//
//	go test -run '^$' -bench E2E -benchtime 200000x -count 3 ./integration/
//
// go run ./integration/bench prints the same figures as a table, with the
// comparison against the references.

func BenchmarkOutboundE2E(b *testing.B) {
	benchE2E(b, false, func(e *e2e.Env, n, warm int) (e2e.Result, error) { return e.Outbound(1, n, warm) })
}

func BenchmarkInboundE2E(b *testing.B) {
	benchE2E(b, false, func(e *e2e.Env, n, warm int) (e2e.Result, error) { return e.Inbound(1, n, warm) })
}

func BenchmarkBaselineOutE2E(b *testing.B) {
	benchE2E(b, true, func(e *e2e.Env, n, warm int) (e2e.Result, error) { return e.BaselineOut(1, n, warm) })
}

func BenchmarkBaselineInE2E(b *testing.B) {
	benchE2E(b, true, func(e *e2e.Env, n, warm int) (e2e.Result, error) { return e.BaselineIn(1, n, warm) })
}

func benchE2E(b *testing.B, baseline bool, measure func(e *e2e.Env, n, warm int) (e2e.Result, error)) {
	opt := e2e.Options{Logf: b.Logf, GatewayRev: "worktree"}
	if baseline {
		cmd, err := e2e.BridgeCommand(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		opt.BridgeCmd = cmd
	}
	env, err := e2e.Setup(opt)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(env.Close)
	n := max(b.N, 1000)
	warm := min(n/10, 10000)
	b.ResetTimer()
	r, err := measure(env, n, warm)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if r.Items == 0 || r.Rate <= 0 {
		b.Fatalf("nothing measured: %+v", r)
	}
	b.ReportMetric(1e9/r.Rate, "ns/op")
	b.ReportMetric(r.Rate, "items/s")
	b.ReportMetric(r.BridgeCPU, "µs-CPU/item")
	b.ReportMetric(r.ProsodyCPU, "prosody-µs/item")
	b.ReportMetric(r.ClientsCPU, "clients-µs/item")
	if r.Refused > 0 || r.Errors > 0 {
		b.ReportMetric(r.Refused, "refused")
		b.Logf("%v refused, %d error stanzas", r.Refused, r.Errors)
	}
}
