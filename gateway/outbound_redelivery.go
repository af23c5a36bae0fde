package gateway

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"xmppgw/stanza"
)

// An item that the XMPP server keeps refusing by ending the stream would
// otherwise come back forever: the broker redelivers what was not acked, in
// the same order. Two defences, both within amqp.delivery_limit:
//
//   - a redelivered item is written alone between two barriers, so that a
//     stream that dies while it is in flight points at it and at nothing
//     else; when the server ends the stream with a stream error that blames
//     the input (not-well-formed, policy-violation, ...) while such an item
//     alone was in flight, that counts against the item ("blame");
//   - every delivery of a redelivered item is counted (or read from the
//     broker's x-delivery-count on quorum queues).
//
// An item reaching amqp.delivery_limit deliveries, or blamed blameLimit
// times, is dead-lettered with the reason delivery_limit instead of being
// written again.

// blameLimit is how many times the server must end the stream with an
// input error while an item alone was in flight before that item is set
// aside. Two, not one: a reply the read loop wrote at the same moment could
// have been the real culprit once.
const blameLimit = 2

// tally is what is known about one redelivered item.
type tally struct {
	deliveries int // times delivered, this one included
	blames     int
}

// redeliveries tracks redelivered items by identity until they are acked.
// Only redelivered items are tracked, so it stays small; it is bounded all
// the same (at the bound it starts over, which only delays a verdict).
type redeliveries struct {
	m   map[uint64]*tally
	max int
}

func newRedeliveries(max int) *redeliveries {
	return &redeliveries{m: make(map[uint64]*tally), max: max}
}

// key identifies an item across deliveries and across restarts of the
// process (the ledger keeps it): its body and the properties a publisher
// sets (delivery tags change with every delivery), hashed with SHA-256, of
// which 64 bits are kept. Never 0, which means "not redelivered". Only
// redelivered items are hashed.
func (r *redeliveries) key(d *amqp.Delivery) uint64 {
	h := sha256.New()
	var n [8]byte
	for _, s := range []string{d.MessageId, d.CorrelationId, d.Timestamp.UTC().Format(time.RFC3339Nano)} {
		binary.LittleEndian.PutUint64(n[:], uint64(len(s))) // unambiguous framing
		h.Write(n[:])
		h.Write([]byte(s))
	}
	h.Write(d.Body)
	return max(1, binary.LittleEndian.Uint64(h.Sum(nil)[:8]))
}

// redelivered reports whether d was delivered before, to this gateway or
// another: the broker's flag, or a delivery count header.
func redelivered(d *amqp.Delivery) bool {
	return d.Redelivered || brokerDeliveryCount(d) > 0
}

// brokerDeliveryCount is the broker's count of earlier deliveries
// (x-delivery-count, set by quorum queues), 0 if absent, clamped to
// [0, 2^30] whatever integer type a header holds.
func brokerDeliveryCount(d *amqp.Delivery) int {
	const most = 1 << 30
	clamp := func(v int64) int { return int(max(0, min(v, most))) }
	switch v := d.Headers["x-delivery-count"].(type) {
	case int64:
		return clamp(v)
	case int32:
		return clamp(int64(v))
	case int16:
		return clamp(int64(v))
	case int8:
		return clamp(int64(v))
	case int:
		return clamp(int64(v))
	case uint8:
		return clamp(int64(v))
	case uint16:
		return clamp(int64(v))
	case uint32:
		return clamp(int64(v))
	case uint64:
		return clamp(int64(min(v, most)))
	}
	return 0
}

// delivered records one more delivery of the redelivered item d and
// returns its tally.
func (r *redeliveries) delivered(k uint64, d *amqp.Delivery) *tally {
	t, ok := r.m[k]
	if !ok {
		if len(r.m) >= r.max {
			clear(r.m)
		}
		// Redelivered: at least one delivery came before this one.
		t = &tally{deliveries: 1}
		r.m[k] = t
	}
	t.deliveries = max(t.deliveries+1, brokerDeliveryCount(d)+1)
	return t
}

// blame records that the server ended the stream while k alone was in
// flight.
func (r *redeliveries) blame(k uint64) {
	if t, ok := r.m[k]; ok {
		t.blames++
	}
}

// forget drops items that were acked.
func (r *redeliveries) forget(keys []uint64) {
	for _, k := range keys {
		delete(r.m, k)
	}
}

// blameable lists the stream errors by which a server says that what we
// wrote was wrong (RFC 6120 §4.9.3), as opposed to its own state
// (system-shutdown, conflict, connection-timeout, ...).
func blameable(condition string) bool {
	switch condition {
	case "bad-format", "bad-namespace-prefix", "improper-addressing", "invalid-from",
		"invalid-namespace", "invalid-xml", "not-well-formed", "policy-violation",
		"restricted-xml", "unsupported-encoding", "unsupported-stanza-type", "xml-not-well-formed":
		return true
	}
	return false
}

// encodeItem is stanza.Encoder.Append (a variable for tests).
var encodeItem = (*stanza.Encoder).Append

// encode appends the stanza of one item to dst. A panic while encoding (a
// bug that some input reaches; none is known, the encoder is fuzzed) would
// kill the process on every delivery of that item, and on a classic queue
// the count of deliveries lives in memory: it would crash the gateway
// forever. Here it sets the item aside at once instead, as the poison it
// is (reason delivery_limit), and logs the stack for a bug report. dst
// comes back as it was.
func (p *pipe) encode(dst, body []byte, meta stanza.Meta) (out []byte, info stanza.Info, err error) {
	defer func() {
		if r := recover(); r != nil {
			p.o.log.Error("encoding an item panicked: it is set aside; please report this with the item", "panic", r, "stack", string(debug.Stack()))
			what := fmt.Sprint(r)
			if len(what) > 200 { // (a header, not a report)
				what = strings.ToValidUTF8(what[:200], "") + "…"
			}
			out, info, err = dst, stanza.Info{}, fmt.Errorf("%s: the gateway failed on this item (panic: %s)", reasonDeliveryLimit, what)
		}
	}()
	return encodeItem(p.enc, dst, body, meta)
}

// itemLimitError says why a redelivered item is set aside.
func itemLimitError(t *tally) error {
	if t.blames >= blameLimit {
		return fmt.Errorf("%s: the XMPP server ended the stream %d times while this item alone was in flight (delivery %d)", reasonDeliveryLimit, t.blames, t.deliveries)
	}
	return fmt.Errorf("%s: delivered %d times without being acknowledged", reasonDeliveryLimit, t.deliveries)
}

// reasonDeliveryLimit is the dead-letter reason of an item delivered too
// often (amqp.delivery_limit), as the contract names it.
const reasonDeliveryLimit = "delivery_limit"
