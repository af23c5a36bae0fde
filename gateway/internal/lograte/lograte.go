// Package lograte keeps floods out of the log: a Sampler lets one line a
// second through, so that a flood of refusals or drops does not flood the
// log too (the metrics count every one).
package lograte

import (
	"sync/atomic"
	"time"
)

// Sampler allows one log line per second. The zero value is ready.
type Sampler struct{ last atomic.Int64 }

// OK reports whether a line may be logged now, and if so counts it.
func (s *Sampler) OK() bool {
	now := time.Now().UnixNano()
	last := s.last.Load()
	return now-last >= int64(time.Second) && s.last.CompareAndSwap(last, now)
}
