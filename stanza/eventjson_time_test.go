package stanza

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestAppendTimeMatchesFormat(t *testing.T) {
	ts := []time.Time{
		time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC),
		time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 29, 2, 30, 0, 999, time.FixedZone("x", 5*3600+1800)),
		time.Now(),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		ts = append(ts, time.Unix(r.Int64N(1<<38)-1<<37, r.Int64N(1e9)))
	}
	for _, tm := range ts {
		want := string(tm.UTC().AppendFormat(nil, timeLayout))
		if got := string(appendTime(nil, tm)); got != want {
			t.Fatalf("appendTime(%v) = %q, want %q", tm, got, want)
		}
	}
}
