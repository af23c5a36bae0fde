package component

import (
	"io"
	"net"
	"testing"
)

// TestStreamHeader: the replayed header keeps the server's namespace
// declarations (escaped) and nothing else; the name is the one its end
// tag repeats.
func TestStreamHeader(t *testing.T) {
	tests := [...]struct{ sent, header, name string }{
		0: {`<?xml version='1.0'?>` + "\n" + `<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xml:lang='en' id='x' from='gw' xmlns='jabber:component:accept' version='1.0'><handshake/>`,
			`<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:component:accept'>`, "stream:stream"},
		1: {`<s:stream xmlns:s="http://etherx.jabber.org/streams" xmlns="jabber:component:accept" xmlns:x="a'b&amp;"  >`,
			`<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:component:accept' xmlns:x='a&#39;b&amp;'>`, "s:stream"},
	}
	for i, tc := range tests {
		a, b := net.Pipe()
		go func() {
			_, _ = io.WriteString(b, tc.sent)
			_ = b.Close()
		}()
		c := newBufConn(a)
		_, _ = io.ReadAll(c)
		_ = a.Close()
		header, name, err := c.streamHeader()
		if err != nil || string(header) != tc.header || string(name) != tc.name {
			t.Errorf("%d: %q %q %v", i, header, name, err)
		}
		if c.recording || c.rec != nil {
			t.Errorf("%d: still recording", i)
		}
	}
	c := newBufConn(nil)
	c.rec = []byte(`<message/>`)
	if _, _, err := c.streamHeader(); err == nil {
		t.Error("a first element other than the stream header accepted")
	}
}
