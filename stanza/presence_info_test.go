package stanza

import "testing"

// Info tells the gateway about presence items (subscriptions that workers
// answer); messages leave those fields empty.
func TestInfoPresence(t *testing.T) {
	e, err := NewEncoder(Options{Mode: ModeComponent, Domain: "gw.example.org", DefaultFrom: "notices"})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		body, typ, from, to string
	}{
		{`{"kind":"presence","type":"subscribed","target":"Alice@Example.org"}`, "subscribed", "notices@gw.example.org", "alice@example.org"},
		{`{"kind":"presence","target":"alice@example.org","from":"bot"}`, "available", "bot@gw.example.org", "alice@example.org"},
		{`{"stanza":"<presence type='unsubscribed' to='alice@example.org'/>"}`, "unsubscribed", "notices@gw.example.org", "alice@example.org"},
		{`{"stanza":"<presence from='x@gw.example.org' to='alice@example.org'/>"}`, "available", "x@gw.example.org", "alice@example.org"},
		{`{"target":"alice@example.org","text":"hi"}`, "", "", ""},
		{`{"stanza":"<message to='alice@example.org'><body>x</body></message>"}`, "", "", ""},
	} {
		_, info, err := e.Append(nil, []byte(c.body), Meta{MessageID: "m"})
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if info.PresenceType != c.typ || info.From != c.from || info.To != c.to {
			t.Errorf("%d: %+v, want type %q from %q to %q", i, info, c.typ, c.from, c.to)
		}
	}
}
