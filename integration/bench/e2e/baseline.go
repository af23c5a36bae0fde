package e2e

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"
)

// The baseline is the thinnest possible bridge, run as its own process
// like the gateway: amqp091 consume with prefetch, raw bytes on a mellium
// component session, a ping barrier per batch and multiple acks, no
// validation or escaping (the benchmark's items need none); inbound, a raw
// scan of <message/> stanzas published as JSON with confirms. It serves
// /metrics with the gateway's counter names so that the benchmark treats
// both alike.

// BaselineOut measures n items through the baseline bridge.
func (e *Env) BaselineOut(run, n, warm int) (Result, error) {
	return e.outbound(outRun{kind: "baseline-out", letter: "b", start: e.bridge("bridge-out", e.opt.Prefetch)}, run, n, warm)
}

// BaselineIn measures n events through the baseline bridge.
func (e *Env) BaselineIn(run, n, warm int) (Result, error) {
	return e.inbound(inRun{kind: "baseline-in", letter: "c", start: e.bridge("bridge-in", e.opt.Prefetch)}, run, n, warm)
}

// bridge returns the starter of the baseline bridge (or a raw role) with
// prefetch (0: the gateway's default) and the extra flags.
func (e *Env) bridge(role string, prefetch int, extra ...string) starter {
	return func(q queues) (*bridge, error) { return e.startBridge(role, q, prefetch, extra...) }
}

func (e *Env) startBridge(role string, q queues, prefetch int, extra ...string) (*bridge, error) {
	if len(e.opt.BridgeCmd) == 0 {
		return nil, errors.New("no baseline bridge command (Options.BridgeCmd)")
	}
	if prefetch <= 0 {
		prefetch = e.DefaultPrefetch
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", port)
	args := append([]string{"-role", role},
		"-component", e.Prosody.ComponentAddr, "-domain", e.Prosody.ComponentDomain, "-secret", e.Prosody.Secret,
		"-server-domain", e.Prosody.Domain, "-amqp", e.opt.AMQPURL, "-out", q.out, "-in", q.in,
		"-prefetch", strconv.Itoa(prefetch), "-http", httpAddr, "-linger", e.opt.BaselineLinger.String())
	args = append(args, extra...)
	p, err := startProcess("baseline "+role, filepath.Join(e.dir, role+".log"), nil, e.opt.BridgeCmd[0], args...)
	// BridgeCmd[1:] is not used: the bridge flags must come first.
	if err != nil {
		return nil, err
	}
	return &bridge{proc: p, httpAddr: httpAddr}, nil
}

// BridgeCommand is the command line that runs the baseline bridge when the
// benchmark does not run from the bench command itself: it builds
// ./integration/bench into dir.
func BridgeCommand(dir string) ([]string, error) {
	root, err := repoDir()
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "bench")
	cmd := exec.Command("go", "build", "-o", bin, "./integration/bench")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./integration/bench: %v\n%s", err, out)
	}
	return []string{bin}, nil
}

// RunBridge runs the baseline bridge (role bridge-out or bridge-in), or
// the raw limit without a broker (raw-out, raw-in), until SIGTERM. args
// are its flags.
func RunBridge(role string, args []string) error {
	fs := flag.NewFlagSet(role, flag.ContinueOnError)
	var (
		compAddr = fs.String("component", "", "")
		domain   = fs.String("domain", "", "")
		secret   = fs.String("secret", "", "")
		server   = fs.String("server-domain", "", "")
		amqpURL  = fs.String("amqp", "", "")
		outQ     = fs.String("out", "", "")
		inQ      = fs.String("in", "", "")
		prefetch = fs.Int("prefetch", 1000, "")
		httpAddr = fs.String("http", "", "")
		linger   = fs.Duration("linger", 0, "")
		n        = fs.Int("n", 0, "raw roles: items")
		prefix   = fs.String("prefix", "", "raw roles: prefix of the ids")
		targets  = fs.String("targets", "", "raw-out: the receivers' JIDs, comma-separated")
		hold     = fs.Int("hold", 0, "raw-out: write this many items, then wait for a request to /go before the rest")
		originID = fs.Bool("origin-id", false, "bridge-out: end each message with the XEP-0359 origin-id the gateway writes")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var counted atomic.Int64
	var ids *idSet // raw-in: the distinct ids read
	metricName := `xmppgw_outbound_items_total{result="sent"}`
	if strings.HasSuffix(role, "-in") {
		metricName = `xmppgw_inbound_events_total{kind="message",route="default"}`
	}
	if role == "raw-in" {
		ids = newIDSet(*prefix, *n)
	}
	var raw []amqp.Delivery // raw-out: the items, made before the window
	if role == "raw-out" {
		raw = rawDeliveries(*n, *prefix, strings.Split(*targets, ","))
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%s %d\n", metricName, counted.Load())
		if ids != nil {
			fmt.Fprintf(w, "%s %d\n%s %d\n", rawDupsMetric, ids.dups.Load(), rawStrayMetric, ids.stray.Load())
		}
	})
	l, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return err
	}
	var ready atomic.Bool
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	release := make(chan struct{}) // raw-out -hold: closed by /go
	var once sync.Once
	mux.HandleFunc("/go", func(http.ResponseWriter, *http.Request) { once.Do(func() { close(release) }) })
	go func() { _ = http.Serve(l, mux) }()

	conn, err := dialComponent(ctx, *compAddr, *domain, *secret)
	if err != nil {
		return err
	}
	defer conn.Close()
	switch role {
	case "raw-out":
		ready.Store(true)
		return rawOut(ctx, conn, raw, *hold, release, *prefetch, *domain, *server, &counted)
	case "raw-in":
		ready.Store(true)
		return rawIn(ctx, conn, ids, &counted)
	}
	ac, err := amqp.Dial(*amqpURL)
	if err != nil {
		return err
	}
	defer ac.Close()
	ch, err := ac.Channel()
	if err != nil {
		return err
	}
	ready.Store(true)
	switch role {
	case "bridge-out":
		return bridgeOut(ctx, conn, ch, *outQ, *prefetch, *domain, *server, *linger, *originID, &counted)
	case "bridge-in":
		return bridgeIn(ctx, conn, ch, *inQ, &counted)
	}
	return fmt.Errorf("unknown role %q", role)
}

func repoDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("no go.mod above " + wd)
		}
	}
}

// dialComponent connects the component. A conflict (the previous run's
// session still known to a Prosody slowed down by callgrind) is retried
// for up to 30 s.
func dialComponent(ctx context.Context, addr, domain, secret string) (net.Conn, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = component.NewSession(dctx, jid.MustParse(domain), []byte(secret), conn)
		cancel()
		if err == nil {
			return conn, nil
		}
		conn.Close()
		if !strings.Contains(err.Error(), "conflict") || time.Now().After(deadline) {
			return nil, fmt.Errorf("component: %w", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
