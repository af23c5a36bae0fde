package gateway

import (
	"testing"

	"xmppgw/gateway/internal/testkit"
)

var writeConfig = testkit.WriteConfig

const minimal = testkit.MinimalConfig

// testGateway builds a gateway (not running) from a whole YAML config, with
// the given dependencies, and closes its store when the test ends.
func testGateway(t *testing.T, body string, deps Deps) *Gateway {
	t.Helper()
	cfg, err := LoadConfig(writeConfig(t, body))
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.pres.Close)
	return g
}

// quietConfig is minimal with the HTTP listener off and the presence store
// in a temporary directory.
func quietConfig(t *testing.T) string {
	return minimal + "http:\n  listen: \"\"\npresence:\n  store: " + t.TempDir() + "/p.db\n"
}
