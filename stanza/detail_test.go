package stanza

import (
	"errors"
	"strings"
	"testing"
)

// sentinel stands for message content that must never reach an error detail
// (which goes into WARN logs and the dead-letter header).
const sentinel = "qzSECRETzq"

// TestDetailHoldsNoContent: refused items whose content fields, or the
// character data of a raw stanza, hold the sentinel never quote it.
func TestDetailHoldsNoContent(t *testing.T) {
	s := sentinel
	bodies := []string{
		// JSON errors inside or right after content
		`{"target":"a@b","text":"` + s + `\x"}`,
		`{"target":"a@b","text":"` + s + `" "}`,
		`{"target":"a@b","text":"` + s + `",}`,
		`{"target":"a@b","text":"` + s,
		`{"target":"a@b","subject":"` + s + `"`,
		`{"target":"a@b","payload":{"k":"` + s + `" x}}`,
		`{"target":"a@b","payload":[` + s + `]}`,
		`{"target":"a@b","thread":"` + s + `\u12"}`,
		`{"kind":"presence","target":"a@b","status":"` + s + `"}}`,
		`{"target":"a@b","text":"` + s + `"} trailing`,
		`{"target":"a@b","text":"` + s + "\u0001" + `"}`,
		// character and length errors in content
		`{"target":"a@b","text":"` + s + `\u0000"}`,
		`{"target":"a@b","text":"` + s + `\ud800"}`,
		`{"target":"a@b","text":"` + s + strings.Repeat("x", 100) + `"}`,
		`{"target":"a@b","thread":"` + s + strings.Repeat("x", 1100) + `","text":"x"}`,
		`{"target":"a@b","subject":"` + s + `","text":"` + strings.Repeat("&", 70000) + `"}`,
		// raw stanza character data
		`{"stanza":"<message to='a@b'><body>` + s + `&nope;</body></message>"}`,
		`{"stanza":"<message to='a@b'><body>&` + s + `;</body></message>"}`,
		`{"stanza":"<message to='a@b'><body>` + s + `&#1;</body></message>"}`,
		`{"stanza":"<message to='a@b'><body>` + s + `</bodx></message>"}`,
		`{"stanza":"<message to='a@b'><body>` + s + `</body>"}`,
		`{"stanza":"<message to='a@b'><body>` + s + `]]></body></message>"}`,
		`{"stanza":"<message to='a@b'><body>` + s + `<</body></message>"}`,
		`{"stanza":"<message to='a@b'><body>` + s + strings.Repeat("y", 100) + `</body></message>"}`,
		`{"stanza":"<message to='a@b'/>` + s + `"}`,
		`{"stanza":"` + s + `<message to='a@b'/>"}`,
		`{"stanza":"<message to='a@b'><x y='` + s + `' y='1'/></message>"}`,
		`{"stanza":"<message to='a@b'><x y='` + s + `<'/></message>"}`,
		`{"stanza":"<message to='a@b'><x y='` + s + "\\n" + `'/></message>"}`,
		`{"stanza":"<message to='a@b'><x y='` + s + `&z;'/></message>"}`,
		`{"stanza":"<message to='a@b'><!-- ` + s + ` -- --></message>"}`,
		`{"stanza":"<message to='a@b'><?pi ` + s + `?></message>"}`,
		`{"stanza":"<message to='a@b'><![CDATA[` + s + `</message>"}`,
		`{"stanza":"<message to='a@b'><body>` + s + "\\u0001" + `</body></message>"}`,
	}
	for i, b := range bodies {
		e := newEnc(t, ModeComponent)
		_, _, err := e.Append(nil, []byte(b), Meta{})
		var ie *ItemError
		if !errors.As(err, &ie) {
			t.Errorf("%d: accepted %s", i, b)
			continue
		}
		if strings.Contains(ie.Detail, "SECRET") {
			t.Errorf("%d: detail quotes content: %s", i, ie.Detail)
		}
	}
}
