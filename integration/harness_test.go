package integration

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"

	"xmppgw/integration/harness"
)

// recv waits for the next message of c.
func recv(t *testing.T, c *harness.Client, timeout time.Duration) harness.Msg {
	t.Helper()
	select {
	case m, ok := <-c.Messages():
		if !ok {
			t.Fatalf("stream of %s ended: %v", c.JID, c.Err())
		}
		return m
	case <-time.After(timeout):
		t.Fatalf("%s received no message within %s", c.JID, timeout)
	}
	return harness.Msg{}
}

func TestHarnessClientToClient(t *testing.T) {
	t.Parallel()
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"a": "pa", "b": "pb"}})
	a := harness.DialClient(t, p, "a", "pa")
	b := harness.DialClient(t, p, "b", "pb")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if err := a.Send(ctx, p.JID("b"), "hello <b> & 'c'"); err != nil {
		t.Fatal(err)
	}
	m := recv(t, b, 5*time.Second)
	if m.Body != "hello <b> & 'c'" || m.Type != "chat" || !strings.HasPrefix(m.From, p.JID("a")+"/") {
		t.Errorf("got %+v", m)
	}

	// Raw stanzas with a subject, a thread and a XEP-0335 payload.
	raw := fmt.Sprintf(`<message to='%s' type='normal' id='x1'><subject>s</subject><thread>th</thread>`+
		`<body>b</body><json xmlns='urn:xmpp:json:0'>{"k":[1,"&lt;"]}</json></message>`, p.JID("b"))
	if err := a.SendRaw(ctx, raw); err != nil {
		t.Fatal(err)
	}
	m = recv(t, b, 5*time.Second)
	if m.ID != "x1" || m.Subject != "s" || m.Thread != "th" || m.Body != "b" || !m.HasJSON || m.JSON != `{"k":[1,"<"]}` || m.Type != "normal" {
		t.Errorf("got %+v", m)
	}
	if !strings.Contains(m.Raw, `<json xmlns="urn:xmpp:json:0">`) {
		t.Errorf("raw: %s", m.Raw)
	}

	// IQs: the server answers ping and version; an unknown one is an error.
	reply, err := a.SendIQ(ctx, fmt.Sprintf(`<iq type='get' to='%s'><query xmlns='jabber:iq:version'/></iq>`, p.Domain))
	if err != nil || harness.IQType(reply) != "result" || !strings.Contains(reply, "Prosody") {
		t.Errorf("version: %v %s", err, reply)
	}
	reply, err = a.SendIQ(ctx, fmt.Sprintf(`<iq type='get' id='u1' to='%s'><nope xmlns='urn:example:nope'/></iq>`, p.Domain))
	if err != nil || harness.IQType(reply) != "error" || !strings.Contains(reply, "service-unavailable") {
		t.Errorf("unknown iq: %v %s", err, reply)
	}
}

func TestHarnessComponentToClient(t *testing.T) {
	t.Parallel()
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"b": "pb"}})
	b := harness.DialClient(t, p, "b", "pb")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := net.Dial("tcp", p.ComponentAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s, err := component.NewSession(ctx, jid.MustParse(p.ComponentDomain), []byte(p.Secret), conn)
	if err != nil {
		t.Fatalf("component handshake: %v", err)
	}
	defer s.Close()
	w := s.TokenWriter()
	_, err = fmt.Fprintf(conn, `<message from='notices@%s' to='%s' type='chat' id='c1'><body>from the component</body></message>`,
		p.ComponentDomain, p.JID("b"))
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	m := recv(t, b, 5*time.Second)
	if m.Body != "from the component" || m.From != "notices@"+p.ComponentDomain || m.ID != "c1" {
		t.Errorf("got %+v", m)
	}

	// A wrong secret is refused.
	conn2, err := net.Dial("tcp", p.ComponentAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	if _, err := component.NewSession(ctx, jid.MustParse(p.ComponentDomain), []byte("wrong"), conn2); err == nil {
		t.Error("handshake with a wrong secret succeeded")
	}
}

func TestHarnessRestartKeepsUsersAndOffline(t *testing.T) {
	t.Parallel()
	p := harness.StartProsody(t, harness.ProsodyOptions{Users: map[string]string{"a": "pa", "b": "pb"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	a := harness.DialClient(t, p, "a", "pa")
	const n = 50
	for i := range n {
		if err := a.Send(ctx, p.JID("b"), fmt.Sprintf("offline %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// A ping round trip: the server has stored every message.
	if _, err := a.SendIQ(ctx, fmt.Sprintf(`<iq type='get' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>`, p.Domain)); err != nil {
		t.Fatal(err)
	}

	p.Stop(t)
	select {
	case <-a.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("client did not notice the server stopping")
	}
	if p.Running() {
		t.Fatal("still running after Stop")
	}
	p.Start(t)

	b := harness.DialClient(t, p, "b", "pb")
	for i := range n {
		m := recv(t, b, 10*time.Second)
		if want := fmt.Sprintf("offline %d", i); m.Body != want || !m.Delayed {
			t.Fatalf("message %d: got %+v, want %q delayed", i, m, want)
		}
	}

	p.Register(t, "c", "pc") // while running
	harness.DialClient(t, p, "c", "pc")

	// A crash (SIGKILL) leaves a stale pidfile; Start copes.
	p.Kill(t)
	p.Start(t)
	harness.DialClient(t, p, "c", "pc")
}
