package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"xmppgw/queue"
)

// deadItem is what the dead commands show of one dead-lettered item.
type deadItem struct {
	pos    int    // 1-based position from the head of the queue
	id     string // message-id, or sha256:… of the body
	reason string // class: x-xmppgw-error before ':', or the x-death reason
	detail string // the whole x-xmppgw-error, or what x-death says
	source string // gateway, broker or unknown
	at     time.Time
	size   int
	body   []byte // kept for the sample only
}

// Sources of a dead letter.
const (
	sourceGateway = "gateway"
	sourceBroker  = "broker"
	sourceUnknown = "unknown"
)

// describeDead reads the reason and id of a dead-lettered delivery. The
// gateway's header wins over the broker's x-death: the gateway copies the
// headers of the item, so an x-death beside its own header is older.
func describeDead(d *amqp.Delivery, pos int) deadItem {
	it := deadItem{pos: pos, id: deadID(d), at: d.Timestamp, size: len(d.Body), body: d.Body,
		reason: "unknown", source: sourceUnknown, detail: "no x-xmppgw-error nor x-death header"}
	if v, ok := d.Headers[queue.ErrorHeader]; ok {
		s := headerString(v)
		class, _, _ := strings.Cut(s, ":")
		it.reason, it.detail, it.source = strings.TrimSpace(class), s, sourceGateway
		if it.reason == "" {
			it.reason = "unknown"
		}
		return it
	}
	if deaths, ok := d.Headers["x-death"].([]any); ok && len(deaths) > 0 {
		if t, ok := deaths[0].(amqp.Table); ok {
			reason := headerString(t["reason"])
			if reason != "" {
				it.reason, it.source = reason, sourceBroker
				it.detail = fmt.Sprintf("dead-lettered by the broker (x-death): %s from queue %s", reason, headerString(t["queue"]))
				if n, ok := t["count"].(int64); ok && n > 1 {
					it.detail += fmt.Sprintf(", %d times", n)
				}
				return it
			}
		}
	}
	if r := headerString(d.Headers["x-last-death-reason"]); r != "" {
		it.reason, it.source = r, sourceBroker
		it.detail = fmt.Sprintf("dead-lettered by the broker (x-last-death-reason): %s from queue %s", r, headerString(d.Headers["x-last-death-queue"]))
	}
	return it
}

// deadID is the id by which `dead requeue --id` selects an item: its AMQP
// message-id, else sha256: and 16 hex digits of the hash of its body.
func deadID(d *amqp.Delivery) string {
	if d.MessageId != "" {
		return d.MessageId
	}
	sum := sha256.Sum256(d.Body)
	return "sha256:" + hex.EncodeToString(sum[:8])
}

func headerString(v any) string {
	switch s := v.(type) {
	case string:
		return s
	case []byte:
		return string(s)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// deadSelector picks items by reason or id, or all of them.
type deadSelector struct {
	all     bool
	reasons map[string]bool
	ids     map[string]bool
}

func (s deadSelector) match(it deadItem) bool {
	return s.all || s.reasons[it.reason] || s.ids[it.id]
}

// deadGroup is the items of one reason.
type deadGroup struct {
	reason   string
	source   string
	count    int
	selected int
	sample   deadItem
}

// deadSummary collects what the listing prints.
type deadSummary struct {
	examined int
	order    []*deadGroup
	groups   map[string]*deadGroup
	items    []deadItem // the selected items, without bodies
}

func newDeadSummary() *deadSummary { return &deadSummary{groups: map[string]*deadGroup{}} }

func (s *deadSummary) add(it deadItem, selected bool) {
	s.examined++
	g := s.groups[it.reason]
	if g == nil {
		g = &deadGroup{reason: it.reason, source: it.source}
		s.groups[it.reason] = g
		s.order = append(s.order, g)
	}
	g.count++
	if !selected {
		return
	}
	if g.selected == 0 {
		g.sample = it
	}
	g.selected++
	it.body = nil
	s.items = append(s.items, it)
}

func (s *deadSummary) print(w io.Writer, q string, left int, items bool, bodyBytes int) {
	if s.examined == 0 {
		fmt.Fprintf(w, "%s: empty\n", q)
		return
	}
	fmt.Fprintf(w, "%s: %s examined from the head, all left in place\n", q, plural(s.examined, "item"))
	if left > 0 {
		fmt.Fprintf(w, "%s behind them not examined (--max)\n", plural(left, "item"))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%5s\t%s\t%s\n", "COUNT", "REASON", "SOURCE")
	for _, g := range s.order {
		fmt.Fprintf(tw, "%5d\t%s\t%s\n", g.count, g.reason, g.source)
	}
	tw.Flush()
	for _, g := range s.order {
		if g.selected == 0 {
			continue
		}
		it := g.sample
		fmt.Fprintf(w, "\n%s: %s; sample: #%d id=%s", g.reason, plural(g.count, "item"), it.pos, it.id)
		if !it.at.IsZero() {
			fmt.Fprintf(w, " queued %s", it.at.UTC().Format(time.RFC3339))
		}
		fmt.Fprintf(w, " %d bytes\n", it.size)
		fmt.Fprintf(w, "  error: %s\n", shorten([]byte(it.detail), 300))
		if bodyBytes > 0 {
			fmt.Fprintf(w, "  body:  %s\n", shorten(it.body, bodyBytes))
		}
	}
	if items && len(s.items) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "#\tREASON\tID\tQUEUED\tBYTES")
		for _, it := range s.items {
			at := "-"
			if !it.at.IsZero() {
				at = it.at.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\n", it.pos, it.reason, shorten([]byte(it.id), 80), at, it.size)
		}
		tw.Flush()
	}
}

// shorten returns at most about n bytes of b for a terminal: cut at a UTF-8
// boundary, control characters and invalid bytes escaped, "…" and the full
// size appended when cut.
func shorten(b []byte, n int) string {
	var sb strings.Builder
	i := 0
	for i < len(b) && sb.Len() < n {
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&sb, `\x%02x`, b[i])
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029:
			q := strconv.QuoteRune(r)
			sb.WriteString(q[1 : len(q)-1])
		default:
			sb.WriteRune(r)
		}
		i += size
	}
	if i < len(b) {
		fmt.Fprintf(&sb, "… (%d bytes)", len(b))
	}
	return sb.String()
}

// listFlag is a flag that may be repeated and holds comma-separated values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func setOf(l listFlag) map[string]bool {
	m := make(map[string]bool, len(l))
	for _, s := range l {
		m[s] = true
	}
	return m
}

// plural returns "1 item", "2 items".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
