package stanza

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestMaxStanzaBytes(t *testing.T) {
	def, err := NewEncoder(Options{Domain: "gw.example.org", DefaultFrom: "n"})
	if err != nil {
		t.Fatal(err)
	}
	item := func(m map[string]any) []byte { b, _ := json.Marshal(m); return b }
	amps := strings.Repeat("&", 65536)
	tests := []struct {
		e    *Encoder
		body []byte
		want Reason // "" = accepted
	}{
		// 64 KiB of & is 320 KiB escaped: within max_text_bytes, over the stanza bound.
		0: {def, item(map[string]any{"target": "a@example.org", "text": amps}), ReasonTooLarge},
		1: {def, item(map[string]any{"target": "a@example.org", "text": strings.Repeat("a", 65536)}), ""},
		2: {def, item(map[string]any{"target": "a@example.org", "text": strings.Repeat("a", 65536), "payload": strings.Repeat("<", 40000)}), ReasonTooLarge},
		3: {def, item(map[string]any{"kind": "presence", "target": "a@example.org", "status": amps}), ReasonTooLarge},
		4: {def, rawItem("<message to='a@example.org'><body>" + strings.Repeat("&amp;", 50000) + "</body></message>"), ReasonTooLarge},
		5: {def, rawItem("<message to='a@example.org'>" + strings.Repeat("<x y='&lt;&lt;&lt;'/>", 20000) + "</message>"), ReasonTooLarge},
		6: {def, rawItem("<message to='a@example.org'><body>" + strings.Repeat("&amp;", 1000) + "</body></message>"), ""},
	}
	for i, tc := range tests {
		dst := make([]byte, 5, 1024)
		copy(dst, "xxxxx")
		out, info, err := tc.e.Append(dst, tc.body, Meta{MessageID: "m"})
		if tc.want == "" {
			if err != nil {
				t.Errorf("%d: %v", i, err)
			} else if len(out)-5 > DefaultMaxStanzaBytes {
				t.Errorf("%d: %d bytes accepted", i, len(out)-5)
			}
			continue
		}
		var ie *ItemError
		if !errors.As(err, &ie) || ie.Reason != tc.want {
			t.Errorf("%d: err %v, want %s (wrote %d bytes)", i, err, tc.want, len(out)-5)
			continue
		}
		if len(out) != 5 || string(out) != "xxxxx" || info != (Info{}) {
			t.Errorf("%d: dst changed on error", i)
		}
	}
}

// TestMaxStanzaBytesExact: the bound is inclusive and counts every byte
// written for the item, not what dst held before.
func TestMaxStanzaBytesExact(t *testing.T) {
	body := []byte(`{"target":"a@example.org","text":"&&&&","id":"i"}`)
	want := `<message from='n@gw.example.org' to='a@example.org' type='chat' id='i'><body>&amp;&amp;&amp;&amp;</body><origin-id xmlns='urn:xmpp:sid:0' id='i'/></message>`
	for _, max := range []int{len(want) - 1, len(want), len(want) + 1} {
		e, err := NewEncoder(Options{Domain: "gw.example.org", DefaultFrom: "n", MaxStanzaBytes: max})
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := e.Append(make([]byte, 100), body, Meta{})
		if max < len(want) {
			var ie *ItemError
			if !errors.As(err, &ie) || ie.Reason != ReasonTooLarge || len(out) != 100 {
				t.Errorf("max %d: err %v, %d bytes", max, err, len(out))
			}
			continue
		}
		if err != nil || string(out[100:]) != want {
			t.Errorf("max %d: %v %s", max, err, out[100:])
		}
	}
	if _, err := NewEncoder(Options{Domain: "gw.example.org", MaxStanzaBytes: -1}); err == nil {
		t.Error("negative MaxStanzaBytes accepted")
	}
}
