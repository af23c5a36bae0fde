package e2e

import (
	"bytes"
	"context"
	"net"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The inbound baseline bridge: a raw scan of the <message/> stanzas on the
// component stream, each published as a JSON event with confirms.

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
	return publishMessages(ctx, conn, ch, q)
}

// publishMessages reads the stream until it ends and publishes an event
// for each <message/> with a body. It ends without error when ctx is done.
//
// This is the bridge's per-item loop, kept in one piece on purpose: the
// scan, the event and the publish of a message are inline so that an item
// costs no more calls than it did when the figures were first compared.
func publishMessages(ctx context.Context, conn net.Conn, ch *amqp.Channel, q string) error {
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
