package gateway

import (
	"hash/maphash"
	"strings"
	"sync"

	"xmppgw/component"
	"xmppgw/stanza"
)

// receiptBookSize bounds how many messages sent with receipt: true the
// gateway remembers: 262,144 entries of 16 bytes (a few MiB with the map's
// overhead, whatever the lengths of ids and JIDs). A receipt for an older
// message, or one sent before a restart, is counted as unsolicited.
const receiptBookSize = 1 << 18

// receiptBook remembers the messages sent with a receipt request, so that a
// receipt or marker can be told from a stranger's: a hash of the stanza id
// and a hash of the recipient's bare JID (case-folded). The oldest entries
// are forgotten first. Safe for concurrent use: the outbound pipe adds, the
// XMPP reader matches.
type receiptBook struct {
	mu   sync.Mutex
	seed maphash.Seed
	m    map[uint64]uint64 // hash(id) -> hash(bare recipient)
	ring []uint64          // ids in the order added; ring[next] is the oldest once full
	next int
	size int

	// aliases map the ids rooms gave our messages (XEP-0359 stanza-id,
	// which occupants' markers quote, XEP-0333 §5) to our ids; oldest
	// forgotten first, bounded in number and bytes.
	aliases    map[string]string
	aliasOrder []string
	aliasBytes int
}

// Bounds of the room aliases.
const (
	aliasMax      = 65536
	aliasMaxBytes = 8 << 20
)

func newReceiptBook(size int) *receiptBook {
	return &receiptBook{seed: maphash.MakeSeed(), m: make(map[uint64]uint64), size: size, aliases: map[string]string{}}
}

// alias records that a room calls our message ours by roomID, if ours was
// sent with a receipt request to the room from (room/nick).
func (b *receiptBook) alias(roomID, ours, from string) {
	if roomID == "" || roomID == ours || !b.match(ours, from) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.aliases[roomID]; ok {
		return
	}
	size := len(roomID) + len(ours)
	for len(b.aliasOrder) > 0 && (len(b.aliasOrder) >= aliasMax || b.aliasBytes+size > aliasMaxBytes) {
		old := b.aliasOrder[0]
		b.aliasBytes -= len(old) + len(b.aliases[old])
		delete(b.aliases, old)
		b.aliasOrder[0] = ""
		b.aliasOrder = b.aliasOrder[1:]
	}
	b.aliases[roomID] = ours
	b.aliasOrder = append(b.aliasOrder, roomID)
	b.aliasBytes += size
}

// resolve returns our id for an id a room gave one of our messages.
func (b *receiptBook) resolve(roomID string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ours, ok := b.aliases[roomID]
	return ours, ok
}

// add remembers that the message id went to the JID to.
func (b *receiptBook) add(id, to string) {
	k, v := maphash.String(b.seed, id), b.bare(to)
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.m[k]; ok {
		b.m[k] = v // a redelivery: same id, same place in the ring
		return
	}
	if len(b.ring) < b.size {
		b.ring = append(b.ring, k)
	} else {
		delete(b.m, b.ring[b.next])
		b.ring[b.next] = k
		b.next = (b.next + 1) % b.size
	}
	b.m[k] = v
}

// match reports whether id was sent with a receipt request to the bare JID
// of from.
func (b *receiptBook) match(id, from string) bool {
	k, v := maphash.String(b.seed, id), b.bare(from)
	b.mu.Lock()
	defer b.mu.Unlock()
	got, ok := b.m[k]
	return ok && got == v
}

// bare hashes the bare JID of j, ASCII case-folded (servers stamp
// addresses in their canonical form; folding guards against one that
// does not).
func (b *receiptBook) bare(j string) uint64 {
	if i := strings.IndexByte(j, '/'); i >= 0 {
		j = j[:i]
	}
	var h maphash.Hash
	h.SetSeed(b.seed)
	for i := 0; i < len(j); i++ {
		c := j[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		h.WriteByte(c)
	}
	return h.Sum64()
}

// receipt handles a receipt event read from XMPP: counted and queued when
// it answers a message we sent with a request, to the JID that answers;
// counted and dropped otherwise.
func (g *Gateway) receipt(s *component.Session, ev *stanza.Event) {
	if !g.receipts.match(ev.ID, ev.From) {
		ours, ok := g.receipts.resolve(ev.ID) // an occupant's marker quoting the room's id
		if !ok || !g.receipts.match(ours, ev.From) {
			g.metrics.ReceiptsUnsolicited.Inc()
			return
		}
		ev.ID = ours
	}
	g.metrics.Receipts.WithLabelValues(ev.Status).Inc()
	g.in.offer(s, ev)
}

// receiptWriter batches the XEP-0184 receipts owed to the senders of
// inbound messages whose events the broker confirmed: one write per
// session per batch of settled confirms.
type receiptWriter struct {
	g    *Gateway
	buf  []byte
	sess *component.Session
	n    int
}

// add appends the receipt for ev, which came on session s (or the current
// session when that one is gone; none: the receipt is dropped, as when the
// sender's message had been lost with the stream).
func (w *receiptWriter) add(s *component.Session, ev *stanza.Event) {
	if s == nil || isDone(s) {
		s = w.g.sess.get()
		if s == nil {
			return
		}
	}
	if s != w.sess {
		w.flush()
		w.sess = s
	}
	w.buf = stanza.AppendReceipt(w.buf, ev, w.g.cfg.Load().XMPP.Mode != stanza.ModeClient)
	w.n++
}

// flush writes the receipts added since the last flush.
func (w *receiptWriter) flush() {
	if w.n > 0 && w.sess.Write(w.buf) == nil {
		w.g.metrics.ReceiptsSent.Add(float64(w.n))
	}
	w.buf, w.n, w.sess = w.buf[:0], 0, nil
}

func isDone(s *component.Session) bool {
	select {
	case <-s.Done():
		return true
	default:
		return false
	}
}
