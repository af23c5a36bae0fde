package e2e

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestSetLatency: nearest-rank percentiles over the items that arrived
// (0 = did not arrive).
func TestSetLatency(t *testing.T) {
	lat := make([]atomic.Int64, 110)
	for i := 0; i < 100; i++ {
		lat[10+i].Store(int64(100-i) * int64(time.Millisecond)) // 100..1 ms, shuffled order does not matter
	}
	var r Result
	r.setLatency(lat)
	if r.LatItems != 100 || r.LatP50 != 50 || r.LatP99 != 99 || r.LatMax != 100 {
		t.Errorf("items %d p50 %v p99 %v max %v, want 100, 50, 99, 100", r.LatItems, r.LatP50, r.LatP99, r.LatMax)
	}
	var none Result
	none.setLatency(make([]atomic.Int64, 3))
	if none.LatItems != 0 || none.LatP99 != 0 {
		t.Errorf("nothing arrived: %+v", none)
	}
}

// TestParsePrefetch reads amqp.prefetch from check-config's output, not a
// key of the same name in another section.
func TestParsePrefetch(t *testing.T) {
	out := "# c.yaml: valid\namqp:\n    dead_letter_queue: d\n    prefetch: 1000\n    queue_type: classic\nhttp:\n    listen: x\n"
	if n, err := parsePrefetch([]byte(out)); err != nil || n != 1000 {
		t.Errorf("got %d, %v; want 1000", n, err)
	}
	other := "amqp:\n    url: x\nmuc:\n    prefetch: 7\n"
	if n, err := parsePrefetch([]byte(other)); err == nil {
		t.Errorf("got %d from another section", n)
	}
}
