package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The PostgreSQL of the tests: the machine's server (trust auth, database
// test), shared with everything else, so every test works in a schema of
// its own.

// PGServer is the URL of the tests' PostgreSQL; XMPPGW_TEST_PG overrides
// it.
func PGServer() string {
	if s := os.Getenv("XMPPGW_TEST_PG"); s != "" {
		return s
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// PGSchemaURL creates a schema of the test's own, dropped when the test
// ends, and returns a URL whose search_path is that schema.
func PGSchemaURL(t testing.TB) string {
	t.Helper()
	var r [6]byte
	_, _ = rand.Read(r[:])
	schema := "xmppgw_test_" + hex.EncodeToString(r[:])
	PGExec(t, PGServer(), "CREATE SCHEMA "+schema)
	t.Cleanup(func() { PGExec(t, PGServer(), "DROP SCHEMA "+schema+" CASCADE") })
	return PGServer() + "&search_path=" + schema
}

// PGExec runs sql on a connection of its own to url.
func PGExec(t testing.TB, url, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("harness: PostgreSQL of the tests: %v", err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("harness: %s: %v", sql, err)
	}
}

// PGInt returns the integer that sql gives on url.
func PGInt(t testing.TB, url, sql string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("harness: PostgreSQL of the tests: %v", err)
	}
	defer c.Close(context.Background())
	var n int
	if err := c.QueryRow(ctx, sql).Scan(&n); err != nil {
		t.Fatalf("harness: %s: %v", sql, err)
	}
	return n
}
