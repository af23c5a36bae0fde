package gateway

import (
	"math/rand/v2"
	"time"
)

// backoff is capped exponential backoff with full jitter: the n-th wait is
// uniformly random in [base, min(cap, base·2ⁿ)]. Reset after a success.
//
// A connection counts as a success only once it has stayed up for
// stableAfter (see stable): one that dies right after it was made (a
// poison input, a server that accepts and then drops us) keeps backing off
// instead of reconnecting at full speed forever.
type backoff struct {
	base, max time.Duration
	n         int
}

func newBackoff() *backoff { return &backoff{base: 250 * time.Millisecond, max: 30 * time.Second} }

// next returns the next wait and advances.
func (b *backoff) next() time.Duration {
	ceil := b.base << min(b.n, 20)
	if ceil <= 0 || ceil > b.max {
		ceil = b.max
	} else {
		b.n++
	}
	return b.base + rand.N(ceil-b.base+1)
}

func (b *backoff) reset() { b.n = 0 }

// stableAfter is how long a connection must have stayed up to reset the
// backoff of its reconnect loop.
const stableAfter = 10 * time.Second

// stable resets the backoff if a connection that stayed up for d counts as
// a success.
func (b *backoff) stable(d time.Duration) {
	if d >= stableAfter {
		b.reset()
	}
}
