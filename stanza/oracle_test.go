package stanza

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"mellium.im/xmpp/jid"

	"xmppgw/stanza/internal/xmlstrict"
)

// streamNS is the namespace of the stream e writes to.
func (e *Encoder) streamNS() string {
	if e.o.Mode == ModeClient {
		return nsClient
	}
	return nsComponent
}

// strictCheck is the oracle for what Append writes: as strict as the XML
// parser of Prosody and ejabberd (xmlstrict), within MaxStanzaBytes, a
// message or presence in the stream's namespace with an id, addressed by
// canonical JIDs, from inside our domain (component mode) or from the
// account or nobody (client mode).
func strictCheck(e *Encoder, out []byte) error {
	r, err := xmlstrict.Check(out, xmlstrict.Options{StreamNS: e.streamNS(), MaxBytes: e.maxStanza})
	if err != nil {
		return err
	}
	if r.Space != e.streamNS() || r.Local != "message" && r.Local != "presence" {
		return fmt.Errorf("root {%s}%s", r.Space, r.Local)
	}
	for _, a := range r.Attrs {
		if a.Space == "" && (a.Local == "from" || a.Local == "to") {
			j, err := jid.Parse(a.Value)
			if err != nil || j.String() != a.Value {
				return fmt.Errorf("%s %q is not a canonical JID", a.Local, a.Value)
			}
		}
	}
	if id, _ := r.Attr("id"); id == "" {
		return fmt.Errorf("no id")
	}
	from, has := r.Attr("from")
	if e.o.Mode == ModeClient {
		if has && from != e.accountFull && from != e.accountBare {
			return fmt.Errorf("from %q is not the account", from)
		}
		return nil
	}
	if !has {
		return fmt.Errorf("no from")
	}
	if j, _ := jid.Parse(from); j.Domainpart() != e.domain {
		return fmt.Errorf("from %q is outside %s", from, e.domain)
	}
	return nil
}

// builderCheck is the oracle for the builders' output: strict XML in the
// stream's namespace with the root element name.
func builderCheck(out []byte, name string) error {
	r, err := xmlstrict.Check(out, xmlstrict.Options{StreamNS: nsComponent})
	if err != nil {
		return err
	}
	if r.Space != nsComponent || r.Local != name {
		return fmt.Errorf("root {%s}%s, want %s", r.Space, r.Local, name)
	}
	return nil
}

// sameMeaning compares a raw stanza item with what Append wrote for it, as
// a server reads them: the children (names, attributes, text) must be the
// same; the stream namespaces and no namespace count as one (the encoder
// normalises them). It reports ok=false when the oracle refuses the input,
// which then has no meaning to compare.
func sameMeaning(e *Encoder, in string, out []byte) (ok bool, err error) {
	o := xmlstrict.Options{StreamNS: e.streamNS()}
	a, err1 := xmlstrict.Canon([]byte(in), o)
	if err1 != nil {
		return false, nil
	}
	b, err2 := xmlstrict.Canon(out, o)
	if err2 != nil {
		return true, err2
	}
	norm := func(s string) string {
		s = strings.ReplaceAll(s, "{"+nsClient+"}", "{}")
		s = strings.ReplaceAll(s, "{"+nsComponent+"}", "{}")
		_, children, _ := strings.Cut(s, "\n") // the root's attributes differ by design
		return children
	}
	ca, cb := norm(a), norm(b)
	if strings.HasPrefix(b, "S {"+e.streamNS()+"}message ") && originIDAt(ca) < 0 {
		// the encoder adds the message's origin-id: the last child, with
		// the stanza's id
		root, _, _ := strings.Cut(b, "\n")
		want := "S {" + nsSID + "}origin-id {}id=" + strconv.Quote(rootID(root)) + "\nE\n"
		i := originIDAt(cb)
		if i < 0 || !strings.HasPrefix(cb[i:], want) || strings.TrimSpace(cb[i+len(want):]) != "E" {
			return true, fmt.Errorf("no origin-id equal to the id as the message's last child:\n in  %s\n out %s", a, b)
		}
		cb = cb[:i] + cb[i+len(want):]
	}
	if ca != cb {
		return true, fmt.Errorf("meaning changed:\n in  %s\n out %s", a, b)
	}
	ra, _ := xmlstrict.Check([]byte(in), o)
	rb, _ := xmlstrict.Check(out, o)
	if x, y := rootAttrs(ra), rootAttrs(rb); x != y {
		return true, fmt.Errorf("root attributes changed: %s -> %s", x, y)
	}
	return true, nil
}

// originIDAt returns the offset in the canonical children of a stanza of
// its first child origin-id element (XEP-0359), or -1.
func originIDAt(children string) int {
	depth, off := 0, 0
	for _, line := range strings.SplitAfter(children, "\n") {
		switch {
		case strings.HasPrefix(line, "S "):
			if depth == 0 && strings.HasPrefix(line, "S {"+nsSID+"}origin-id ") {
				return off
			}
			depth++
		case strings.HasPrefix(line, "E"):
			depth--
		}
		off += len(line)
	}
	return -1
}

// rootID returns the value of the id attribute on a canonical root line.
func rootID(root string) string {
	_, v, ok := strings.Cut(root, " {}id=")
	if !ok {
		return ""
	}
	q, err := strconv.QuotedPrefix(v)
	if err != nil {
		return ""
	}
	id, _ := strconv.Unquote(q)
	return id
}

// rootAttrs lists the root's attributes other than from, to and id (which
// the encoder sets), sorted.
func rootAttrs(r xmlstrict.Root) string {
	var l []string
	for _, a := range r.Attrs {
		if a.Space == "" && (a.Local == "from" || a.Local == "to" || a.Local == "id") {
			continue
		}
		l = append(l, fmt.Sprintf("{%s}%s=%q", a.Space, a.Local, a.Value))
	}
	slices.Sort(l)
	return strings.Join(l, " ")
}
