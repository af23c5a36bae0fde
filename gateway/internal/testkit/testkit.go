// Package testkit holds what the gateway's tests share: one polling helper,
// a logger that writes to the test's log, and config files.
package testkit

import (
	"log/slog"
	"os"
	"path/filepath"
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

// MinimalConfig is the smallest valid component-mode configuration.
const MinimalConfig = "xmpp:\n  domain: gw.example.org\n  secret: s3cr3t-value\n"

// WriteConfig writes body to a config file in a temporary directory and
// returns its path.
func WriteConfig(t testing.TB, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "xmppgw.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
