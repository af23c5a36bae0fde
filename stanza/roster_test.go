package stanza

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// decodeRosterString decodes the first <query/> of s.
func decodeRosterString(t testing.TB, s string) ([]RosterItem, error) {
	t.Helper()
	start, d, ok := tryStart(s, "query")
	if !ok {
		t.Fatal("no query")
	}
	return DecodeRoster(start, d)
}

func TestDecodeRoster(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     []RosterItem
		cond     string // DecodeError condition, "" for none
	}{
		{"result", `<iq type='result'><query xmlns='jabber:iq:roster' ver='v1'>
			<item jid='alice@example.org' subscription='both' name='Alice'><group>Friends</group></item>
			<item jid='bob@example.org' subscription='from' ask='subscribe'/>
			<item jid='carol@example.org'/>
			<item jid='dave@example.org' subscription='to'/>
			</query></iq>`,
			[]RosterItem{{"alice@example.org", "both"}, {"bob@example.org", "from"}, {"carol@example.org", "none"}, {"dave@example.org", "to"}}, ""},
		{"push remove", `<iq type='set'><query xmlns='jabber:iq:roster'><item jid='a@b' subscription='remove'/></query></iq>`,
			[]RosterItem{{"a@b", "remove"}}, ""},
		{"empty", `<query xmlns='jabber:iq:roster'/>`, nil, ""},
		{"skipped", `<query xmlns='jabber:iq:roster'>
			<item subscription='both'/>
			<item jid='' subscription='both'/>
			<item jid='x@y' subscription='maybe'/>
			<item xmlns='urn:other' jid='o@y' subscription='both'/>
			<other jid='p@y' subscription='both'/>
			<item jid='q@y' x:subscription='remove' xmlns:x='urn:x'/>
			<group><item jid='n@y' subscription='both'/></group>
			</query>`,
			[]RosterItem{{"q@y", "none"}}, ""},
		{"long jid", `<query xmlns='jabber:iq:roster'><item jid='` + strings.Repeat("a", MaxRosterJIDBytes) + `x@y' subscription='to'/><item jid='k@y' subscription='to'/></query>`,
			[]RosterItem{{"k@y", "to"}}, ""},
		{"not roster", `<query xmlns='jabber:iq:version'><item jid='a@b'/></query>`, nil, "bad-request"},
		{"deep", `<query xmlns='jabber:iq:roster'>` + strings.Repeat("<a>", 40) + strings.Repeat("</a>", 40) + `<item jid='a@b'/></query>`, nil, "policy-violation"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := decodeRosterString(t, c.in)
			var de *DecodeError
			switch {
			case c.cond == "" && err != nil:
				t.Fatalf("err = %v", err)
			case c.cond != "" && (!errors.As(err, &de) || de.Condition != c.cond):
				t.Fatalf("err = %v, want %s", err, c.cond)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("items = %q, want %q", got, c.want)
			}
		})
	}
}

// The reader is left just after the query: the rest of the IQ is intact.
func TestDecodeRosterConsumesQueryOnly(t *testing.T) {
	start, d, _ := tryStart(`<iq><query xmlns='jabber:iq:roster'><item jid='a@b'><group>g</group></item></query><after/></iq>`, "query")
	if _, err := DecodeRoster(start, d); err != nil {
		t.Fatal(err)
	}
	tok, err := d.Token()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fmt.Sprint(tok), "after") {
		t.Errorf("next token %v, want <after>", tok)
	}
	// A stream that ends inside the query is an error of its own.
	start, d, _ = tryStart(`<query xmlns='jabber:iq:roster'><item jid='a@b'>`, "query")
	if _, err := DecodeRoster(start, d); err == nil {
		t.Error("no error at end of input")
	}
}

// Item count and total size are bounded; items past the bounds are
// consumed, not kept.
func TestDecodeRosterBounds(t *testing.T) {
	var b strings.Builder
	b.WriteString(`<query xmlns='jabber:iq:roster'>`)
	for i := range MaxRosterItems + 50 {
		fmt.Fprintf(&b, `<item jid='u%d@example.org' subscription='both'/>`, i)
	}
	b.WriteString(`</query>`)
	items, err := decodeRosterString(t, b.String())
	var de *DecodeError
	if !errors.As(err, &de) || de.Condition != "policy-violation" {
		t.Fatalf("err = %v", err)
	}
	if len(items) != MaxRosterItems || items[MaxRosterItems-1].JID != fmt.Sprintf("u%d@example.org", MaxRosterItems-1) {
		t.Fatalf("%d items kept", len(items))
	}

	b.Reset()
	b.WriteString(`<query xmlns='jabber:iq:roster'>`)
	long := strings.Repeat("a", MaxRosterJIDBytes-20)
	n := 0
	for i := range MaxRosterBytes/len(long) + 10 {
		fmt.Fprintf(&b, `<item jid='%s%d@e.org' subscription='to'/>`, long, i)
		n++
	}
	b.WriteString(`</query>`)
	items, err = decodeRosterString(t, b.String())
	if !errors.As(err, &de) || de.Condition != "policy-violation" {
		t.Fatalf("err = %v", err)
	}
	size := 0
	for _, it := range items {
		size += len(it.JID)
	}
	if size > MaxRosterBytes || len(items) >= n {
		t.Fatalf("%d bytes in %d items kept", size, len(items))
	}
}

var rosterSeeds = []string{
	`<iq type='result' id='r1'><query xmlns='jabber:iq:roster' ver='v'><item jid='a@b' subscription='both' name='A'><group>G</group></item><item jid='c@d' ask='subscribe'/></query></iq>`,
	`<iq type='set' id='p1'><query xmlns='jabber:iq:roster'><item jid='a@b' subscription='remove'/></query></iq>`,
	`<query xmlns='jabber:iq:roster'><item jid='a@b' subscription='bogus'/><item/><item jid=''/></query>`,
	`<query xmlns='jabber:iq:roster'><a><b><c><d><item jid='deep@b'/></d></c></b></a></query>`,
	`<query xmlns='jabber:iq:private'><item jid='a@b'/></query>`,
	`<query xmlns='jabber:iq:roster'><item xmlns='urn:x' jid='a@b'/><r:item xmlns:r='jabber:iq:roster' jid='e@f' subscription='to'/></query>`,
	`<query xmlns='jabber:iq:roster'><item jid='&lt;a&gt;@b&amp;c' subscription='from'/>`,
}

// FuzzRoster: whatever the input, DecodeRoster keeps within its bounds and
// returns only items with a valid subscription and a bounded UTF-8 JID.
func FuzzRoster(f *testing.F) {
	for _, s := range rosterSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, d, ok := tryStart(s, "query")
		if !ok {
			return
		}
		items, err := DecodeRoster(start, d)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) && !errors.Is(err, ErrUnexpectedEOF) && !strings.HasPrefix(err.Error(), "stanza: reading roster: ") {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
		}
		if start.Name.Space != NSRoster && len(items) != 0 {
			t.Fatalf("items from a %s query", start.Name.Space)
		}
		if len(items) > MaxRosterItems {
			t.Fatalf("%d items", len(items))
		}
		size := 0
		for _, it := range items {
			size += len(it.JID)
			if it.JID == "" || len(it.JID) > MaxRosterJIDBytes || !utf8.ValidString(it.JID) {
				t.Fatalf("bad jid %q", it.JID)
			}
			switch it.Subscription {
			case "none", "to", "from", "both", "remove":
			default:
				t.Fatalf("subscription %q", it.Subscription)
			}
		}
		if size > MaxRosterBytes {
			t.Fatalf("%d bytes kept", size)
		}
	})
}
