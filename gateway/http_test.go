package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"xmppgw/gateway/internal/testkit"
	"xmppgw/gateway/presence"
	"xmppgw/stanza"
)

const (
	tLocal  = "notices@gw.example.org"
	tAlice  = "alice@example.org"
	tAliceR = "alice@example.org/phone"
)

// discardWriter is a session that takes every write and confirms every
// barrier at once.
type discardWriter struct{}

func (discardWriter) Write([]byte) error                      { return nil }
func (discardWriter) WriteWithBarrier([]byte) (uint64, error) { return 1, nil }
func (discardWriter) Confirmed() uint64                       { return 1 }
func (discardWriter) Notify() <-chan struct{}                 { return nil }

func TestPresenceEndpoint(t *testing.T) {
	g := testGateway(t, quietConfig(t), Deps{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.pres.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for _, pr := range []stanza.Presence{
		{Type: "subscribe", From: tAlice, To: tLocal},
		{Type: "subscribed", From: tAlice, To: tLocal},
		{Type: "available", From: tAliceR, To: tLocal, Show: "dnd", Status: "busy"},
	} {
		g.pres.Offer(discardWriter{}, &pr)
	}
	testkit.Eventually(t, "tracked presence", func() bool { return g.pres.Lookup(tAlice).Online })
	mux := http.NewServeMux()
	g.routesPresence(mux)
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
