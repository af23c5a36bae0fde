package presence

import (
	"path/filepath"
	"testing"
	"time"

	"xmppgw/gateway/internal/testkit"
	"xmppgw/integration/harness"
)

// The tests' PostgreSQL and a schema of each test's own (integration/harness).
var (
	pgTestServer = harness.PGServer
	pgTestSchema = harness.PGSchemaURL
)

// pgAdmin runs sql on a connection of its own.
func pgAdmin(t testing.TB, sql string, args ...any) {
	t.Helper()
	harness.PGExec(t, harness.PGServer(), sql, args...)
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
