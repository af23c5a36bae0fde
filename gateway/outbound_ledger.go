package gateway

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
)

// ledger keeps, in a small file beside the presence store, the redelivered
// item that is alone in flight (outbound.suspect) with its count of
// deliveries. On a classic queue the gateway counts deliveries in memory;
// an item that kills the process (the kernel's OOM killer, say) while it is
// in flight would be counted anew after each restart, redelivered and
// written forever. With the ledger the count goes on across restarts, and
// amqp.delivery_limit sets the item aside. Only the one item alone in
// flight is kept: an item that crashes the process is that one, since after
// a crash everything comes back redelivered and goes out one at a time.
//
// The record is 16 bytes written in place without fsync: it must survive
// the process, not the machine. A failing file only costs the bound across
// restarts; the error is logged once.
type ledger struct {
	mu     sync.Mutex
	f      *os.File
	log    *slog.Logger
	warned bool

	key uint64 // the record: 0 when none
	n   int
}

// ledgerPath is where the ledger of a gateway whose presence store is at
// store lives: "" (no ledger) for a PostgreSQL store, shared by several
// gateways, which should use quorum queues anyway.
func ledgerPath(store string, isURL bool) string {
	if store == "" || isURL {
		return ""
	}
	return store + ".redelivery"
}

// openLedger opens (or creates) the ledger at path and reads its record.
// A nil ledger (path "") does nothing.
func openLedger(path string, log *slog.Logger) (*ledger, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	l := &ledger{f: f, log: log}
	var b [16]byte
	switch _, err := f.ReadAt(b[:], 0); {
	case err == nil:
		l.key = binary.LittleEndian.Uint64(b[:8])
		l.n = int(min(binary.LittleEndian.Uint64(b[8:]), 1<<30))
	case errors.Is(err, io.EOF): // new, or cut short: no record
	default:
		f.Close()
		return nil, err
	}
	return l, nil
}

// deliveries is the count recorded for key, 0 if the record is another's.
func (l *ledger) deliveries(key uint64) int {
	if l == nil || key == 0 {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.key != key {
		return 0
	}
	return l.n
}

// record makes key, delivered n times, the record.
func (l *ledger) record(key uint64, n int) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.key == key && l.n == n {
		return
	}
	l.key, l.n = key, n
	l.write()
}

// clear drops the record if it is key's (the item was acked or set aside).
func (l *ledger) clear(key uint64) {
	if l == nil || key == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.key != key {
		return
	}
	l.key, l.n = 0, 0
	l.write()
}

func (l *ledger) write() {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], l.key)
	binary.LittleEndian.PutUint64(b[8:], uint64(l.n))
	if _, err := l.f.WriteAt(b[:], 0); err != nil && !l.warned {
		l.warned = true
		l.log.Warn("cannot write the redelivery ledger: an item that crashes the process will not be bounded across restarts", "file", l.f.Name(), "err", err)
	}
}

func (l *ledger) close() {
	if l != nil {
		l.f.Close()
	}
}
