// Package testkit holds what the gateway's tests share: one polling helper
// and a logger that writes to the test's log.
package testkit

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

// Eventually polls cond every millisecond until it holds, failing the test
// after 5 s with what in the message.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Logger is a debug logger whose lines go to t.Log, so that they show only
// for a failing test (or with -v).
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
