package stanza

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

var benchBody = []byte(`{"target":"alice@example.org","text":"` + strings.Repeat("Status update: ", 6) + `all good.` + `","payload":{"site":"ber-1","level":3,"tags":["a","b"]},"enqueued_at":"2026-11-22T10:00:00.123Z"}`)

func BenchmarkAppend(b *testing.B) {
	e := newEnc(b, ModeComponent)
	e.maxText = 65536
	m := Meta{MessageID: "msg-0001", Timestamp: time.Unix(1, 0)}
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		var err error
		dst, _, err = e.Append(dst[:0], benchBody, m)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendHashID(b *testing.B) {
	e := newEnc(b, ModeComponent)
	e.maxText = 65536
	m := Meta{Timestamp: time.Unix(1, 0), AppID: "worker"}
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		var err error
		dst, _, err = e.Append(dst[:0], benchBody, m)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendRawStanza(b *testing.B) {
	e := newEnc(b, ModeComponent)
	e.maxText = 65536
	body := []byte(`{"stanza":"<message to='alice@example.org' type='chat' id='r1'><body>` + strings.Repeat("Status update: ", 6) + `</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>"}`)
	dst := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		var err error
		dst, _, err = e.Append(dst[:0], body, Meta{})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeMessage(b *testing.B) {
	msg := `<message from='alice@example.org/phone' to='notices@gw.example.org' type='chat' id='a1'><body>` +
		strings.Repeat("Status update: ", 6) + `</body><json xmlns='urn:xmpp:json:0'>{"k":1,"v":[1,2,3]}</json><active xmlns='http://jabber.org/protocol/chatstates'/></message>`
	benchDecode(b, msg, func(ev *Event) {
		if ev.Kind != "message" {
			b.Fatal(ev.Kind)
		}
	})
}

// benchDecode decodes msg over and over from a stream of 1,000 copies (the
// stream is rebuilt off the clock) and hands each event to check.
func benchDecode(b *testing.B, msg string, check func(ev *Event)) {
	doc := wrap + strings.Repeat(msg, 1000)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	var d *xml.Decoder
	n := 1000
	for b.Loop() {
		if n == 1000 {
			b.StopTimer()
			d = xml.NewDecoder(strings.NewReader(doc))
			d.Token() // stream
			n = 0
			b.StartTimer()
		}
		tok, err := d.Token()
		if err != nil {
			b.Fatal(err)
		}
		ev, err := DecodeMessage(tok.(xml.StartElement), d, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		check(&ev)
		n++
	}
}

func BenchmarkEventJSON(b *testing.B) {
	ev := Event{Kind: "message", ID: "a1", From: "alice@example.org/phone", To: "notices@gw.example.org",
		Type: "chat", Text: strings.Repeat("Status update: ", 6), Payload: []byte(`{"k":1,"v":[1,2,3]}`),
		ReceivedAt: time.Date(2026, 11, 22, 10, 0, 0, 123456000, time.UTC)}
	dst := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		dst = ev.AppendJSON(dst[:0])
	}
	b.SetBytes(int64(len(dst)))
}

func BenchmarkAppendPing(b *testing.B) {
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendPing(dst[:0], "gw.example.org", "example.org", "b-000123")
	}
}

// BenchmarkInboundReceipt prints side by side what the inbound path costs
// per message in this package without and with a XEP-0184 receipt request:
// decode, event JSON, and for the request the receipt stanza. (The
// gateway's own extra work for a receipt is the write, shared by the
// receipts of a batch of confirms; the server's is routing one more stanza.)
func BenchmarkInboundReceipt(b *testing.B) {
	for _, tc := range []struct{ name, extra string }{
		{"plain", ""},
		{"receipt", `<request xmlns='urn:xmpp:receipts'/>`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			msg := `<message from='alice@example.org/phone' to='notices@gw.example.org' type='chat' id='a1'><body>` +
				strings.Repeat("Status update: ", 6) + `</body>` + tc.extra + `</message>`
			out := make([]byte, 0, 1024)
			benchDecode(b, msg, func(ev *Event) {
				if ev.Kind != "message" || ev.WantsReceipt != (tc.extra != "") {
					b.Fatal(ev.Kind, ev.WantsReceipt)
				}
				out = ev.AppendJSON(out[:0])
				if ev.WantsReceipt {
					out = AppendReceipt(out, ev, true)
				}
			})
		})
	}
}
