package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/term"

	"xmppgw/gateway"
	"xmppgw/queue"
	"xmppgw/stanza"
)

// `xmppgw send --stdin`: one item per line, published pipelined with
// publisher confirms, at most window unconfirmed at a time.

// maxLineBytes bounds one line of input; a longer line is reported and
// skipped.
const maxLineBytes = 32 << 20

type bulkOptions struct {
	in      io.Reader
	window  int
	check   bool // refuse what the gateway would dead-letter
	timeout time.Duration
}

// bulkCounts are the counters the progress line shows.
type bulkCounts struct {
	lines, published, queued, invalid, failed atomic.Int64
}

// bulk is one run of send --stdin.
type bulk struct {
	o       bulkOptions
	cfg     *gateway.Config
	pub     *queue.Publisher
	enc     *stanza.Encoder
	stderr  io.Writer
	errMu   *sync.Mutex // stderr is shared with the progress line
	idBase  string
	wake    chan struct{}
	pending []pendingLine
	n       bulkCounts
	scratch []byte

	progressOn atomic.Bool // a progress line is drawn on the terminal
	errors     int         // lines written by errorf; guarded by errMu
}

// maxErrorLines bounds the errors reported line by line.
const maxErrorLines = 1000

type pendingLine struct {
	line int
	c    *queue.Confirm
}

func sendBulk(cfg *gateway.Config, o bulkOptions, stdout, stderr io.Writer) int {
	b := &bulk{o: o, cfg: cfg, stderr: stderr, errMu: new(sync.Mutex), wake: make(chan struct{}, 1)}
	if o.check {
		opts := stanza.Options{
			Mode:           stanza.ModeComponent,
			Domain:         cfg.XMPP.Domain,
			DefaultFrom:    cfg.XMPP.DefaultFrom,
			DefaultType:    cfg.Outbound.DefaultType,
			MaxTextBytes:   cfg.Outbound.MaxTextBytes,
			MaxStanzaBytes: cfg.Outbound.MaxStanzaBytes,
		}
		if cfg.XMPP.Mode == stanza.ModeClient {
			opts.Mode, opts.Account = stanza.ModeClient, cfg.XMPP.JID
		}
		enc, err := stanza.NewEncoder(opts)
		if err != nil {
			fmt.Fprintf(stderr, "xmppgw send: %v\n", err)
			return exitUsage
		}
		b.enc = enc
	}
	ctx, stop := signalContext()
	defer stop()
	dctx, cancel := context.WithTimeout(ctx, o.timeout)
	p, err := queue.DialPublisher(dctx, cfg.AMQP.URL, "xmppgw send", nil)
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "xmppgw send: %v\n", err)
		return exitFailure
	}
	defer p.Close()
	b.pub = p
	b.idBase = fmt.Sprintf("send-%d-", time.Now().UnixNano())

	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		done := b.progress(f)
		defer done()
	}
	stopped := b.readAll(ctx)
	b.drain()

	lines, queued := b.n.lines.Load(), b.n.queued.Load()
	invalid, failed := b.n.invalid.Load(), b.n.failed.Load()
	b.clearProgress()
	fmt.Fprintf(stdout, "queued %d items on %s (%d lines read, %d invalid, %d failed)\n",
		queued, cfg.AMQP.OutQueue, lines, invalid, failed)
	if stopped != nil {
		b.errorf("stopped after line %d: %v; the lines after it were not read", lines, stopped)
		return exitFailure
	}
	if invalid > 0 || failed > 0 {
		return exitFailure
	}
	return exitOK
}

// readAll publishes every line of input; it returns why it stopped early
// (nil at the end of input).
func (b *bulk) readAll(ctx context.Context) error {
	lr := lineReader{r: bufio.NewReaderSize(b.o.in, 64<<10), max: maxLineBytes}
	for {
		if err := ctx.Err(); err != nil {
			return errors.New("interrupted")
		}
		raw, tooLong, err := lr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading standard input: %w", err)
		}
		lineNo := int(b.n.lines.Add(1))
		if tooLong {
			b.invalid(lineNo, fmt.Sprintf("longer than %d bytes", maxLineBytes))
			continue
		}
		line := bytes.TrimSpace(raw)
		if len(line) == 0 {
			continue // blank lines separate nothing: skipped
		}
		if err := b.publish(ctx, lineNo, line); err != nil {
			b.errorf("line %d: not queued: %v", lineNo, err)
			b.n.failed.Add(1)
			return err
		}
		if err := b.settle(false); err != nil {
			return err
		}
		for len(b.pending) >= b.o.window {
			if err := b.waitFront(ctx); err != nil {
				return err
			}
		}
	}
}

func (b *bulk) publish(ctx context.Context, lineNo int, line []byte) error {
	now := time.Now()
	id := b.idBase + strconv.Itoa(lineNo)
	if b.enc != nil {
		var err error
		b.scratch, _, err = b.enc.Append(b.scratch[:0], line, stanza.Meta{MessageID: id, ContentType: "application/json", Timestamp: now})
		if err != nil {
			// An ItemError names fields and sizes, never content.
			b.invalid(lineNo, err.Error())
			return nil
		}
	}
	pctx := ctx
	if b.pub.Blocked() {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, b.o.timeout)
		defer cancel()
	}
	c, err := b.pub.PublishNotify(pctx, b.cfg.AMQP.OutQueue, amqp.Publishing{
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		MessageId:    id,
		Timestamp:    now,
		Body:         line, // the Publisher does not keep it
	}, true, b.wake)
	if err != nil {
		return err
	}
	b.n.published.Add(1)
	b.pending = append(b.pending, pendingLine{line: lineNo, c: c})
	return nil
}

// settle counts the resolved confirms at the front. A connection lost or a
// return (no such queue) ends the run: every later publish would fail too.
// A nack is that line's failure only.
func (b *bulk) settle(final bool) error {
	for len(b.pending) > 0 && b.pending[0].c.Resolved() {
		pl := b.pending[0]
		b.pending = b.pending[1:]
		if err := pl.c.Err(); err != nil {
			b.n.failed.Add(1)
			b.errorf("line %d: not queued: %v", pl.line, err)
			// A return means the queue does not exist: so for every line.
			if (errors.Is(err, queue.ErrClosed) || errors.Is(err, queue.ErrReturned)) && !final {
				return err
			}
			continue
		}
		b.n.queued.Add(1)
	}
	return nil
}

// waitFront waits for the oldest confirm, at most the timeout.
func (b *bulk) waitFront(ctx context.Context) error {
	t := time.NewTimer(b.o.timeout)
	defer t.Stop()
	front := b.pending[0].c
	for !front.Resolved() {
		select {
		case <-front.Done():
		case <-b.wake:
		case <-ctx.Done():
			return errors.New("interrupted")
		case <-t.C:
			return fmt.Errorf("no confirm from the broker in %v", b.o.timeout)
		}
	}
	return b.settle(false)
}

// drain waits for the confirms still outstanding (each at most the
// timeout, with a context of its own: the run's may be over) and reports
// those that never came.
func (b *bulk) drain() {
	for len(b.pending) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), b.o.timeout)
		select {
		case <-b.pending[0].c.Done():
		case <-ctx.Done():
		}
		cancel()
		if !b.pending[0].c.Resolved() {
			for _, pl := range b.pending {
				b.n.failed.Add(1)
				b.errorf("line %d: no confirm from the broker in %v (it may or may not be queued)", pl.line, b.o.timeout)
			}
			b.pending = nil
			return
		}
		_ = b.settle(true)
	}
}

func (b *bulk) invalid(lineNo int, why string) {
	b.n.invalid.Add(1)
	b.errorf("line %d: invalid: %s", lineNo, why)
}

// errorf reports on stderr, over the progress line if one is drawn (the
// next tick draws it again below).
func (b *bulk) errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.errMu.Lock()
	defer b.errMu.Unlock()
	if !strings.HasPrefix(format, "stopped") {
		b.errors++
		if b.errors > maxErrorLines {
			if b.errors > maxErrorLines+1 {
				return
			}
			msg = fmt.Sprintf("more than %d errors: the others are counted, not shown", maxErrorLines)
		}
	}
	if b.progressOn.Load() {
		fmt.Fprint(b.stderr, eraseLine)
	}
	fmt.Fprintf(b.stderr, "xmppgw send: %s\n", msg)
}

// eraseLine moves to the start of the line and erases it (a VT100 escape
// every terminal emulator knows).
const eraseLine = "\r\x1b[K"

// progress draws a progress line on f (a terminal) every 200 ms until the
// returned function is called.
func (b *bulk) progress(f *os.File) func() {
	b.progressOn.Store(true)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
			}
			b.errMu.Lock()
			fmt.Fprintf(f, eraseLine+"read %d lines: %d queued, %d awaiting confirm, %d invalid, %d failed",
				b.n.lines.Load(), b.n.queued.Load(), b.n.published.Load()-b.n.queued.Load()-b.n.failed.Load(),
				b.n.invalid.Load(), b.n.failed.Load())
			b.errMu.Unlock()
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(quit)
			wg.Wait()
			b.clearProgress()
			b.progressOn.Store(false)
		})
	}
}

// clearProgress erases the progress line, if one is drawn.
func (b *bulk) clearProgress() {
	if !b.progressOn.Load() {
		return
	}
	b.errMu.Lock()
	fmt.Fprint(b.stderr, eraseLine)
	b.errMu.Unlock()
}

// lineReader reads lines of at most max bytes.
type lineReader struct {
	r   *bufio.Reader
	buf []byte
	max int
}

// next returns the next line without its line ending. A line over max bytes
// is read to its end and returned empty with tooLong. io.EOF after the last.
func (l *lineReader) next() (line []byte, tooLong bool, err error) {
	l.buf = l.buf[:0]
	read := false
	for {
		chunk, err := l.r.ReadSlice('\n')
		if len(chunk) > 0 {
			read = true
		}
		if !tooLong {
			if len(l.buf)+len(chunk) > l.max+2 { // room for "\r\n"
				tooLong = true
				l.buf = l.buf[:0]
			} else {
				l.buf = append(l.buf, chunk...)
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF:
			if !read {
				return nil, false, io.EOF
			}
		case err != nil:
			return nil, false, err
		}
		if tooLong {
			return nil, true, nil
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(l.buf, []byte("\n")), []byte("\r"))
		if len(line) > l.max {
			return nil, true, nil
		}
		return line, false, nil
	}
}
