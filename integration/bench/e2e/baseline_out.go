package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The outbound baseline bridge: deliveries become <message/> stanzas
// written in batches on the component stream; a ping (a barrier) follows a
// batch, and its answer acknowledges every delivery before it at once.

// barrier is a ping in flight and the deliveries written before it.
type barrier struct {
	seq     uint64
	lastTag uint64
	n       int
}

// acker acknowledges deliveries and cancels the consumer: the AMQP
// channel, or nothing for the raw run (rawOut), which has no broker.
type acker interface {
	Ack(tag uint64, multiple bool) error
	Cancel(consumer string, noWait bool) error
}

// outBridge is the state of the outbound baseline bridge; only run and
// its steps touch it, on one goroutine.
type outBridge struct {
	conn       net.Conn
	ch         acker
	deliveries <-chan amqp.Delivery
	pongs      *pongs
	counted    *atomic.Int64 // the bridge's sent counter

	from, domain, server string // from: the stanzas' sender
	linger               time.Duration
	barrierEvery         int
	originID             bool // each message ends with a XEP-0359 origin-id, as the gateway's do

	buf     []byte    // the next write
	pending []barrier // in flight, oldest first
	seq     uint64    // of the last barrier
	open    barrier   // written, not yet behind a barrier
}

func bridgeOut(ctx context.Context, conn net.Conn, ch *amqp.Channel, q string, prefetch int, domain, server string, linger time.Duration, originID bool, counted *atomic.Int64) error {
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return err
	}
	deliveries, err := ch.Consume(q, "baseline", false, false, false, false, nil)
	if err != nil {
		return err
	}
	o := newOutBridge(conn, ch, deliveries, prefetch, domain, server, linger, counted)
	o.originID = originID
	return o.run(ctx.Done())
}

// newOutBridge makes the outbound bridge and starts reading the barrier
// answers.
func newOutBridge(conn net.Conn, ch acker, deliveries <-chan amqp.Delivery, prefetch int, domain, server string, linger time.Duration, counted *atomic.Int64) *outBridge {
	p := &pongs{conn: conn, notify: make(chan struct{}, 1), err: make(chan error, 1)}
	go p.read()
	return &outBridge{conn: conn, ch: ch, deliveries: deliveries, pongs: p, counted: counted,
		from: "notices@" + domain, domain: domain, server: server, linger: linger,
		buf: make([]byte, 0, 512<<10), barrierEvery: max(1, prefetch/4)}
}

// run forwards deliveries and acknowledges them as barriers are answered
// until stop is closed and the consumer is drained.
func (o *outBridge) run(stop <-chan struct{}) error {
	deliveries, notify, readErr := o.deliveries, o.pongs.notify, o.pongs.err
	for {
		select {
		case <-stop:
			stop = nil
			_ = o.ch.Cancel("baseline", false)
		case d, ok := <-deliveries:
			if !ok {
				return o.drain()
			}
			if err := o.forward(&d); err != nil {
				return err
			}
		case <-notify:
			if err := o.ack(); err != nil {
				return err
			}
		case err := <-readErr:
			return fmt.Errorf("component stream: %w", err)
		}
	}
}

// forward writes d and the deliveries already waiting behind it (up to 256
// items or 256 KiB; with linger, waiting that long for more while fewer
// than 64 were taken) in one write, with a barrier when none is in flight
// or enough items went out without one; else the items ride on the next
// one, so that there is about one ping per round trip, as the gateway does.
//
// This is the bridge's per-item loop: it works on local copies of the
// buffer and the open barrier and calls nothing but appendStanza per item.
func (o *outBridge) forward(d *amqp.Delivery) error {
	deliveries, from, linger, oid := o.deliveries, o.from, o.linger, o.originID
	buf := appendStanza(o.buf[:0], d, from, oid)
	open := o.open
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
			buf = appendStanza(buf, &d, from, oid)
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
				buf = appendStanza(buf, &d, from, oid)
				open.lastTag = d.DeliveryTag
				open.n++
				taken++
				continue
			case <-t.C:
				break more
			}
		}
	}
	o.buf, o.open = buf, open
	if len(o.pending) == 0 || o.open.n >= o.barrierEvery {
		o.appendPing()
	}
	_, err := o.conn.Write(o.buf)
	return err
}

// appendPing appends a barrier to the buffer: it closes the open one.
func (o *outBridge) appendPing() {
	o.seq++
	buf := o.buf
	buf = append(buf, "<iq type='get' id='p"...)
	buf = strconv.AppendUint(buf, o.seq, 10)
	buf = append(buf, "' from='"...)
	buf = append(buf, o.domain...)
	buf = append(buf, "' to='"...)
	buf = append(buf, o.server...)
	buf = append(buf, "'><ping xmlns='urn:xmpp:ping'/></iq>"...)
	o.buf = buf
	o.open.seq = o.seq
	o.pending = append(o.pending, o.open)
	o.open = barrier{}
}

// writePing writes a barrier alone.
func (o *outBridge) writePing() error {
	o.buf = o.buf[:0]
	o.appendPing()
	_, err := o.conn.Write(o.buf)
	return err
}

// ack acknowledges (multiple) the deliveries before the last answered
// barrier and counts them as sent; when no barrier is left in flight, the
// items written since get one.
func (o *outBridge) ack() error {
	c := o.pongs.confirmed.Load()
	var last barrier
	k := 0
	for k < len(o.pending) && o.pending[k].seq <= c {
		last = o.pending[k]
		o.counted.Add(int64(o.pending[k].n))
		k++
	}
	if k == 0 {
		return nil
	}
	o.pending = append(o.pending[:0], o.pending[k:]...)
	if err := o.ch.Ack(last.lastTag, true); err != nil {
		return err
	}
	if len(o.pending) == 0 && o.open.n > 0 {
		return o.writePing()
	}
	return nil
}

// drain ends the bridge once the consumer is cancelled and drained: a
// barrier for what is open, then wait for the last barrier, failing when
// none is answered for 30 s (raw-out writes all its items at once: a
// Prosody under callgrind takes half a minute to read 3,000 of them).
func (o *outBridge) drain() error {
	if o.open.n > 0 {
		if err := o.writePing(); err != nil {
			return err
		}
	}
	const quiet = 30 * time.Second
	t := time.NewTimer(quiet)
	defer t.Stop()
	for len(o.pending) > 0 {
		select {
		case <-o.pongs.notify:
			if err := o.ack(); err != nil {
				return err
			}
			t.Reset(quiet)
		case <-t.C:
			return fmt.Errorf("last barrier not answered (none for %s)", quiet)
		}
	}
	return nil
}

// pongs reads the component stream for the answers to our barrier pings,
// id='p<seq>'.
type pongs struct {
	conn      net.Conn
	confirmed atomic.Uint64 // the highest seq answered
	notify    chan struct{} // a value when confirmed grew
	err       chan error    // why the stream ended
}

func (p *pongs) read() {
	buf := make([]byte, 64<<10)
	for {
		n, err := p.conn.Read(buf)
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
			if s, err := strconv.ParseUint(string(data[:j]), 10, 64); err == nil && s > p.confirmed.Load() {
				p.confirmed.Store(s)
				select {
				case p.notify <- struct{}{}:
				default:
				}
			}
		}
		if err != nil {
			p.err <- err
			return
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

// appendStanza appends the <message/> of the outbound item d; with
// originID, ended by the XEP-0359 <origin-id/> equal to the stanza id that
// the gateway writes on every message.
func appendStanza(buf []byte, d *amqp.Delivery, from string, originID bool) []byte {
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
	if originID {
		buf = append(buf, "<origin-id xmlns='urn:xmpp:sid:0' id='"...)
		buf = append(buf, d.MessageId...)
		buf = append(buf, "'/>"...)
	}
	return append(buf, "</message>"...)
}
