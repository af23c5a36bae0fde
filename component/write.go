package component

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"mellium.im/xmpp"

	"xmppgw/stanza"
)

// Write writes p, one or more complete stanzas built by package stanza
// (without xmlns, so they inherit the stream's namespace), in one write on the
// connection while holding the session's output lock, so that replies written
// by the read loop cannot interleave. A failed write kills the session.
func (s *Session) Write(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	_, err := s.write(p, false)
	return err
}

// WriteWithBarrier writes p followed by a barrier ping in the same single
// write and returns the barrier's sequence number, which grows by one per
// call. Once Confirmed() >= seq the server has processed everything written
// before the barrier.
func (s *Session) WriteWithBarrier(p []byte) (seq uint64, err error) {
	return s.write(p, true)
}

func (s *Session) write(p []byte, barrier bool) (uint64, error) {
	select {
	case <-s.dead:
		return 0, s.closedErr()
	default:
	}
	tw := s.xs.TokenWriter()
	// Empty mellium's encoder buffer first: nothing it holds may come after
	// our bytes. It fails once the output stream is closed.
	if err := tw.Flush(); err != nil {
		_ = tw.Close()
		if errors.Is(err, xmpp.ErrOutputStreamClosed) {
			return 0, s.closedErr()
		}
		s.kill(fmt.Errorf("component: write: %w", err))
		return 0, s.closedErr()
	}
	buf := p
	var seq uint64
	now := s.now()
	if barrier {
		seq = s.seq + 1
		b := append(s.wbuf[:0], p...)
		b = append(b, s.pingHead...)
		b = strconv.AppendUint(b, seq, 10)
		b = append(b, s.pingTail...)
		s.wbuf, buf = b, b
		s.seq = seq
		// Recorded before the write: the answer may arrive before Write returns.
		s.bmu.Lock()
		s.pending.push(seq, now)
		s.bmu.Unlock()
		s.sent.Store(seq)
	}
	s.writeStart.Store(now)
	_, err := s.conn.Write(buf)
	s.writeStart.Store(0)
	_ = tw.Close()
	if err != nil {
		s.kill(fmt.Errorf("component: write: %w", err))
		return 0, s.closedErr()
	}
	return seq, nil
}

// closedErr is what writers get once the session is dead or closing.
func (s *Session) closedErr() error {
	if err := s.Err(); err != nil && !errors.Is(err, ErrClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return ErrClosed
}

// initPing prepares the barrier ping template. Its bytes come from
// stanza.AppendPing once; each barrier only splices in its sequence number, so
// the hot path does not allocate.
func (s *Session) initPing(from, to string) {
	s.pingTo = to
	const mark = "SEQ"
	tmpl := stanza.AppendPing(nil, from, to, s.idPrefix+mark)
	i := bytes.Index(tmpl, []byte(s.idPrefix+mark))
	if i < 0 {
		panic("component: stanza.AppendPing did not keep the id verbatim")
	}
	i += len(s.idPrefix)
	s.pingHead = tmpl[:i:i]
	s.pingTail = tmpl[i+len(mark):]
}

// barrierSeq parses the seq out of one of our barrier ids.
func (s *Session) barrierSeq(id string) (uint64, bool) {
	rest, ok := strings.CutPrefix(id, s.idPrefix)
	if !ok {
		return 0, false
	}
	seq, err := strconv.ParseUint(rest, 10, 64)
	if err != nil || seq == 0 || seq > s.sent.Load() {
		return 0, false
	}
	return seq, true
}

// confirm records the answer to barrier seq. Answers may come out of order:
// Confirmed keeps the maximum.
func (s *Session) confirm(seq uint64) {
	now := s.now()
	s.bmu.Lock()
	if seq <= s.confirmed.Load() {
		s.bmu.Unlock()
		return
	}
	at := s.pending.popThrough(seq)
	s.confirmed.Store(seq)
	s.bmu.Unlock()
	if at != 0 && s.cfg.OnBarrier != nil {
		s.cfg.OnBarrier(time.Duration(now - at))
	}
	select {
	case s.notify <- struct{}{}:
	default:
	}
}
