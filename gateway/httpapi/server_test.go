package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"xmppgw/gateway/config"
	"xmppgw/gateway/internal/testkit"
	"xmppgw/gateway/metrics"
	"xmppgw/gateway/presence"
)

const tAlice = "alice@example.org"

// fakePresence answers Lookup from a map, like presence.Service for
// unknown contacts otherwise.
type fakePresence map[string]presence.Answer

func (f fakePresence) Lookup(contact string) presence.Answer {
	if a, ok := f[contact]; ok {
		return a
	}
	return presence.Answer{JID: contact, Resources: []presence.Resource{}}
}

func TestPresenceEndpoint(t *testing.T) {
	api := testServer(t, minimal, "", fakePresence{tAlice: {JID: tAlice, Online: true,
		Resources: []presence.Resource{{Resource: "phone", Show: "dnd", Status: "busy"}}}})
	mux := http.NewServeMux()
	api.routesPresence(mux, func() error { return nil })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return resp.StatusCode, b.String()
	}
	for i, c := range []struct {
		path   string
		code   int
		online bool
	}{
		{"/v1/presence/alice@example.org", 200, true},
		{"/v1/presence/Alice@Example.org", 200, true},         // normalised
		{"/v1/presence/alice@example.org%2Fphone", 200, true}, // a full JID asks for its bare one
		{"/v1/presence/bob@example.org", 200, false},          // unknown is just offline
		{"/v1/presence/a@b@c", 400, false},
		{"/v1/presence/@example.org", 400, false},
	} {
		code, body := get(c.path)
		if code != c.code {
			t.Errorf("%d: %s: %d %s", i, c.path, code, body)
			continue
		}
		if code != 200 {
			continue
		}
		var ans presence.Answer
		if err := json.Unmarshal([]byte(body), &ans); err != nil {
			t.Fatalf("%d: %v: %s", i, err, body)
		}
		if ans.Online != c.online {
			t.Errorf("%d: %s: %s", i, c.path, body)
		}
		if c.online && (ans.JID != tAlice || len(ans.Resources) != 1 || ans.Resources[0].Show != "dnd" ||
			ans.Resources[0].Status != "busy") {
			t.Errorf("%d: %s", i, body)
		}
		if !c.online && ans.Resources == nil {
			t.Errorf("%d: resources should be [] not null: %s", i, body)
		}
	}
}

const minimal = testkit.MinimalConfig

// testServer is the server of a gateway that is not running (both links
// down) with the config body.
func testServer(t *testing.T, body, version string, p Presence) *Server {
	t.Helper()
	cfg, err := config.Load(testkit.WriteConfig(t, body))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	return New(Options{
		Registry: reg,
		Metrics:  metrics.New(reg),
		Version:  version,
		Config:   func() *config.Config { return cfg },
		Links:    func() (bool, bool) { return false, false },
		Presence: p,
	})
}
