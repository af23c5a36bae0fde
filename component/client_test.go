package component

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"xmppgw/stanza"
)

// streamStart reads tokens up to the next start element (a stream header).
func (f *fakeServer) streamStart() (xml.StartElement, bool) {
	for {
		tok, err := f.dec.Token()
		if err != nil {
			return xml.StartElement{}, false
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se, true
		}
	}
}

const c2sHeader = `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0' from='example.org' id='c2s1'>`

// c2sNegotiate plays a server offering PLAIN (no TLS) and resource binding.
func (f *fakeServer) c2sNegotiate(password string) bool {
	f.t.Helper()
	if se, ok := f.streamStart(); !ok || se.Name.Local != "stream" {
		f.t.Errorf("want stream header, got %+v", se)
		return false
	}
	f.send(c2sHeader + `<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>`)
	auth, ok := f.next()
	if !ok || auth.XMLName.Local != "auth" {
		f.t.Errorf("want auth, got %+v", auth)
		return false
	}
	creds, _ := base64.StdEncoding.DecodeString(auth.Inner)
	if string(creds) != "\x00bot\x00"+password {
		f.send(`<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure></stream:stream>`)
		return false
	}
	f.send(`<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>`)
	if se, ok := f.streamStart(); !ok || se.Name.Local != "stream" {
		f.t.Errorf("want restarted stream header, got %+v", se)
		return false
	}
	f.send(c2sHeader + `<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><required/></bind></stream:features>`)
	bind, ok := f.next()
	if !ok || bind.XMLName.Local != "iq" || !strings.Contains(bind.Inner, "<resource>gw</resource>") {
		f.t.Errorf("want bind iq for resource gw, got %+v", bind)
		return false
	}
	f.raw.mu.Lock()
	f.raw.on = true
	f.raw.mu.Unlock()
	f.send(`<iq type='result' id='` + bind.attr("id") + `'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>bot@example.org/gw</jid></bind></iq>`)
	return true
}

func clientConfig(t *testing.T) Config {
	cfg := testConfig(t)
	cfg.Mode = stanza.ModeClient
	cfg.JID = "bot@example.org/gw"
	cfg.Password = "pw"
	cfg.TLS = "disabled"
	return cfg
}

func TestClientMode(t *testing.T) {
	// A recorder without roster support: nothing comes before the
	// initial presence.
	s, f, before := clientSession(t, newRecorder())
	if len(before) != 0 {
		t.Fatalf("elements before the initial presence: %+v", before)
	}
	if got := s.Addr().String(); got != "bot@example.org/gw" {
		t.Errorf("Addr() = %q", got)
	}
	go func() {
		if _, err := s.WriteWithBarrier(nil); err != nil {
			t.Error(err)
		}
	}()
	ping, ok := f.next()
	if !ok || ping.attr("from") != "bot@example.org/gw" || ping.attr("to") != "example.org" {
		t.Fatalf("ping = %+v", ping)
	}
	// Answers from anyone but the server the ping went to are forgeries.
	f.send(`<iq type='result' id='` + ping.attr("id") + `' from='mallory@example.org/x' to='bot@example.org/gw'/>`)
	f.send(`<iq type='result' id='` + ping.attr("id") + `' from='bot@example.org/other' to='bot@example.org/gw'/>`)
	f.send(`<iq type='get' id='v0' from='alice@example.org/x' to='bot@example.org/gw'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if e, ok := f.next(); !ok || e.attr("id") != "v0" {
		t.Fatalf("ping reply = %+v", e)
	}
	if got := s.Confirmed(); got != 0 {
		t.Fatalf("a forged answer confirmed barrier %d", got)
	}
	f.send(`<iq type='result' id='` + ping.attr("id") + `' from='example.org' to='bot@example.org/gw'/>`)
	select {
	case <-s.Notify():
	case <-time.After(5 * time.Second):
		t.Fatal("barrier not confirmed")
	}
	// IQs are answered in client mode too.
	f.send(`<iq type='get' id='v1' from='alice@example.org/x' to='bot@example.org/gw'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	if e, ok := f.next(); !ok || e.attr("id") != "v1" || !strings.Contains(e.Inner, `category="client"`) {
		t.Errorf("disco reply = %+v", e)
	}
}

func TestClientModeAuthFailure(t *testing.T) {
	c, srv := net.Pipe()
	defer srv.Close()
	defer c.Close()
	f := newFakeServer(t, srv)
	go func() {
		f.c2sNegotiate("other")
		_ = srv.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := open(ctx, clientConfig(t), newRecorder(), c)
	if err == nil {
		s.kill(nil)
		<-s.Done()
		t.Fatal("open succeeded")
	}
	if !errors.Is(err, ErrAuth) || strings.Contains(err.Error(), "pw)") {
		t.Errorf("err = %v, want ErrAuth without the password", err)
	}
}
