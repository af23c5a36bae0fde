package schema

import (
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"xmppgw/stanza"
)

// The events the gateway writes for a table of inbound messages — decoded
// by stanza.DecodeMessage (room and nick added as gateway/muc adds them)
// and written by Event.AppendJSON, as the read loop does — match their
// schemas. (Presence and subscription events are built
// by the presence service; the integration suite checks those, like every
// event it reads.)
func TestEventsTheGatewayWritesValidate(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.FixedZone("", 3600))
	for i, tc := range []struct {
		in   string
		kind string // of the event written; "" for none
	}{
		{`<message from='a@example.org/p' to='n@gw.example.org' id='m1' type='chat'><body>hello &lt;&amp;&gt; 🎉</body></message>`, "message"},
		{`<message from='a@example.org/p' to='n@gw.example.org'><subject>s</subject><thread>t</thread><body>x</body></message>`, "message"},
		{`<message from='a@example.org/p' to='n@gw.example.org' type='bogus'><body/></message>`, "message"},
		{`<message from='a@example.org/p' to='n@gw.example.org' type='headline'><json xmlns='urn:xmpp:json:0'>{"k":[1,null]}</json></message>`, "message"},
		{`<message from='a@example.org/p' to='n@gw.example.org' type='chat'><json xmlns='urn:xmpp:json:0'>null</json></message>`, "message"},
		{`<message from='a@example.org/p' to='n@gw.example.org' id='m2' type='chat'><body>fixed</body><replace xmlns='urn:xmpp:message-correct:0' id='m1'/></message>`, "message"},
		{`<message from='a@example.org/p' to='n@gw.example.org' id='e1' type='chat'><body>I sent you an OMEMO encrypted message</body><encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'/><payload>CCC</payload></encrypted><request xmlns='urn:xmpp:receipts'/></message>`, "message"},
		{`<message from='a@example.org/p' to='n@gw.example.org' type='chat'><openpgp xmlns='urn:xmpp:openpgp:0'>BASE64</openpgp><body>This message is encrypted</body></message>`, "message"},
		{`<message from='a@example.org/p' to='n@gw.example.org' type='chat'><body>fallback</body><x xmlns='jabber:x:encrypted'>PGP</x></message>`, "message"},
		{`<message from='r@muc.example.org/nick' to='n@gw.example.org' type='groupchat'><body>in the room</body></message>`, "message"},
		{`<message from='r@muc.example.org/nick' to='n@gw.example.org' type='chat'><body>a private message from an occupant</body></message>`, "message"},
		{`<message from='a@example.org' to='n@gw.example.org' id='ours' type='error'><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>gone</text></error></message>`, "error"},
		{`<message from='a@example.org' to='n@gw.example.org' type='error'><error type='cancel'/></message>`, "error"},
		{`<message from='a@example.org/p' to='n@gw.example.org' type='chat'><received xmlns='urn:xmpp:receipts' id='ours'/></message>`, "receipt"},
		{`<message from='a@example.org/p' to='n@gw.example.org'><displayed xmlns='urn:xmpp:chat-markers:0' id='ours'/></message>`, "receipt"},
		{`<message from='a@example.org/p' to='n@gw.example.org' type='chat'><acknowledged xmlns='urn:xmpp:chat-markers:0' id='ours'/></message>`, "receipt"},
		{`<message from='a@example.org/p' to='n@gw.example.org' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, ""},
	} {
		d := xml.NewDecoder(strings.NewReader(`<stream xmlns='jabber:component:accept'>` + tc.in + `</stream>`))
		var start xml.StartElement
		for {
			tok, err := d.Token()
			if err != nil {
				t.Fatalf("%d: %v", i, err)
			}
			if s, ok := tok.(xml.StartElement); ok && s.Name.Local == "message" {
				start = s
				break
			}
		}
		ev, err := stanza.DecodeMessage(start, d, stanza.Limits{})
		if err != nil {
			t.Errorf("%d: %s: %v", i, tc.in, err)
			continue
		}
		if ev.Kind != tc.kind {
			t.Errorf("%d: %s: kind %q, want %q", i, tc.in, ev.Kind, tc.kind)
			continue
		}
		if ev.Kind == "" {
			continue
		}
		// as the gateway does: an id for a stanza without one, the time
		if ev.ID == "" {
			ev.ID = "xg-generated-1"
		}
		ev.ReceivedAt = at
		if room, nick, ok := strings.Cut(ev.From, "/"); ok && strings.HasPrefix(room, "r@muc.") {
			// as gateway/muc does for a room in muc.rooms: its messages
			// and private messages from its occupants
			ev.Room, ev.Nick = room, nick
		}
		body := ev.AppendJSON(nil)
		if err := ValidateEvent(body); err != nil {
			t.Errorf("%d: %s\nwrites %s\nwhich does not match: %v", i, tc.in, body, err)
		}
	}
}
