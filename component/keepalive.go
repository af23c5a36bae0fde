package component

import (
	"fmt"
	"time"
)

// keepalive watches the stream until it dies:
//   - the oldest unanswered barrier older than Keepalive ends the session
//     with ErrTimeout (the stream is stuck or half-dead);
//   - a raw write blocked for more than 2×Keepalive ends it too (closing the
//     connection releases the writer; this is our write deadline, enforced
//     here so that mellium's own writes are never hit by a stale deadline);
//   - when no barrier is outstanding and nothing was read for Keepalive, it
//     sends a barrier ping.
//
// The ping is written from a helper goroutine so that the watchdog itself
// never blocks on the output lock.
func (s *Session) keepalive() {
	defer s.wg.Done()
	k := int64(s.cfg.Keepalive)
	tick := time.NewTicker(max(s.cfg.Keepalive/4, 5*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-s.dead:
			return
		case <-tick.C:
		}
		now := s.now()
		if ws := s.writeStart.Load(); ws != 0 && now-ws > 2*k {
			s.kill(fmt.Errorf("%w: a write blocked for %v", ErrTimeout, time.Duration(now-ws).Round(time.Millisecond)))
			return
		}
		if pb := s.pingBusy.Load(); pb != 0 && now-pb > k {
			s.kill(fmt.Errorf("%w: keepalive ping could not be written for %v", ErrTimeout, time.Duration(now-pb).Round(time.Millisecond)))
			return
		}
		s.bmu.Lock()
		oldest, outstanding := s.pending.oldest()
		s.bmu.Unlock()
		if outstanding {
			if now-oldest > k {
				s.kill(fmt.Errorf("%w: no answer to a barrier ping for %v", ErrTimeout, time.Duration(now-oldest).Round(time.Millisecond)))
				return
			}
			continue
		}
		if s.closing.Load() || s.pingBusy.Load() != 0 || now-s.lastRead.Load() < k {
			continue
		}
		s.pingBusy.Store(now)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.pingBusy.Store(0)
			_, _ = s.WriteWithBarrier(nil)
		}()
	}
}
