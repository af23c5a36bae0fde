package component

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"xmppgw/stanza"
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopProsody() // before the leak check: its output copiers are goroutines
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func TestHandshake(t *testing.T) {
	s, _ := pipeSession(t, testConfig(t), newRecorder())
	if got := s.Addr().String(); got != testDomain {
		t.Errorf("Addr() = %q, want %q", got, testDomain)
	}
	if s.Err() != nil {
		t.Errorf("Err() = %v on a live session", s.Err())
	}
}

func TestHandshakeErrors(t *testing.T) {
	tests := [...]struct {
		secret string
		answer string
		want   error
	}{
		0: {secret: "wrong", want: ErrAuth},
		1: {secret: testSecret, answer: `<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`, want: ErrHostUnknown},
		2: {secret: testSecret, answer: `<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>Component already connected</text></stream:error></stream:stream>`, want: ErrConflict},
	}
	for i, tc := range tests {
		t.Run(string(rune('0'+i)), func(t *testing.T) {
			c, srv := net.Pipe()
			defer srv.Close()
			defer c.Close()
			f := newFakeServer(t, srv)
			go func() {
				f.handshake(tc.answer)
				_, _ = io.Copy(io.Discard, srv)
			}()
			cfg := testConfig(t)
			cfg.Secret = tc.secret
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			s, err := open(ctx, cfg, newRecorder(), c)
			if err == nil {
				s.kill(nil)
				<-s.Done()
				t.Fatal("open succeeded")
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), testDomain) {
				t.Errorf("error %q does not name the domain", err)
			}
			if strings.Contains(err.Error(), tc.secret) {
				t.Errorf("error %q leaks the secret", err)
			}
		})
	}
}

func TestWriteAndBarrier(t *testing.T) {
	var rtts []time.Duration
	cfg := testConfig(t)
	cfg.OnBarrier = func(d time.Duration) { rtts = append(rtts, d) } // read goroutine only
	s, f := pipeSession(t, cfg, newRecorder())

	m1 := `<message to='a@example.org' from='n@gw.example.org' id='m1' type='chat'><body>a &amp; b</body></message>`
	m2 := `<message to='b@example.org' from='n@gw.example.org' id='m2' type='chat'><body>x</body></message>`
	errc := make(chan error, 1)
	go func() {
		if err := s.Write([]byte(m1)); err != nil {
			errc <- err
			return
		}
		seq, err := s.WriteWithBarrier([]byte(m2))
		if err == nil && seq != 1 {
			t.Errorf("seq = %d, want 1", seq)
		}
		errc <- err
	}()
	for range 2 {
		if e, ok := f.next(); !ok || e.XMLName.Local != "message" {
			t.Fatalf("want message, got %+v", e)
		}
	}
	ping, ok := f.next()
	if !ok || ping.XMLName.Local != "iq" {
		t.Fatalf("want ping iq, got %+v", ping)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	want := m1 + m2 + string(stanza.AppendPing(nil, testDomain, testDomain, s.idPrefix+"1"))
	if got := f.raw.String(); got != want {
		t.Errorf("wire bytes:\n got %s\nwant %s", got, want)
	}
	if ping.attr("from") != testDomain || ping.attr("to") != testDomain || ping.attr("type") != "get" {
		t.Errorf("ping addressed wrongly: %+v", ping)
	}
	if s.Confirmed() != 0 {
		t.Fatalf("Confirmed() = %d before any answer", s.Confirmed())
	}
	// Prosody routes the ping back to us, unchanged.
	f.send(`<iq type='get' id='` + ping.attr("id") + `' from='` + testDomain + `' to='` + testDomain + `'><ping xmlns='urn:xmpp:ping'/></iq>`)
	select {
	case <-s.Notify():
	case <-time.After(5 * time.Second):
		t.Fatal("no notification")
	}
	if s.Confirmed() != 1 {
		t.Errorf("Confirmed() = %d, want 1", s.Confirmed())
	}
	if len(rtts) != 1 || rtts[0] <= 0 {
		t.Errorf("OnBarrier calls: %v", rtts)
	}
}

func TestBarrierOutOfOrder(t *testing.T) {
	s, f := pipeSession(t, testConfig(t), newRecorder())
	ids := make([]string, 4)
	go func() {
		for range 3 {
			if _, err := s.WriteWithBarrier(nil); err != nil {
				t.Error(err)
			}
		}
	}()
	for i := 1; i <= 3; i++ {
		e, ok := f.next()
		if !ok {
			t.Fatal("stream ended")
		}
		ids[i] = e.attr("id")
	}
	steps := [...]struct {
		reply    string
		want     uint64
		answered bool // the reply is a query we answer
	}{
		0: {`<iq type='result' id='` + ids[2] + `' from='gw.example.org' to='gw.example.org'/>`, 2, false},
		1: {`<iq type='error' id='` + ids[1] + `' from='gw.example.org' to='gw.example.org'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`, 2, false},
		// Not ours: another session's nonce, and a seq never sent.
		2: {`<iq type='result' id='xb-000000000000-3' to='gw.example.org'/>`, 2, false},
		3: {`<iq type='result' id='` + s.idPrefix + `99' to='gw.example.org'/>`, 2, false},
		// Forged: the right id from an entity the barrier was not sent to
		// (a client, the server's own host, another component).
		4: {`<iq type='result' id='` + ids[3] + `' from='mallory@example.org/x' to='gw.example.org'/>`, 2, false},
		5: {`<iq type='result' id='` + ids[3] + `' from='example.org' to='gw.example.org'/>`, 2, false},
		6: {`<iq type='error' id='` + ids[3] + `' from='other.example.org' to='gw.example.org'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`, 2, false},
		7: {`<iq type='get' id='` + ids[3] + `' from='mallory@example.org/x' to='gw.example.org'><ping xmlns='urn:xmpp:ping'/></iq>`, 2, true},
		8: {`<iq type='error' id='` + ids[3] + `' to='gw.example.org'><error type='cancel'><remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`, 3, false},
	}
	for i, st := range steps {
		f.send(st.reply)
		if st.answered {
			// A forged get is answered as any ping would be.
			if e, ok := f.next(); !ok || e.attr("type") != "result" || e.attr("to") != "mallory@example.org/x" {
				t.Fatalf("%d: want an answer to the query, got %+v", i, e)
			}
		}
		// A disco query after each reply tells us the reply was processed.
		f.send(`<iq type='get' id='sync' from='example.org' to='gw.example.org'><ping xmlns='urn:xmpp:ping'/></iq>`)
		if e, ok := f.next(); !ok || e.attr("id") != "sync" {
			t.Fatalf("%d: want sync reply, got %+v", i, e)
		}
		if got := s.Confirmed(); got != st.want {
			t.Errorf("%d: Confirmed() = %d, want %d", i, got, st.want)
		}
	}
}

func TestKeepalive(t *testing.T) {
	cfg := testConfig(t)
	cfg.Keepalive = 100 * time.Millisecond
	s, f := pipeSession(t, cfg, newRecorder())
	// Idle: the session pings; answer the first ping, then go silent.
	e, ok := f.next()
	if !ok || e.XMLName.Local != "iq" || !strings.HasPrefix(e.attr("id"), s.idPrefix) {
		t.Fatalf("want keepalive ping, got %+v", e)
	}
	f.send(`<iq type='result' id='` + e.attr("id") + `' from='gw.example.org' to='gw.example.org'/>`)
	go func() { _, _ = io.Copy(io.Discard, f.conn) }()
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session survived unanswered pings")
	}
	if !errors.Is(s.Err(), ErrTimeout) {
		t.Errorf("Err() = %v, want ErrTimeout", s.Err())
	}
	if s.Confirmed() != 1 {
		t.Errorf("Confirmed() = %d, want 1", s.Confirmed())
	}
	if _, err := s.WriteWithBarrier(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("write on dead session: %v, want ErrClosed", err)
	}
}

func TestIQAnswers(t *testing.T) {
	s, f := pipeSession(t, testConfig(t), newRecorder())
	_ = s
	tests := [...]struct {
		in       string
		typ      string
		contains []string
	}{
		0: {
			in:  `<iq type='get' id='q0' from='alice@example.org/x' to='gw.example.org'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`,
			typ: "result",
			contains: []string{
				`category="component"`, `type="generic"`, `name="xmppgw"`,
				`var="http://jabber.org/protocol/disco#info"`, `var="urn:xmpp:ping"`, `var="jabber:iq:version"`,
			},
		},
		1: {
			in:  `<iq type='get' id='q1' from='alice@example.org/x' to='gw.example.org'><ping xmlns='urn:xmpp:ping'/></iq>`,
			typ: "result",
		},
		2: {
			in:       `<iq type='get' id='q2' from='alice@example.org/x' to='n@gw.example.org'><query xmlns='jabber:iq:version'/></iq>`,
			typ:      "result",
			contains: []string{"<name>xmppgw</name>", "<version>1.2.3</version>"},
		},
		3: {
			in:       `<iq type='set' id='q3' from='alice@example.org/x' to='gw.example.org'><query xmlns='jabber:iq:roster'/></iq>`,
			typ:      "error",
			contains: []string{"service-unavailable", `type="cancel"`},
		},
		4: {
			in:       `<iq type='get' id='q4' from='alice@example.org/x' to='gw.example.org'><vcard xmlns='vcard-temp'><FN>x</FN></vcard></iq>`,
			typ:      "error",
			contains: []string{"service-unavailable"},
		},
		5: {
			in:       `<iq type='get' id='q5' from='alice@example.org/x' to='gw.example.org'/>`,
			typ:      "error",
			contains: []string{"bad-request", `type="modify"`},
		},
		6: {
			in:       `<iq type='get' id='q6' from='alice@example.org/x' to='gw.example.org'><query xmlns='http://jabber.org/protocol/disco#items'/></iq>`,
			typ:      "result",
			contains: []string{"disco#items"},
		},
	}
	for i, tc := range tests {
		f.send(tc.in)
		e, ok := f.next()
		if !ok {
			t.Fatalf("%d: stream ended", i)
		}
		if e.XMLName.Local != "iq" || e.attr("type") != tc.typ {
			t.Errorf("%d: got %s type %q, want iq type %q: %s", i, e.XMLName.Local, e.attr("type"), tc.typ, e.Inner)
		}
		if e.attr("id") != "q"+string(rune('0'+i)) || e.attr("to") != "alice@example.org/x" {
			t.Errorf("%d: reply id/to = %q/%q", i, e.attr("id"), e.attr("to"))
		}
		if e.attr("from") == "" {
			t.Errorf("%d: reply without from", i)
		}
		for _, c := range tc.contains {
			if !strings.Contains(e.Inner, c) {
				t.Errorf("%d: reply %s lacks %s", i, e.Inner, c)
			}
		}
	}
}

func TestInboundMessages(t *testing.T) {
	rec := newRecorder()
	s, f := pipeSession(t, testConfig(t), rec)
	before := time.Now().UTC()
	f.send(`<message from='alice@example.org/phone' to='notices@gw.example.org' id='a1' type='chat'><body>hello &lt;3</body><thread>t1</thread></message>`)
	// A chat state: not an event.
	f.send(`<message from='alice@example.org/phone' to='notices@gw.example.org' id='a2' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	// No id: one is generated.
	f.send(`<message from='bob@example.org' to='notices@gw.example.org'><body>hi</body></message>`)
	// A bounce of one of ours.
	f.send(`<message from='carol@example.org' to='notices@gw.example.org' id='ours1' type='error'><body>x</body><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`)
	f.send(`<presence from='alice@example.org/phone' to='notices@gw.example.org'><show>away</show><status>out</status></presence>`)
	for range 4 {
		select {
		case <-rec.got:
		case <-time.After(5 * time.Second):
			t.Fatal("timed out waiting for inbound calls")
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.msgs) != 3 {
		t.Fatalf("got %d message events, want 3: %+v", len(rec.msgs), rec.msgs)
	}
	m := rec.msgs[0]
	if m.Kind != "message" || m.ID != "a1" || m.From != "alice@example.org/phone" || m.To != "notices@gw.example.org" ||
		m.Type != "chat" || m.Text != "hello <3" {
		t.Errorf("event 0 = %+v", m)
	}
	if m.ReceivedAt.Before(before) || m.ReceivedAt.Location() != time.UTC {
		t.Errorf("ReceivedAt = %v", m.ReceivedAt)
	}
	if m := rec.msgs[1]; m.ID == "" || m.Text != "hi" || m.Type != "normal" {
		t.Errorf("event 1 = %+v", m)
	}
	// Generated ids are echoed to senders in refusals: they must not
	// reveal the secret part of our barrier ids.
	nonce := strings.TrimSuffix(strings.TrimPrefix(s.idPrefix, "xb-"), "-")
	if len(nonce) < 16 || strings.Contains(rec.msgs[1].ID, nonce) {
		t.Errorf("generated id %q reveals the barrier nonce %q", rec.msgs[1].ID, nonce)
	}
	if m := rec.msgs[2]; m.Kind != "error" || m.ID != "ours1" || m.Condition != "item-not-found" {
		t.Errorf("event 2 = %+v", m)
	}
	if len(rec.pres) != 1 || rec.pres[0].From != "alice@example.org/phone" {
		t.Errorf("presences = %+v", rec.pres)
	}
}

func TestBadMessageGetsError(t *testing.T) {
	rec := newRecorder()
	_, f := pipeSession(t, testConfig(t), rec)
	long := strings.Repeat("x", 2000) // Limits.MaxTextBytes is 1024
	f.send(`<message from='alice@example.org/phone' to='notices@gw.example.org' id='big' type='chat'><body>` + long + `</body></message>`)
	e, ok := f.next()
	if !ok {
		t.Fatal("stream ended")
	}
	if e.XMLName.Local != "message" || e.attr("type") != "error" || e.attr("id") != "big" ||
		e.attr("to") != "alice@example.org/phone" || e.attr("from") != "notices@gw.example.org" {
		t.Errorf("reply = %+v", e)
	}
	if !strings.Contains(e.Inner, `type='modify'`) && !strings.Contains(e.Inner, `type="modify"`) {
		t.Errorf("reply error not of type modify: %s", e.Inner)
	}
	// An error is never answered with an error; the stream survives.
	f.send(`<message from='alice@example.org/phone' to='notices@gw.example.org' id='big2' type='error'><body>` + long + `</body></message>`)
	f.send(`<iq type='get' id='sync' from='example.org' to='gw.example.org'><ping xmlns='urn:xmpp:ping'/></iq>`)
	if e, ok := f.next(); !ok || e.attr("id") != "sync" {
		t.Fatalf("want sync reply, got %+v", e)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.msgs) != 0 {
		t.Errorf("bad messages became events: %+v", rec.msgs)
	}
}

func TestClose(t *testing.T) {
	s, f := pipeSession(t, testConfig(t), newRecorder())
	res := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res <- s.Close(ctx)
	}()
	if e, ok := f.next(); ok {
		t.Fatalf("want end of stream, got %+v", e)
	}
	if got := f.raw.String(); got != "</stream:stream>" {
		t.Errorf("wire: %q", got)
	}
	f.send(`</stream:stream>`)
	if err := <-res; err != nil {
		t.Errorf("Close: %v", err)
	}
	<-s.Done()
	if s.Err() != nil {
		t.Errorf("Err() after clean Close = %v", s.Err())
	}
	if err := s.Write([]byte("<message/>")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCloseTimeout(t *testing.T) {
	s, f := pipeSession(t, testConfig(t), newRecorder())
	go func() { _, _ = io.Copy(io.Discard, f.conn) }()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Close = %v, want deadline exceeded", err)
	}
	select {
	case <-s.Done():
	default:
		t.Error("Done not closed after Close returned")
	}
}

func TestServerEndsStream(t *testing.T) {
	tests := [...]struct {
		send string
		want string
	}{
		0: {`</stream:stream>`, "ended the stream"},
		1: {`<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`, "conflict"},
		2: {`<message><body>unterminated</message>`, "stream"},
	}
	for i, tc := range tests {
		t.Run(string(rune('0'+i)), func(t *testing.T) {
			s, f := pipeSession(t, testConfig(t), newRecorder())
			go func() { _, _ = io.Copy(io.Discard, f.conn) }()
			f.send(tc.send)
			select {
			case <-s.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("session survived")
			}
			if s.Err() == nil || !strings.Contains(s.Err().Error(), tc.want) {
				t.Errorf("Err() = %v, want mention of %q", s.Err(), tc.want)
			}
		})
	}
}

func TestStuckServerTimesOut(t *testing.T) {
	cfg := testConfig(t)
	cfg.Keepalive = 100 * time.Millisecond
	s, _ := pipeSession(t, cfg, newRecorder())
	// The server reads nothing: net.Pipe blocks the write; the watchdog must
	// end the session and release the writer.
	errc := make(chan error, 1)
	go func() {
		_, err := s.WriteWithBarrier([]byte(`<message to='a@example.org'><body>x</body></message>`))
		errc <- err
	}()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("blocked write returned %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("write still blocked")
	}
	<-s.Done()
	if !errors.Is(s.Err(), ErrTimeout) {
		t.Errorf("Err() = %v, want ErrTimeout", s.Err())
	}
}

func TestCloseWithConcurrentWriters(t *testing.T) {
	s, f := pipeSession(t, testConfig(t), newRecorder())
	go func() {
		for {
			if _, ok := f.next(); !ok {
				f.send(`</stream:stream>`)
				return
			}
		}
	}()
	var writers [4]chan error
	for i := range writers {
		writers[i] = make(chan error, 1)
		go func() {
			for {
				if _, err := s.WriteWithBarrier([]byte(`<message to='a@example.org'><body>x</body></message>`)); err != nil {
					writers[i] <- err
					return
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
	for _, w := range writers {
		if err := <-w; !errors.Is(err, ErrClosed) {
			t.Errorf("writer ended with %v, want ErrClosed", err)
		}
	}
	if s.Err() != nil {
		t.Errorf("Err() = %v after clean Close", s.Err())
	}
}

// panicky is an Inbound whose Message panics.
type panicky struct{ *recorder }

func (panicky) Message(*Session, *stanza.Event) { panic("boom") }

// TestPanicInHandlerEndsSessionNotProcess: a panic on the read loop ends the
// session with an error; the process (this test) lives on.
func TestPanicInHandlerEndsSessionNotProcess(t *testing.T) {
	s, f := pipeSession(t, testConfig(t), panicky{newRecorder()})
	streamEnded := make(chan struct{})
	go func() { // the server reads what the session writes, to the end
		for {
			if _, ok := f.next(); !ok {
				close(streamEnded)
				return
			}
		}
	}()
	f.send(`<message from='alice@example.org/phone' to='notices@gw.example.org' id='p1' type='chat'><body>hi</body></message>`)
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("session still up after a panic in the handler")
	}
	if err := s.Err(); err == nil || !strings.Contains(err.Error(), "panic") {
		t.Fatalf("Err = %v, want the panic", err)
	}
	select {
	case <-streamEnded:
	case <-time.After(5 * time.Second):
		t.Error("the stream was not closed towards the server")
	}
}
