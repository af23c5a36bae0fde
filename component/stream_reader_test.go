package component

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

const testHeader = `<stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' from='gw.example.org' id='1'>`

// chunkReader returns its data in reads of the given sizes, in turn.
type chunkReader struct {
	data  []byte
	sizes []int
	i     int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := len(r.data)
	if len(r.sizes) > 0 {
		n = max(1, r.sizes[r.i%len(r.sizes)])
		r.i++
	}
	n = min(n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// split reads every element of stream (read in chunks of sizes) with a
// stream reader, until it fails; io.EOF is the stream's end tag.
func split(stream string, max int, sizes ...int) ([]string, error) {
	sr := newStreamReader(&chunkReader{data: []byte(stream), sizes: sizes}, []byte("stream:stream"), max)
	var out []string
	for {
		elem, err := sr.next()
		if err != nil {
			return out, err
		}
		out = append(out, string(elem))
	}
}

func TestStreamReaderSplits(t *testing.T) {
	elems := []string{
		`<message from='a>b' to="c/>d" id='x'><body a='>' b="'&gt;'">1 &gt; 0 / 2</body></message>`,
		`<presence/>`,
		`<presence type='unavailable' />`,
		`<iq type='get' id='q'><ping xmlns='urn:xmpp:ping'/></iq>`,
		`<message><body><![CDATA[</body> <x> ]] ]]] ]>]]></body><thread><![CDATA[]]></thread></message>`,
		`<m:message xmlns:m='jabber:component:accept'><m:body>x</m:body></m:message>`,
		`<message>` + strings.Repeat(`<a xmlns='urn:a'>`, 100) + strings.Repeat(`</a>`, 100) + `</message>`,
		`<message><body>` + strings.Repeat("é&amp;", 40000) + `</body></message>`, // over the first buffer
		`<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`,
	}
	stream := " \n" + strings.Join(elems, "\t\r\n ") + "  </stream:stream  >trailing junk"
	for _, sizes := range [][]int{nil, {1}, {2, 3, 5, 7}, {4096}, {100000}} {
		got, err := split(stream, 1<<20, sizes...)
		if err != io.EOF {
			t.Fatalf("reads of %v: err %v after %d elements", sizes, err, len(got))
		}
		if len(got) != len(elems) {
			t.Fatalf("reads of %v: %d elements, want %d", sizes, len(got), len(elems))
		}
		for i := range elems {
			if got[i] != elems[i] {
				t.Fatalf("reads of %v: element %d:\n got %.200q\nwant %.200q", sizes, i, got[i], elems[i])
			}
		}
	}
}

// TestStreamReaderEveryBoundary: one stanza split at every byte into two
// reads.
func TestStreamReaderEveryBoundary(t *testing.T) {
	elem := `<message from='a@b/c' to='n@gw' id='i'><body a='>'>x<![CDATA[<y/>]]>&amp;</body><request xmlns='urn:xmpp:receipts'/></message>`
	stream := elem + " " + elem + "</stream:stream>"
	for k := 1; k < len(stream); k++ {
		got, err := split(stream, 1<<20, k, len(stream))
		if err != io.EOF || len(got) != 2 || got[0] != elem || got[1] != elem {
			t.Fatalf("split at %d: %q %v", k, got, err)
		}
	}
}

func TestStreamReaderRefuses(t *testing.T) {
	tests := [...]struct{ in, want string }{
		0:  {`<!-- hi --><presence/>`, "comment"},
		1:  {`<message><!-- hi --></message>`, "comment"},
		2:  {`<?xml version='1.0'?>`, "processing instruction"},
		3:  {`<message><?pi?></message>`, "processing instruction"},
		4:  {`<!DOCTYPE x>`, "DOCTYPE"},
		5:  {`<message><!ENTITY x 'y'></message>`, "DOCTYPE"},
		6:  {`<![CDATA[ ]]>`, "CDATA"},
		7:  {`hello<presence/>`, "text between stanzas"},
		8:  {`</message>`, "outside any element"},
		9:  {`<message><body>x</stream:stream>`, "closed by"},
		10: {`<message><body>x</thread></message>`, "closed by"},
		11: {`<stream:stream xmlns='jabber:component:accept'>`, "restarted"},
		12: {`<message><body>x`, "inside an element"},
		13: {`<message`, "inside an element"},
		14: {`<presence/>`, "without ending the stream"},
		15: {`<message a='1' / >`, "'/' not followed by '>'"},
		16: {`<message><body>x</body x></message>`, "malformed end tag"},
		17: {`< message/>`, "after '<'"},
		18: {`<mess"age/>`, "in an element name"},
		19: {`<message><body>` + strings.Repeat("x", 2000) + `</body></message>`, "more than 1000 bytes"},
		20: {`<message><body>` + strings.Repeat("x", 2000), "more than 1000 bytes"},
		21: {`<message a='1' <b/>`, "'<' in a start tag"},
	}
	for i, tc := range tests {
		for _, sizes := range [][]int{nil, {1}} {
			_, err := split(tc.in, 1000, sizes...)
			if err == nil || err == io.EOF || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%d (reads of %v): err %v, want %q", i, sizes, err, tc.want)
			}
		}
	}
}

// TestStreamReaderGivesBackItsBuffer: after a large element, an idle
// reader goes back to its first buffer size.
func TestStreamReaderGivesBackItsBuffer(t *testing.T) {
	big := `<message><body>` + strings.Repeat("x", 1<<20) + `</body></message>`
	sr := newStreamReader(&chunkReader{data: []byte(big + `<presence/>`)}, []byte("stream:stream"), 2<<20)
	if elem, err := sr.next(); err != nil || len(elem) != len(big) {
		t.Fatalf("%d bytes, %v", len(elem), err)
	}
	if elem, err := sr.next(); err != nil || string(elem) != `<presence/>` {
		t.Fatalf("%q, %v", elem, err)
	}
	if len(sr.buf) != streamBufSize {
		t.Fatalf("buffer of %d bytes kept", len(sr.buf))
	}
	// Also with data read ahead: it moves to the new buffer.
	sr = newStreamReader(&chunkReader{data: []byte(big + `<presence id='1'/><presence id='2'/>`)}, []byte("stream:stream"), 2<<20)
	if elem, err := sr.next(); err != nil || len(elem) != len(big) {
		t.Fatalf("%d bytes, %v", len(elem), err)
	}
	for _, want := range []string{`<presence id='1'/>`, `<presence id='2'/>`} {
		if elem, err := sr.next(); err != nil || string(elem) != want {
			t.Fatalf("%q, %v", elem, err)
		}
		if len(sr.buf) != streamBufSize {
			t.Fatalf("buffer of %d bytes kept", len(sr.buf))
		}
	}
}

// refElements reads the top-level elements of stream (after the header)
// with encoding/xml as mellium's reader would: the byte ranges of the
// elements, the whitespace-only text between them, until an error or the
// stream's end (end true).
func refElements(stream string) (elems []string, gaps []string, end bool, err error) {
	d := xml.NewDecoder(strings.NewReader(testHeader + stream))
	if _, err := d.Token(); err != nil {
		return nil, nil, false, err
	}
	r := streamChecker{d}
	base := int64(len(testHeader))
	gapStart := int64(0)
	for {
		from := d.InputOffset() - base
		tok, err := r.Token()
		if err == io.EOF {
			return elems, gaps, true, nil
		}
		if err != nil {
			return elems, gaps, false, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimLeft(t, " \t\r\n")) != 0 {
				return elems, gaps, false, errors.New("text")
			}
		case xml.StartElement:
			for depth := 1; depth > 0; {
				tok, err := r.Token()
				if err != nil {
					return elems, gaps, false, err
				}
				switch tok.(type) {
				case xml.StartElement:
					depth++
				case xml.EndElement:
					depth--
				}
			}
			gaps = append(gaps, stream[gapStart:from])
			gapStart = d.InputOffset() - base
			elems = append(elems, stream[from:gapStart])
		default:
			return elems, gaps, false, fmt.Errorf("%T", tok)
		}
	}
}

// validElement reports whether elem is one well-formed element that
// mellium's reader takes: what the read loop's decoders check before
// anything acts on it.
func validElement(elem string) bool {
	d := xml.NewDecoder(strings.NewReader(testHeader + elem))
	if _, err := d.Token(); err != nil {
		return false
	}
	r := streamChecker{d}
	depth := 0
	for {
		tok, err := r.Token()
		if err != nil {
			return false
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
		}
		if depth == 0 {
			return d.InputOffset() == int64(len(testHeader)+len(elem))
		}
	}
}

var streamSeeds = []string{
	`<message from='a>b'><body>x</body></message> <presence/></stream:stream>`,
	`<message><body><![CDATA[</body>]]></body></message>`,
	`<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>` + "\n\t",
	`<m:message xmlns:m='jabber:component:accept'><m:body/></m:message></stream:stream>`,
	`<stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`,
	`<!-- c --><presence/>`,
	`<message><body>x</stream:stream>`,
	`<a><b></a></b>`,
	`<a x="'>'" y='"'/>&#32;<b/>`,
	`<![CDATA[ ]]><presence/>`,
	`<stream/>`,
}

// FuzzStreamReader: the stream reader never hands out an element that
// the decoders accept and that encoding/xml, reading the stream, would
// have read otherwise; where encoding/xml reads an element the reader
// refuses, it is for a documented reason (it is stricter between stanzas
// and about stream restarts).
func FuzzStreamReader(f *testing.F) {
	for _, s := range streamSeeds {
		f.Add(s, uint8(0))
		f.Add(s, uint8(3))
	}
	f.Fuzz(func(t *testing.T, stream string, chunk uint8) {
		got, err := split(stream, 1<<20, int(chunk))
		want, gaps, end, rerr := refElements(stream)
		for i, e := range got {
			if !validElement(e) {
				return // the session ends on this element
			}
			if i >= len(want) {
				t.Fatalf("element %d %q, which encoding/xml did not read (%v)", i, e, rerr)
			}
			if e != want[i] {
				t.Fatalf("element %d %q, encoding/xml read %q", i, e, want[i])
			}
		}
		if err == io.EOF {
			if !end || len(got) != len(want) {
				t.Fatalf("stream end after %d elements; encoding/xml: %d elements, end %v, %v", len(got), len(want), end, rerr)
			}
			return
		}
		if len(want) > len(got) {
			// Refused where encoding/xml read an element: only for text
			// between stanzas that is not plain whitespace (a CDATA
			// section or a reference), or an element named stream.
			k := len(got)
			if strings.Trim(gaps[k], " \t\r\n") == "" && !strings.HasPrefix(want[k], "<stream ") && !strings.HasPrefix(want[k], "<stream>") &&
				!strings.HasPrefix(want[k], "<stream/") && !strings.Contains(strings.SplitN(want[k], ">", 2)[0], ":stream") {
				t.Fatalf("refused %q (%v), which encoding/xml read", want[k], err)
			}
		}
	})
}
