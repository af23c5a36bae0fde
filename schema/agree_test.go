package schema

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"xmppgw/stanza"
)

// encoders are the gateway's item decoders in both modes, configured as in
// the stanza package's tests.
func encoders(t testing.TB) map[bool]*stanza.Encoder {
	t.Helper()
	out := map[bool]*stanza.Encoder{}
	for _, client := range []bool{false, true} {
		o := stanza.Options{Mode: stanza.ModeComponent, Domain: "gw.example.org", DefaultFrom: "notices"}
		if client {
			o = stanza.Options{Mode: stanza.ModeClient, Account: "bot@example.org/gateway"}
		}
		e, err := stanza.NewEncoder(o)
		if err != nil {
			t.Fatal(err)
		}
		out[client] = e
	}
	return out
}

// judged are the reasons a schema can give for itself: an item the gateway
// refuses for one of them, the schema refuses too (unless the case says the
// schema is blind to it). The other reasons (JID syntax, domains, byte
// bounds of the configuration, raw stanza XML) only the gateway judges.
var judged = map[stanza.Reason]bool{
	stanza.ReasonInvalidJSON:  true,
	stanza.ReasonInvalidChar:  true,
	stanza.ReasonMissingField: true,
	stanza.ReasonBadField:     true,
}

// agree checks one item against the gateway's decoder and the schema:
// what the decoder accepts the schema accepts; what the decoder refuses
// for a reason a schema can judge, the schema refuses, unless blind.
func agree(t *testing.T, e *stanza.Encoder, mode string, body []byte, blind bool) {
	t.Helper()
	_, _, encErr := e.Append(nil, body, stanza.Meta{MessageID: "m1"})
	schErr := ValidateItem(body)
	var ie *stanza.ItemError
	switch {
	case encErr == nil && schErr != nil:
		t.Errorf("%s: the gateway sends %q, the schema refuses it: %v", mode, body, schErr)
	case encErr != nil && !errors.As(encErr, &ie):
		t.Errorf("%s: %q: error %T %v", mode, body, encErr, encErr)
	case encErr != nil && judged[ie.Reason] && !blind && schErr == nil:
		t.Errorf("%s: the gateway refuses %q (%v), the schema accepts it", mode, body, encErr)
	case encErr != nil && blind && schErr != nil:
		t.Errorf("%s: %q is marked as one the schema cannot judge, but it refuses it: %v", mode, body, schErr)
	}
}

// The schema agrees with the gateway's decoder (stanza.Encoder) on a table
// of items, in both modes.
func TestSchemaAgreesWithDecoder(t *testing.T) {
	long := strings.Repeat("i", 1023)
	for i, tc := range []struct {
		item string
		// blind: the gateway refuses it for a reason no schema can see
		// (a member twice, an id equal to the one it replaces): "all";
		// "component": only in component mode (a presence without target,
		// which the schema of both modes allows)
		blind string
	}{
		{item: `{"target":"alice@example.org","text":"hi"}`},
		{item: `{"target":"alice@example.org","text":""}`},
		{item: `{"target":"alice@example.org","payload":{"k":[1,2]}}`},
		{item: `{"target":"alice@example.org","payload":null}`},
		{item: `{"target":"alice@example.org","payload":0}`},
		{item: `{"target":"alice@example.org","subject":"s"}`},
		{item: `{"target":"alice@example.org","subject":""}`},
		{item: `{"target":"alice@example.org","thread":"t"}`},
		{item: `{"target":null,"text":"x"}`},
		{item: `{"target":"","text":"x"}`},
		{item: `{"target":7,"text":"x"}`},
		{item: `{"text":"x"}`},
		{item: `{"target":"alice@example.org","text":"x","type":"headline","from":"shop","id":"o-1","thread":"t1","subject":"s"}`},
		{item: `{"target":"alice@example.org","text":"x","type":"groupchat"}`},
		{item: `{"target":"alice@example.org","text":"x","type":"error"}`},
		{item: `{"target":"alice@example.org","text":"x","type":null}`},
		{item: `{"target":"alice@example.org","text":"x","kind":"message"}`},
		{item: `{"target":"alice@example.org","text":"x","kind":"Message"}`},
		{item: `{"target":"alice@example.org","text":"x","kind":"iq"}`},
		{item: `{"target":"alice@example.org","text":"x","show":"away"}`},
		{item: `{"target":"alice@example.org","text":"x","status":"s"}`},
		{item: `{"target":"alice@example.org","text":"x","status":null,"show":null}`},
		{item: `{"target":"alice@example.org","text":"x","id":""}`},
		{item: `{"target":"alice@example.org","text":"x","id":"` + long + `"}`},
		{item: `{"target":"alice@example.org","text":"x","id":"` + long + `i"}`},
		{item: `{"target":"alice@example.org","text":"x","thread":"` + long + `"}`},
		{item: `{"target":"alice@example.org","text":"x","thread":"` + long + `t"}`},
		{item: `{"target":"alice@example.org","text":"x","from":""}`},
		{item: `{"target":"alice@example.org","text":"x","from":5}`},
		{item: `{"target":"alice@example.org","text":"x","enqueued_at":"2026-11-22T10:00:00Z"}`},
		{item: `{"target":"alice@example.org","text":"x","enqueued_at":"2026-11-22T10:00:00.123456789+05:30"}`},
		{item: `{"target":"alice@example.org","text":"x","enqueued_at":"2026-11-22 10:00:00Z"}`},
		{item: `{"target":"alice@example.org","text":"x","enqueued_at":"2026-11-22T25:00:00Z"}`},
		{item: `{"target":"alice@example.org","text":"x","enqueued_at":"2026-02-30T10:00:00Z"}`},
		{item: `{"target":"alice@example.org","text":"x","enqueued_at":1764000000}`},
		{item: `{"target":"alice@example.org","text":"x","enqueued_at":"2026-11-22T10:00:00,5Z"}`},
		{item: `{"target":"alice@example.org","text":"x","enqueued_at":"2026-11-22t10:00:00z"}`},
		{item: `{"target":"alice@example.org","text":"x","enqueued_at":"2026-12-31T23:59:60Z"}`},
		{item: `{"target":"alice@example.org","text":"x","enqueued_at":"2026-11-22T10:00:00+23:59"}`},
		{item: `{"target":"alice@example.org","text":"x","enqueued_at":"0000-01-01T00:00:00Z"}`},
		{item: `{"target":"alice@example.org","text":"x","enqueued_at":"2026-11-22T10:00:00+24:00"}`},
		{item: `{"target":"alice@example.org","text":"x","enqueued_at":"2026-11-22T10:00:00+23:60"}`},
		{item: `{"target":"alice@example.org","text":"x","enqueued_at":"2026-11-22T10:00:00+25:00"}`},
		{item: `{"target":"alice@example.org","text":"x","enqueued_at":"2026-11-22T24:00:00Z"}`},
		{item: `{"target":"alice@example.org","text":"x","enqueued_at":"2026-02-29T10:00:00Z"}`},
		{item: `{"target":"alice@example.org","text":"x","enqueued_at":"2026-11-22T10:00:00-00:00"}`},
		{item: `{"target":"alice@example.org","text":"x","enqueued_at":"2026-11-22T10:00:00.Z"}`},
		{item: `{"target":"alice@example.org","text":"x","enqueued_at":"2026-11-22T10:00Z"}`},
		{item: `{"target":"alice@example.org","text":"x","enqueued_at":"2024-02-29T10:00:00,000Z"}`},
		{item: `{"target":"alice@example.org","text":"x","enqueued_at":"2026-11-22T10:00:00+0100"}`},
		{item: `{"target":"alice@example.org","text":"x","enqueued_at":"2026-11-22T10:00:00.1234567890123Z"}`},
		{item: `{"target":"alice@example.org","text":"tab\tnewline\ncr\r"}`},
		{item: `{"target":"alice@example.org","text":"nul \u0000"}`},
		{item: `{"target":"alice@example.org","text":"form feed \f"}`},
		{item: `{"target":"alice@example.org","text":"non-character \uffff"}`},
		{item: `{"target":"alice@example.org","subject":"s \u001b"}`},
		{item: `{"target":"alice@example.org","text":"x","receipt":true}`},
		{item: `{"target":"alice@example.org","text":"x","receipt":false}`},
		{item: `{"target":"alice@example.org","text":"x","receipt":null}`},
		{item: `{"target":"alice@example.org","text":"x","receipt":"true"}`},
		{item: `{"target":"alice@example.org","text":"x","receipt":1}`},
		{item: `{"target":"alice@example.org","text":"x","replace":"m0"}`},
		{item: `{"target":"alice@example.org","text":"x","replace":""}`},
		{item: `{"target":"alice@example.org","text":"x","replace":null}`},
		{item: `{"target":"alice@example.org","text":"x","replace":["m0"]}`},
		{item: `{"target":"alice@example.org","text":"x","replace":"m1"}`, blind: "all"}, // its own id (the AMQP message-id)
		{item: `{"target":"alice@example.org","text":"x","text":"y"}`, blind: "all"},
		{item: `{"kind":"presence","target":"alice@example.org"}`},
		{item: `{"kind":"presence"}`, blind: "component"},
		{item: `{"kind":"presence","type":"unavailable","status":"bye"}`, blind: "component"},
		{item: `{"kind":"presence","type":"subscribe"}`},
		{item: `{"kind":"presence","target":"alice@example.org","type":"subscribed"}`},
		{item: `{"kind":"presence","target":"alice@example.org","type":"chat"}`},
		{item: `{"kind":"presence","target":"alice@example.org","type":"probe"}`},
		{item: `{"kind":"presence","target":"alice@example.org","show":"dnd","status":"busy"}`},
		{item: `{"kind":"presence","target":"alice@example.org","show":"online"}`},
		{item: `{"kind":"presence","target":"alice@example.org","text":"x"}`},
		{item: `{"kind":"presence","target":"alice@example.org","payload":{}}`},
		{item: `{"kind":"presence","target":"alice@example.org","payload":null,"text":null,"subject":null}`},
		{item: `{"kind":"presence","target":"alice@example.org","subject":""}`},
		{item: `{"kind":"presence","target":"alice@example.org","receipt":false}`},
		{item: `{"kind":"presence","target":"alice@example.org","replace":"m0"}`},
		{item: `{"stanza":"<message to='alice@example.org'><body>x</body></message>"}`},
		{item: `{"stanza":"<presence to='alice@example.org' type='subscribed'/>","enqueued_at":"2026-11-22T10:00:00Z"}`},
		{item: `{"stanza":"<message to='alice@example.org'><body>x</body></message>","target":"alice@example.org"}`},
		{item: `{"stanza":"<message to='alice@example.org'><body>x</body></message>","id":""}`},
		{item: `{"stanza":"<message to='alice@example.org'><body>x</body></message>","payload":null,"kind":null}`},
		{item: `{"stanza":"<message to='alice@example.org'><body>x</body></message>","receipt":false}`},
		{item: `{"stanza":"<message to='alice@example.org'><body>x</body></message>","replace":"m0"}`},
		{item: `{"stanza":5}`},
		{item: `{"stanza":null,"target":"alice@example.org","text":"x"}`},
		{item: `{"target":"alice@example.org","text":"x","unknown":[1,{"a":null}]}`},
		{item: `{"Target":"alice@example.org","text":"x"}`},
		{item: `{"target":"alice@example.org","text":"x"} {}`},
		{item: `["target"]`},
		{item: `"x"`},
		{item: `{"target":"alice@example.org","text":"x",}`},
		{item: ` {"target":"alice@example.org","text":"x"} `},
	} {
		for client, e := range encoders(t) {
			mode := "component"
			if client {
				mode = "client"
			}
			t.Run(strconv.Itoa(i)+"-"+mode, func(t *testing.T) {
				agree(t, e, mode, []byte(tc.item), tc.blind == "all" || tc.blind == mode)
			})
		}
	}
}

// The schema accepts every item of the stanza package's fuzz corpus that
// the gateway's decoder accepts (inputs the fuzzer found interesting, many
// of them edge cases of the scanner and of JIDs).
func TestSchemaAcceptsWhatTheFuzzCorpusSends(t *testing.T) {
	files, err := filepath.Glob("../stanza/testdata/fuzz/FuzzAppend/*")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no fuzz corpus in ../stanza/testdata/fuzz/FuzzAppend")
	}
	encs := encoders(t)
	sent := 0
	for _, f := range files {
		body, client, ok := readCorpusEntry(t, f)
		if !ok {
			continue
		}
		if _, _, err := encs[client].Append(nil, body, stanza.Meta{}); err != nil {
			continue
		}
		sent++
		if err := ValidateItem(body); err != nil {
			t.Errorf("%s: the gateway sends %q, the schema refuses it: %v", filepath.Base(f), body, err)
		}
	}
	t.Logf("%d of %d corpus items are sent by the gateway; the schema accepts them all", sent, len(files))
	if sent == 0 {
		t.Fatal("no corpus item is accepted by the gateway: the corpus format changed?")
	}
}

// readCorpusEntry reads the body and the mode of a FuzzAppend corpus file
// ("go test fuzz v1", then []byte(...), bool(...), ...).
func readCorpusEntry(t *testing.T, path string) (body []byte, client, ok bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) < 3 || lines[0] != "go test fuzz v1" {
		return nil, false, false
	}
	q, found := strings.CutPrefix(lines[1], "[]byte(")
	q, found2 := strings.CutSuffix(q, ")")
	if !found || !found2 {
		return nil, false, false
	}
	s, err := strconv.Unquote(q)
	if err != nil {
		return nil, false, false
	}
	return []byte(s), lines[2] == "bool(true)", true
}
