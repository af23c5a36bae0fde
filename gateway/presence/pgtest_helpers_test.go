package presence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"xmppgw/gateway/internal/testkit"
)

// pgTestServer is the PostgreSQL of the tests (trust auth, database test);
// XMPPGW_TEST_PG overrides it.
func pgTestServer() string {
	if s := os.Getenv("XMPPGW_TEST_PG"); s != "" {
		return s
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// pgTestSchema creates a schema of its own for the test (dropped when it
// ends) and returns a store URL whose search_path is that schema.
func pgTestSchema(t testing.TB) string {
	t.Helper()
	var r [6]byte
	_, _ = rand.Read(r[:])
	schema := "xmppgw_test_" + hex.EncodeToString(r[:])
	pgAdmin(t, "CREATE SCHEMA "+schema)
	t.Cleanup(func() { pgAdmin(t, "DROP SCHEMA "+schema+" CASCADE") })
	return pgTestServer() + "&search_path=" + schema
}

// pgAdmin runs sql on a connection of its own.
func pgAdmin(t testing.TB, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, pgTestServer())
	if err != nil {
		t.Fatalf("PostgreSQL of the tests (%s): %v", pgTestServer(), err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// testPGOptions keep the tests quick.
var testPGOptions = pgOptions{connectTimeout: 5 * time.Second, opTimeout: 2 * time.Second, minBackoff: 20 * time.Millisecond, maxBackoff: 200 * time.Millisecond}

// storeKinds are the store implementations every behaviour test runs on.
var storeKinds = []string{"bolt", "postgres"}

// newStoreLocation returns a fresh location of a store of kind.
func newStoreLocation(t testing.TB, kind string) string {
	t.Helper()
	if kind == "postgres" {
		return pgTestSchema(t)
	}
	return filepath.Join(t.TempDir(), "xmppgw.db")
}

// openKind opens the store of kind at loc for the component tDomain; the
// caller closes it.
func openKind(t testing.TB, kind, loc string) store {
	t.Helper()
	if kind == "postgres" {
		st, err := openPG(loc, tDomain, testkit.Logger(t), testPGOptions)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st, err := openBolt(loc, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// harnessStore is the kind of store testService opens ("" is bolt).
var harnessStore string

// useStore makes the services of the test use stores of kind.
func useStore(t *testing.T, kind string) {
	old := harnessStore
	harnessStore = kind
	t.Cleanup(func() { harnessStore = old })
}
