package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ServerCost: the instructions Prosody executes per item, counted by
// callgrind (Options.Callgrind) in a window quiet at both ends, with the
// same drivers as Outbound, Inbound and their baseline and raw variants.
// Exact and repeatable whatever loads the machine, where CPU time is not.

// ServerCost variants.
const (
	CostGateway        = "gateway"
	CostBridge         = "bridge"
	CostBridgeOriginID = "bridge+origin-id" // outbound only: the bridge writing the gateway's <origin-id/>
	CostRaw            = "raw"
)

// costKinds are the result kinds of the ServerCost variants, outbound and
// inbound.
var costKinds = map[string][2]string{
	CostGateway:        {"servercost-out", "servercost-in"},
	CostBridge:         {"servercost-baseline-out", "servercost-baseline-in"},
	CostBridgeOriginID: {"servercost-baseline-origin-out", ""},
	CostRaw:            {"servercost-raw-out", "servercost-raw-in"},
}

// window returns the window of a ServerCost run: callgrind's
// instrumentation on at the start, off and a dump at the end.
func (e *Env) window() (*window, error) {
	if e.cg == nil {
		return nil, errors.New("servercost needs Prosody under callgrind (Options.Callgrind)")
	}
	on := func() error {
		e.waitIdle(e.Prosody.PID(), time.Minute)
		return e.cg.on()
	}
	return &window{on: on, off: e.cg.off}, nil
}

// waitIdle waits until process pid has used at most one clock tick of CPU
// in half a second (Prosody done with what came before the window: the
// end of the warm-up, the previous run's session), for at most limit.
func (e *Env) waitIdle(pid int, limit time.Duration) {
	t0 := time.Now()
	prev, err := ProcCPU(pid)
	for err == nil && time.Since(t0) < limit {
		time.Sleep(500 * time.Millisecond)
		var now time.Duration
		if now, err = ProcCPU(pid); err == nil && now-prev <= clockTick {
			return
		}
		prev = now
	}
	e.opt.Logf("prosody (pid %d) not idle after %s: the window starts anyway", pid, time.Since(t0).Round(time.Millisecond))
}

// ServerCostOut measures Prosody's instructions per item for n outbound
// items (after warm ones) carried by variant.
func (e *Env) ServerCostOut(variant string, run, n, warm int) (Result, error) {
	w, err := e.window()
	if err != nil {
		return Result{}, err
	}
	kind := costKinds[variant][0]
	o := outRun{kind: kind, window: w}
	switch variant {
	case CostGateway:
		o.letter, o.start = "go", e.gateway(e.opt.Prefetch)
	case CostBridge:
		o.letter, o.start = "gb", e.bridge("bridge-out", e.opt.Prefetch)
	case CostBridgeOriginID:
		o.letter, o.start = "gd", e.bridge("bridge-out", e.opt.Prefetch, "-origin-id")
	case CostRaw:
		o.letter, o.noBroker, o.release = "gw", true, releaseRaw
		o.start = e.bridge("raw-out", e.opt.Prefetch, "-n", strconv.Itoa(n+warm), "-hold", strconv.Itoa(warm),
			"-prefix", runPrefix(o.letter, run), "-targets", strings.Join(e.targets(), ","))
	default:
		return Result{}, fmt.Errorf("servercost: unknown variant %q", variant)
	}
	return e.outbound(o, run, n, warm)
}

// ServerCostIn measures Prosody's instructions per item for n inbound
// events (after warm ones) carried by variant (not bridge+origin-id).
func (e *Env) ServerCostIn(variant string, run, n, warm int) (Result, error) {
	w, err := e.window()
	if err != nil {
		return Result{}, err
	}
	kind := costKinds[variant][1]
	o := inRun{kind: kind, window: w}
	switch variant {
	case CostGateway:
		o.letter, o.start = "gi", e.gateway(e.opt.Prefetch)
	case CostBridge:
		o.letter, o.start = "gc", e.bridge("bridge-in", e.opt.Prefetch)
	case CostRaw:
		o.letter, o.raw = "gx", true
		o.start = e.bridge("raw-in", e.opt.Prefetch, "-n", strconv.Itoa(n+warm), "-prefix", runPrefix(o.letter, run))
	default:
		return Result{}, fmt.Errorf("servercost inbound: unknown variant %q", variant)
	}
	return e.inbound(o, run, n, warm)
}

// releaseRaw lets a raw-out component started with -hold write the rest
// of its items.
func releaseRaw(b *bridge) error {
	resp, err := http.Get("http://" + b.httpAddr + "/go")
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}
