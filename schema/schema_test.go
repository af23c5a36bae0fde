package schema

import (
	"errors"
	"strings"
	"testing"
)

// Documents the schemas refuse, with a part of the reason they give.
func TestInvalidDocumentsAreRejected(t *testing.T) {
	const at = `"received_at":"2026-11-22T10:00:00.123456Z"`
	for i, tc := range []struct {
		event  bool
		doc    string
		reason string
	}{
		// items
		{false, `[]`, "want object"},
		{false, `{"text":"x"}`, "missing property 'target'"},
		{false, `{"target":"a@example.org"}`, "missing property 'text'"},
		{false, `{"target":"a@example.org","subject":""}`, "missing property 'text'"},
		{false, `{"target":"","text":"x"}`, "/target"},
		{false, `{"target":"a@example.org","text":5}`, "/text: got number, want"},
		{false, `{"target":"a@example.org","text":"bell \u0007"}`, "/text: 'bell \\a' does not match pattern"},
		{false, `{"target":"a@example.org","text":"x","type":"error"}`, "/type: value must be one of"},
		{false, `{"target":"a@example.org","text":"x","type":"available"}`, "/type: value must be one of <nil>, 'chat'"},
		{false, `{"target":"a@example.org","text":"x","kind":"iq"}`, "/kind: value must be one of"},
		{false, `{"target":"a@example.org","text":"x","show":"away"}`, "/show: got string, want null"},
		{false, `{"target":"a@example.org","text":"x","receipt":"yes"}`, "/receipt: got string, want null or boolean"},
		{false, `{"target":"a@example.org","text":"x","replace":""}`, "/replace: minLength"},
		{false, `{"target":"a@example.org","text":"x","id":"` + strings.Repeat("i", 1024) + `"}`, "/id: maxLength"},
		{false, `{"target":"a@example.org","text":"x","thread":"` + strings.Repeat("t", 1024) + `"}`, "/thread: maxLength"},
		{false, `{"target":"a@example.org","text":"x","enqueued_at":"yesterday"}`, "/enqueued_at: 'yesterday' is not valid date-time"},
		{false, `{"kind":"presence","target":"a@example.org","text":"x"}`, "/text: got string, want null"},
		{false, `{"kind":"presence","target":"a@example.org","receipt":false}`, "/receipt: got boolean, want null"},
		{false, `{"kind":"presence","type":"subscribed"}`, "missing property 'target'"},
		{false, `{"kind":"presence","target":"a@example.org","show":"busy"}`, "/show: value must be one of"},
		{false, `{"stanza":"<message/>","target":"a@example.org"}`, "/target: got string, want null"},
		{false, `{"stanza":"<message/>","id":""}`, "/id: got string, want null"},
		{false, `{"stanza":"<message/>","receipt":true}`, "/receipt: got boolean, want null"},
		// events
		{true, `[]`, "want object"},
		{true, `{"id":"a"}`, "missing property 'kind'"},
		{true, `{"kind":"iq","id":"a",` + at + `}`, "/kind: value must be one of"},
		{true, `{"kind":"message","type":"chat",` + at + `}`, "missing property 'id'"},
		{true, `{"kind":"message","id":"a",` + at + `}`, "missing property 'type'"},
		{true, `{"kind":"message","id":"a","type":"chat","text":"x"}`, "missing property 'received_at'"},
		{true, `{"kind":"message","id":"a","type":"chat","text":"",` + at + `}`, "/text: minLength"},
		{true, `{"kind":"message","id":"a","type":"error","text":"x",` + at + `}`, "/type: value must be one of"},
		{true, `{"kind":"message","id":"a","type":"chat","text":"x","colour":"red",` + at + `}`, "additional properties 'colour' not allowed"},
		{true, `{"kind":"message","id":"a","type":"chat","text":"x","received_at":"2026-11-22T10:00:00Z"}`, "/received_at: '2026-11-22T10:00:00Z' does not match pattern"},
		{true, `{"kind":"message","id":"a","type":"chat","text":"x","received_at":"2026-13-22T10:00:00.123456Z"}`, "is not valid date-time"},
		{true, `{"kind":"message","id":"a","type":"chat","text":"x","encrypted":"omemo",` + at + `}`, "'not' failed"},
		{true, `{"kind":"message","id":"a","type":"chat","encrypted":"otr",` + at + `}`, "/encrypted: value must be one of"},
		{true, `{"kind":"message","id":"a","type":"groupchat","text":"x","room":"r@muc.example.org",` + at + `}`, "properties 'nick' required, if 'room' exists"},
		{true, `{"kind":"message","id":"a","type":"groupchat","text":"x","nick":"n",` + at + `}`, "properties 'room' required, if 'nick' exists"},
		{true, `{"kind":"error","id":"a","type":"chat",` + at + `}`, "/type: value must be 'error'"},
		{true, `{"kind":"error","id":"a","type":"error","show":"away",` + at + `}`, "additional properties 'show' not allowed"},
		{true, `{"kind":"presence","id":"a","from":"b@example.org/r","to":"n@gw.example.org","type":"subscribe",` + at + `}`, "/type: value must be one of"},
		{true, `{"kind":"presence","id":"a","to":"n@gw.example.org","type":"available",` + at + `}`, "missing property 'from'"},
		{true, `{"kind":"subscription","id":"a","from":"b@example.org","to":"n@gw.example.org","type":"subscribed",` + at + `}`, "/type: value must be one of"},
		{true, `{"kind":"receipt","id":"a","from":"b@example.org/r","status":"read",` + at + `}`, "/status: value must be one of"},
		{true, `{"kind":"receipt","id":"a","status":"received",` + at + `}`, "missing property 'from'"},
		{true, `{"kind":"receipt","id":"a","from":"b@example.org/r","type":"error","status":"received",` + at + `}`, "/type: value must be one of"},
		{true, `{"kind":"receipt","id":"a","from":"b@example.org/r","status":"received","text":"x",` + at + `}`, "additional properties 'text' not allowed"},
	} {
		validate := ValidateItem
		if tc.event {
			validate = ValidateEvent
		}
		err := validate([]byte(tc.doc))
		if err == nil {
			t.Errorf("%d: %s: accepted", i, tc.doc)
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%d: %s: %v is not ErrInvalid", i, tc.doc, err)
		}
		if !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%d: %s:\n got %v\nwant a reason with %q", i, tc.doc, err, tc.reason)
		}
	}
}

// Documents the schemas accept: each field alone and in the combinations
// the gateway allows.
func TestValidDocumentsAreAccepted(t *testing.T) {
	const at = `"received_at":"2026-11-22T10:00:00.123456Z"`
	for i, tc := range []struct {
		event bool
		doc   string
	}{
		{false, `{"target":"a@example.org","text":""}`},
		{false, `{"target":"a@example.org","payload":null,"subject":"s"}`},
		{false, `{"target":"a@example.org","payload":false}`},
		{false, `{"target":"a@example.org","text":"x","receipt":true,"replace":"m1","id":"m2","type":"groupchat","unknown":{"x":1}}`},
		{false, `{"target":"a@example.org","text":"x","status":null,"show":null,"kind":null}`},
		{false, `{"kind":"presence","target":"a@example.org","type":"subscribed","receipt":null}`},
		{false, `{"kind":"presence","type":"unavailable","show":"dnd","status":"bye"}`},
		{false, `{"stanza":"<message to='a@example.org'><body>x</body></message>","enqueued_at":"2026-11-22T10:00:00+01:00","target":null}`},
		{true, `{"kind":"message","id":"a","type":"normal",` + at + `}`},
		{true, `{"kind":"message","id":"a","from":"r@muc.example.org/n","to":"bot@example.org","type":"groupchat","text":"x","room":"r@muc.example.org","nick":"n",` + at + `}`},
		{true, `{"kind":"message","id":"a","type":"chat","encrypted":"openpgp","replace":"m0","payload":[1,"2",null],` + at + `}`},
		{true, `{"kind":"message","id":"a","from":"r@muc.example.org/n","type":"chat","text":"psst","room":"r@muc.example.org","nick":"n",` + at + `}`},
		{true, `{"kind":"error","id":"a","type":"error","condition":"service-unavailable","text":"gone",` + at + `}`},
		{true, `{"kind":"presence","id":"a","from":"b@example.org/r","to":"n@gw.example.org","type":"available","show":"away","status":"lunch",` + at + `}`},
		{true, `{"kind":"subscription","id":"a","from":"b@example.org","to":"n@gw.example.org","type":"unsubscribe",` + at + `}`},
		{true, `{"kind":"receipt","id":"a","from":"b@example.org/r","to":"n@gw.example.org","status":"acknowledged",` + at + `}`},
		{true, `{"kind":"receipt","id":"a","from":"b@example.org/r","to":"n@gw.example.org","type":"chat","status":"received",` + at + `}`},
	} {
		validate := ValidateItem
		if tc.event {
			validate = ValidateEvent
		}
		if err := validate([]byte(tc.doc)); err != nil {
			t.Errorf("%d: %s: %v", i, tc.doc, err)
		}
	}
}
