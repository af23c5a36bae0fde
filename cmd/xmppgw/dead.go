package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"xmppgw/gateway"
	"xmppgw/queue"
)

// `xmppgw dead` lists the dead-letter queue grouped by reason; `xmppgw dead
// requeue` moves selected items back to the out queue. Both take messages
// from the head of the queue with basic.get and manual acknowledgements
// (queue.Browser): what is not moved is returned to its place when the
// command ends, and by the broker itself if the command dies.

const deadUsage = `usage:
  xmppgw dead -c FILE [--reason R]... [--id ID]... [--items] [--max N] [--body-bytes N]
      list the dead-letter queue grouped by reason, with counts and one sample each;
      --items also prints one line per item (of the selected reasons or ids). Removes nothing.
  xmppgw dead requeue -c FILE (--reason R... | --id ID... | --all) [--max N] [--dry-run]
      move the selected items back to amqp.out_queue, each acknowledged in the
      dead-letter queue only after the broker confirmed its copy.
`

// defaultDeadMax bounds the messages one command examines.
const defaultDeadMax = 100000

func cmdDead(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "requeue":
			return cmdDeadRequeue(args[1:], stdout, stderr)
		case "list":
			args = args[1:]
		case "help", "-h", "--help":
			fmt.Fprint(stdout, deadUsage)
			return exitOK
		}
	}
	return cmdDeadList(args, stdout, stderr)
}

// deadFlags are the flags the dead subcommands share.
type deadFlags struct {
	fs      *flag.FlagSet
	cfgPath *string
	reasons listFlag
	ids     listFlag
	max     *int
	timeout *time.Duration
}

func newDeadFlags(name string, stderr io.Writer) *deadFlags {
	fs, cfgPath := newFlags(name, stderr)
	f := &deadFlags{fs: fs, cfgPath: cfgPath}
	fs.Usage = func() { fmt.Fprint(fs.Output(), deadUsage) }
	fs.Var(&f.reasons, "reason", "select items by reason (the part of x-xmppgw-error before ':', or the broker's x-death reason); repeatable or comma-separated")
	fs.Var(&f.ids, "id", "select items by id (AMQP message-id, or sha256:… of the body when it has none); repeatable or comma-separated")
	f.max = fs.Int("max", defaultDeadMax, "examine at most N items from the head of the queue")
	f.timeout = fs.Duration("timeout", 30*time.Second, "how long to wait for the broker to answer the dial, and for each confirm")
	return f
}

// selector returns the selection of the flags; all selects every item.
func (f *deadFlags) selector(all bool) deadSelector {
	return deadSelector{all: all, reasons: setOf(f.reasons), ids: setOf(f.ids)}
}

func (f *deadFlags) load(stderr io.Writer, cmd string) (*gateway.Config, int, bool) {
	if *f.cfgPath == "" {
		fmt.Fprintf(stderr, "xmppgw %s: -c FILE is required\n", cmd)
		return nil, exitUsage, false
	}
	if *f.max < 1 {
		fmt.Fprintf(stderr, "xmppgw %s: --max must be at least 1\n", cmd)
		return nil, exitUsage, false
	}
	cfg, err := gateway.LoadConfig(*f.cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "xmppgw: %v\n", err)
		return nil, exitUsage, false
	}
	return cfg, 0, true
}

func cmdDeadList(args []string, stdout, stderr io.Writer) int {
	f := newDeadFlags("dead", stderr)
	items := f.fs.Bool("items", false, "print one line per item too")
	bodyBytes := f.fs.Int("body-bytes", 120, "show at most N bytes of each sample's body; 0 hides bodies")
	if code, ok := parseFlags(f.fs, args); !ok {
		return code
	}
	cfg, code, ok := f.load(stderr, "dead")
	if !ok {
		return code
	}
	sel := f.selector(len(f.reasons) == 0 && len(f.ids) == 0)
	return deadList(cfg, sel, *f.max, *f.timeout, *items, *bodyBytes, stdout, stderr)
}

func deadList(cfg *gateway.Config, sel deadSelector, max int, timeout time.Duration, items bool, bodyBytes int, stdout, stderr io.Writer) int {
	ctx, stop := signalContext()
	defer stop()
	dctx, cancel := context.WithTimeout(ctx, timeout)
	dlq := cfg.AMQP.DeadLetterQueue
	b, err := queue.DialBrowser(dctx, cfg.AMQP.URL, dlq, "xmppgw dead")
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "xmppgw dead: %v\n", err)
		return exitFailure
	}
	defer b.Close()

	sum := newDeadSummary()
	left := 0
	for sum.examined < max {
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "xmppgw dead: interrupted; every item stays in %s\n", dlq)
			return exitFailure
		}
		d, n, ok, err := b.Next()
		if err != nil {
			fmt.Fprintf(stderr, "xmppgw dead: %v\n", err)
			return exitFailure
		}
		if !ok {
			left = 0
			break
		}
		left = n
		it := describeDead(&d, sum.examined+1)
		sum.add(it, sel.match(it))
	}
	// Return everything before printing: the queue is whole again as soon
	// as possible.
	if err := b.Close(); err != nil {
		fmt.Fprintf(stderr, "xmppgw dead: %v (the broker returns the items when the connection closes)\n", err)
		return exitFailure
	}
	sum.print(stdout, dlq, left, items, bodyBytes)
	return exitOK
}

func cmdDeadRequeue(args []string, stdout, stderr io.Writer) int {
	f := newDeadFlags("dead requeue", stderr)
	all := f.fs.Bool("all", false, "select every item examined")
	dry := f.fs.Bool("dry-run", false, "list what would be requeued, move nothing")
	window := f.fs.Int("window", 256, "copies waiting for the broker's confirm at most")
	if code, ok := parseFlags(f.fs, args); !ok {
		return code
	}
	n := 0
	for _, set := range []bool{*all, len(f.reasons) > 0, len(f.ids) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		fmt.Fprintln(stderr, "xmppgw dead requeue: select the items with exactly one of --reason, --id or --all")
		return exitUsage
	}
	if *window < 1 {
		fmt.Fprintln(stderr, "xmppgw dead requeue: --window must be at least 1")
		return exitUsage
	}
	cfg, code, ok := f.load(stderr, "dead requeue")
	if !ok {
		return code
	}
	sel := f.selector(*all)
	if *dry {
		return deadList(cfg, sel, *f.max, *f.timeout, true, 0, stdout, stderr)
	}
	return deadRequeue(cfg, sel, *f.max, *window, *f.timeout, stdout, stderr)
}

func deadRequeue(cfg *gateway.Config, sel deadSelector, max, window int, timeout time.Duration, stdout, stderr io.Writer) int {
	ctx, stop := signalContext()
	defer stop()
	dlq, outq := cfg.AMQP.DeadLetterQueue, cfg.AMQP.OutQueue
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// ctx bounds the dials only: after an interrupt, Move still settles the
	// copies in flight and acknowledges the originals of the confirmed ones.
	b, err := queue.DialBrowser(dctx, cfg.AMQP.URL, dlq, "xmppgw dead requeue")
	if err != nil {
		fmt.Fprintf(stderr, "xmppgw dead requeue: %v\n", err)
		return exitFailure
	}
	defer b.Close()
	p, err := queue.DialPublisher(dctx, cfg.AMQP.URL, "xmppgw dead requeue", nil)
	if err != nil {
		fmt.Fprintf(stderr, "xmppgw dead requeue: %v\n", err)
		return exitFailure
	}
	defer p.Close()
	cancel()

	var reasons []string
	count := map[string]int{}
	st, err := queue.Move(ctx, b, p, outq, queue.MoveOptions{
		Select: func(d *amqp.Delivery) bool {
			it := describeDead(d, 0)
			if !sel.match(it) {
				return false
			}
			if count[it.reason] == 0 {
				reasons = append(reasons, it.reason)
			}
			count[it.reason]++
			return true
		},
		Copy:           func(d *amqp.Delivery) amqp.Publishing { return queue.Republish(d, isFailureHeader) },
		Max:            max,
		Window:         window,
		ConfirmTimeout: timeout,
	})
	cerr := b.Close()
	var parts []string
	for _, r := range reasons {
		parts = append(parts, fmt.Sprintf("%s %d", r, count[r]))
	}
	detail := ""
	if len(parts) > 0 {
		detail = " (" + strings.Join(parts, ", ") + ")"
	}
	fmt.Fprintf(stdout, "requeued %d of %d selected to %s%s; %d examined in %s, the rest left in place\n",
		st.Moved, st.Selected, outq, detail, st.Examined, dlq)
	if err == nil && st.Left > 0 && st.Examined >= max {
		fmt.Fprintf(stdout, "%s behind them in %s not examined (--max %d): run again\n", plural(st.Left, "item"), dlq, max)
	}
	if st.Selected == 0 && err == nil {
		fmt.Fprintln(stdout, "no item matched")
	}
	switch {
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(stderr, "xmppgw dead requeue: interrupted: %d not moved stay in %s\n", st.Selected-st.Moved, dlq)
		return exitFailure
	case err != nil:
		fmt.Fprintf(stderr, "xmppgw dead requeue: %v; %d not moved stay in %s\n", err, st.Selected-st.Moved, dlq)
		return exitFailure
	case cerr != nil:
		fmt.Fprintf(stderr, "xmppgw dead requeue: %v\n", cerr)
		return exitFailure
	}
	return exitOK
}

// isFailureHeader names the headers of an item's failure, removed from its
// requeued copy so that the gateway sees a fresh item: the gateway's
// reason, the broker's dead-lettering history, and a delivery count copied
// from a quorum out queue (which the gateway would take for its own and
// dead-letter the item again at once as delivery_limit).
func isFailureHeader(name string) bool {
	switch name {
	case queue.ErrorHeader, "x-death", "x-delivery-count":
		return true
	}
	return strings.HasPrefix(name, "x-first-death-") || strings.HasPrefix(name, "x-last-death-")
}
