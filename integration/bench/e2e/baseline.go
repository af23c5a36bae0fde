package e2e

import (
	"bytes"
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
	return e.outbound("baseline-out", "b", run, n, warm, func(q queues) (*bridge, error) { return e.startBridge("bridge-out", q) })
}

// BaselineIn measures n events through the baseline bridge.
func (e *Env) BaselineIn(run, n, warm int) (Result, error) {
	return e.inbound("baseline-in", "c", run, n, warm, func(q queues) (*bridge, error) { return e.startBridge("bridge-in", q) })
}

func (e *Env) startBridge(role string, q queues) (*bridge, error) {
	if len(e.opt.BridgeCmd) == 0 {
		return nil, errors.New("no baseline bridge command (Options.BridgeCmd)")
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	httpAddr := fmt.Sprintf("127.0.0.1:%d", port)
	args := append([]string{"-role", role},
		"-component", e.Prosody.ComponentAddr, "-domain", e.Prosody.ComponentDomain, "-secret", e.Prosody.Secret,
		"-server-domain", e.Prosody.Domain, "-amqp", e.opt.AMQPURL, "-out", q.out, "-in", q.in,
		"-prefetch", strconv.Itoa(e.opt.Prefetch), "-http", httpAddr, "-linger", e.opt.BaselineLinger.String())
	p, err := startProcess("baseline bridge", filepath.Join(e.dir, role+".log"), nil, e.opt.BridgeCmd[0], args...)
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

// RunBridge runs the baseline bridge (role bridge-out or bridge-in) until
// SIGTERM. args are its flags.
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
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var counted atomic.Int64
	metricName := `xmppgw_outbound_items_total{result="sent"}`
	if role == "bridge-in" {
		metricName = `xmppgw_inbound_events_total{kind="message",route="default"}`
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%s %d\n", metricName, counted.Load())
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
	go func() { _ = http.Serve(l, mux) }()

	conn, err := net.Dial("tcp", *compAddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = component.NewSession(dctx, jid.MustParse(*domain), []byte(*secret), conn)
	cancel()
	if err != nil {
		return fmt.Errorf("component: %w", err)
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
		return bridgeOut(ctx, conn, ch, *outQ, *prefetch, *domain, *server, *linger, &counted)
	case "bridge-in":
		return bridgeIn(ctx, conn, ch, *inQ, &counted)
	}
	return fmt.Errorf("unknown role %q", role)
}

type barrier struct {
	seq     uint64
	lastTag uint64
	n       int
}

func bridgeOut(ctx context.Context, conn net.Conn, ch *amqp.Channel, q string, prefetch int, domain, server string, linger time.Duration, counted *atomic.Int64) error {
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return err
	}
	deliveries, err := ch.Consume(q, "baseline", false, false, false, false, nil)
	if err != nil {
		return err
	}
	// The read loop: answers to our barrier pings, id='p<seq>'.
	var confirmed atomic.Uint64
	notify := make(chan struct{}, 1)
	readErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			data := buf[:n]
			for {
				i := bytes.Index(data, []byte("id='p"))
				if i < 0 {
					break
				}
				data = data[i+5:]
				j := bytes.IndexByte(data, '\'')
				if j < 0 {
					break
				}
				if s, err := strconv.ParseUint(string(data[:j]), 10, 64); err == nil && s > confirmed.Load() {
					confirmed.Store(s)
					select {
					case notify <- struct{}{}:
					default:
					}
				}
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	}()
	from := "notices@" + domain
	buf := make([]byte, 0, 512<<10)
	var (
		pending      []barrier
		seq          uint64
		open         barrier // written, not yet behind a barrier
		stop         = ctx.Done()
		barrierEvery = max(1, prefetch/4)
	)
	// As the gateway does: a barrier when none is in flight or enough
	// items went out without one; else the items ride on the next one, so
	// that there is about one ping per round trip.
	appendPing := func() {
		seq++
		buf = append(buf, "<iq type='get' id='p"...)
		buf = strconv.AppendUint(buf, seq, 10)
		buf = append(buf, "' from='"...)
		buf = append(buf, domain...)
		buf = append(buf, "' to='"...)
		buf = append(buf, server...)
		buf = append(buf, "'><ping xmlns='urn:xmpp:ping'/></iq>"...)
		open.seq = seq
		pending = append(pending, open)
		open = barrier{}
	}
	ack := func() error {
		c := confirmed.Load()
		var last barrier
		k := 0
		for k < len(pending) && pending[k].seq <= c {
			last = pending[k]
			counted.Add(int64(pending[k].n))
			k++
		}
		if k == 0 {
			return nil
		}
		pending = append(pending[:0], pending[k:]...)
		if err := ch.Ack(last.lastTag, true); err != nil {
			return err
		}
		if len(pending) == 0 && open.n > 0 {
			buf = buf[:0]
			appendPing()
			_, err := conn.Write(buf)
			return err
		}
		return nil
	}
	for {
		select {
		case <-stop:
			stop = nil
			_ = ch.Cancel("baseline", false)
		case d, ok := <-deliveries:
			if !ok {
				// Drained: wait for the last barrier, then stop.
				if open.n > 0 {
					buf = buf[:0]
					appendPing()
					if _, err := conn.Write(buf); err != nil {
						return err
					}
				}
				deadline := time.After(10 * time.Second)
				for len(pending) > 0 {
					select {
					case <-notify:
						if err := ack(); err != nil {
							return err
						}
					case <-deadline:
						return errors.New("last barrier not answered")
					}
				}
				return nil
			}
			buf = appendStanza(buf[:0], &d, from)
			open.lastTag = d.DeliveryTag
			open.n++
			taken := 1
		more:
			for taken < 256 && len(buf) < 256<<10 {
				select {
				case d, ok := <-deliveries:
					if !ok {
						break more
					}
					buf = appendStanza(buf, &d, from)
					open.lastTag = d.DeliveryTag
					open.n++
					taken++
				default:
					if linger <= 0 || taken >= 64 {
						break more
					}
					// Linger: wait a moment for more, for bigger writes.
					t := time.NewTimer(linger)
					select {
					case d, ok := <-deliveries:
						t.Stop()
						if !ok {
							break more
						}
						buf = appendStanza(buf, &d, from)
						open.lastTag = d.DeliveryTag
						open.n++
						taken++
						continue
					case <-t.C:
						break more
					}
				}
			}
			if len(pending) == 0 || open.n >= barrierEvery {
				appendPing()
			}
			if _, err := conn.Write(buf); err != nil {
				return err
			}
		case <-notify:
			if err := ack(); err != nil {
				return err
			}
		case err := <-readErr:
			return fmt.Errorf("component stream: %w", err)
		}
	}
}

// jsonString returns the raw value of the string field key in body (no
// unescaping: the benchmark's items have no escapes).
func jsonString(body []byte, key string) []byte {
	i := bytes.Index(body, []byte(`"`+key+`":"`))
	if i < 0 {
		return nil
	}
	v := body[i+len(key)+4:]
	j := bytes.IndexByte(v, '"')
	if j < 0 {
		return nil
	}
	return v[:j]
}

func appendStanza(buf []byte, d *amqp.Delivery, from string) []byte {
	buf = append(buf, "<message type='chat' from='"...)
	buf = append(buf, from...)
	buf = append(buf, "' to='"...)
	buf = append(buf, jsonString(d.Body, "target")...)
	buf = append(buf, "' id='"...)
	buf = append(buf, d.MessageId...)
	buf = append(buf, "'><body>"...)
	buf = append(buf, jsonString(d.Body, "text")...)
	buf = append(buf, "</body>"...)
	if i := bytes.Index(d.Body, []byte(`"payload":{`)); i >= 0 {
		v := d.Body[i+10:]
		if j := bytes.IndexByte(v, '}'); j >= 0 {
			buf = append(buf, "<json xmlns='urn:xmpp:json:0'>"...)
			buf = append(buf, v[:j+1]...)
			buf = append(buf, "</json>"...)
		}
	}
	return append(buf, "</message>"...)
}

func bridgeIn(ctx context.Context, conn net.Conn, ch *amqp.Channel, q string, counted *atomic.Int64) error {
	if err := ch.Confirm(false); err != nil {
		return err
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 65536))
	go func() {
		for c := range confirms {
			if c.Ack {
				counted.Add(1)
			}
		}
	}()
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	buf := make([]byte, 256<<10)
	n := 0
	var ev []byte
	for {
		m, err := conn.Read(buf[n:])
		data := buf[:n+m]
		pos := 0
		for {
			i := bytes.Index(data[pos:], []byte("<message"))
			if i < 0 {
				break
			}
			start := pos + i
			end := bytes.Index(data[start:], []byte("</message>"))
			if end < 0 {
				break
			}
			st := data[start : start+end]
			pos = start + end + len("</message>")
			tagEnd := bytes.IndexByte(st, '>')
			if tagEnd < 0 {
				continue
			}
			tag := st[:tagEnd]
			body := st[tagEnd:]
			if b := bytes.Index(body, []byte("<body>")); b >= 0 {
				body = body[b+6:]
				if e := bytes.Index(body, []byte("</body>")); e >= 0 {
					body = body[:e]
				}
			} else {
				continue
			}
			ev = append(ev[:0], `{"kind":"message","id":"`...)
			ev = append(ev, attr(tag, attrID)...)
			ev = append(ev, `","from":"`...)
			ev = append(ev, attr(tag, []byte(" from="))...)
			ev = append(ev, `","to":"`...)
			ev = append(ev, attr(tag, []byte(" to="))...)
			ev = append(ev, `","type":"`...)
			ev = append(ev, attr(tag, attrType)...)
			ev = append(ev, `","text":"`...)
			ev = append(ev, body...)
			ev = append(ev, `","received_at":"`...)
			ev = time.Now().UTC().AppendFormat(ev, time.RFC3339Nano)
			ev = append(ev, `"}`...)
			perr := ch.PublishWithContext(ctx, "", q, true, false, amqp.Publishing{
				ContentType: "application/json", Type: "message", DeliveryMode: amqp.Persistent,
				MessageId: string(attr(tag, attrID)), Timestamp: time.Now(), Body: ev,
			})
			if perr != nil {
				if ctx.Err() != nil {
					return nil
				}
				return perr
			}
		}
		n = copy(buf, data[pos:])
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
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
