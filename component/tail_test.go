package component

import (
	"bytes"
	"net"
	"strings"
	"testing"
)

func TestLastStreamError(t *testing.T) {
	tests := [...]struct{ in, want string }{
		0: {`<message/><stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`, "not-well-formed"},
		1: {`<stream:error>` + "\n" + `<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Stanza too large</text></stream:error>`, "policy-violation"},
		2: {`<stream:error xmlns:stream='http://etherx.jabber.org/streams'><system-shutdown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`, "system-shutdown"},
		3: {`<message><body>hi</body></message>`, ""},
		4: {`<stream:errorx><a/></stream:errorx>`, ""},
		5: {`<stream:error>`, ""},
		6: {`<stream:error></stream:error>`, ""},
		7: {`<stream:error><Bad/></stream:error>`, ""},
	}
	for i, tc := range tests {
		if got := lastStreamError([]byte(tc.in)); got != tc.want {
			t.Errorf("%d: %q, want %q", i, got, tc.want)
		}
	}
}

func TestTailConnKeepsTheLastBytes(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	tc := newTailConn(a)
	msg := strings.Repeat("<message><body>x</body></message>", 200) +
		"<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
	go func() {
		// Small and large writes, as the server's would be.
		for i := 0; i < len(msg); {
			n := min(len(msg)-i, 1+i%3000)
			_, _ = b.Write([]byte(msg[i : i+n]))
			i += n
		}
		_ = b.Close()
	}()
	buf := make([]byte, 4096)
	var got bytes.Buffer
	for {
		n, err := tc.Read(buf[:1+got.Len()%4096])
		got.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if got.String() != msg {
		t.Fatal("tailConn changed the bytes read")
	}
	if len(tc.tail) > 2*tailSize || !strings.HasSuffix(msg, string(tc.tail)) {
		t.Fatalf("tail of %d bytes is not the end of the stream", len(tc.tail))
	}
	if c := tc.streamError(); c != "not-well-formed" {
		t.Fatalf("streamError() = %q", c)
	}
}

// The server sends a stream error and closes at once: mellium's echo of the
// error fails, and the session must still tell which stream error ended it.
func TestStreamErrorConditionAfterServerClose(t *testing.T) {
	s, f := pipeSession(t, testConfig(t), newRecorder())
	f.send(`<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`)
	_ = f.conn.Close()
	<-s.Done()
	if c := s.StreamErrorCondition(); c != "not-well-formed" {
		t.Fatalf("StreamErrorCondition() = %q (Err: %v)", c, s.Err())
	}
	t.Logf("session error: %v", s.Err())
}
