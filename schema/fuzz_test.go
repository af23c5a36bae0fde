package schema

import (
	"errors"
	"testing"

	"xmppgw/stanza"
)

// FuzzItemSchemaAgrees: what the gateway's decoder sends, the item schema
// accepts; what the decoder refuses as bad JSON, the schema refuses too.
func FuzzItemSchemaAgrees(f *testing.F) {
	for _, s := range []string{
		`{"target":"alice@example.org","text":"hi","payload":{"k":1},"type":"chat","id":"a","receipt":true}`,
		`{"kind":"presence","target":"alice@example.org","type":"subscribed","status":"s","show":"xa"}`,
		`{"stanza":"<message to='alice@example.org'><body>x</body></message>","enqueued_at":"2026-11-22T10:00:00Z"}`,
		`{"target":"alice@example.org","subject":"s","thread":"t","from":"shop","replace":"m0","enqueued_at":"2026-11-22T10:00:00.5+01:00"}`,
		`{"target":"alice@example.org","text":"x","status":null,"unknown":[1]}`,
		`{"target":"a@b","text":"","enqueued_at":"2026-02-28T23:59:59,999+05:30"}`,
		`{"target":"a@b","text":"","enqueued_at":"0001-01-01T00:00:00.000000001-23:59"}`,
	} {
		f.Add([]byte(s), false)
	}
	encs := encoders(f)
	f.Fuzz(func(t *testing.T, body []byte, client bool) {
		_, _, encErr := encs[client].Append(nil, body, stanza.Meta{MessageID: "m1"})
		schErr := ValidateItem(body)
		if encErr == nil && schErr != nil {
			t.Fatalf("the gateway sends %q, the schema refuses it: %v", body, schErr)
		}
		var ie *stanza.ItemError
		if errors.As(encErr, &ie) && ie.Reason == stanza.ReasonInvalidJSON && schErr == nil {
			t.Fatalf("the gateway refuses %q as not JSON (%v), the schema accepts it", body, encErr)
		}
	})
}
