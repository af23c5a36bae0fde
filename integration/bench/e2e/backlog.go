package e2e

// Backlog measures draining n items that wait in the out queue before the
// gateway starts, with the gateway's default amqp.prefetch (none in its
// config): the rate from the first item received to the last one
// acknowledged, and the gateway's peak RSS while it drains. Every id must
// arrive once, as in Outbound.
func (e *Env) Backlog(run, n int) (Result, error) {
	return e.outbound(outRun{kind: "backlog", letter: "k", start: e.gateway(0)}, run, n, 0)
}

// BaselineBacklog is Backlog through the baseline bridge, with the same
// prefetch (the gateway's default).
func (e *Env) BaselineBacklog(run, n int) (Result, error) {
	return e.outbound(outRun{kind: "baseline-backlog", letter: "m", start: e.bridge("bridge-out", 0)}, run, n, 0)
}
