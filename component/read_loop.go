package component

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"runtime/debug"

	"mellium.im/xmlstream"
	mstanza "mellium.im/xmpp/stanza"
	"mellium.im/xmpp/stream"

	"xmppgw/stanza"
)

// The component mode read loop. After mellium's negotiation it reads the
// stream itself (client mode keeps mellium's Serve: its stream runs over
// TLS and through mellium's own reader):
//
//   - streamReader splits the stream into its top-level elements, bytes
//     in its own buffer;
//   - a <message/> of a common shape goes through stanza.MessageDecoder,
//     without encoding/xml or reflection, straight to the Inbound;
//   - every other element — iq, presence, an unusual message, anything
//     the fast path leaves — goes through one encoding/xml decoder that
//     has read the server's stream header (so its namespace declarations
//     apply), into the same handler mellium's Serve calls (handle), with what
//     Serve did around it: a from equal to our bare address blanked,
//     stream-level elements and XML that XMPP forbids refused, the
//     handler's writes through mellium's output lock, the element read to
//     its end.
//
// It ends as Serve ends: at the server's </stream:stream> with nil, on
// any other error with that error, in both cases after closing our side
// of the stream (mellium encodes a stream error first but never flushes
// it: only </stream:stream> reaches the wire, and so it is here).

// Errors of the stream the read loop refuses, as mellium's stream reader
// words them.
var (
	errUnknownStreamElement = errors.New("xmpp: unknown stream level element")
	errUnexpectedRestart    = errors.New("xmpp: unexpected stream restart")
)

// serveOwn runs our read loop and ends the stream as mellium's Serve does.
func (s *Session) serveOwn() error {
	err := s.readLoop()
	if err == io.EOF {
		err = nil
	}
	if e := s.xs.Close(); e != nil {
		return e
	}
	return err
}

func (s *Session) readLoop() error {
	for {
		elem, err := s.sr.next()
		if err != nil {
			return err
		}
		if err := s.element(elem); err != nil {
			return err
		}
	}
}

// element handles one top-level element. Nothing may keep a slice of
// elem (the stream reader's buffer) after it returns.
func (s *Session) element(elem []byte) error {
	s.lastRead.Store(s.now())
	if bytes.HasPrefix(elem, []byte("<message")) {
		if ev, err := s.md.Decode(elem); err == nil {
			return s.fastMessage(&ev)
		}
	}
	return s.tokenElement(elem)
}

// fastMessage hands on a message MessageDecoder read (its strings are its
// own), as handleMessage would have.
func (s *Session) fastMessage(ev *stanza.Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic while handling a stanza; ending the session", "stanza", "message", "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("component: panic while handling <message/>: %v", r)
		}
	}()
	if ev.From == s.bareSelf {
		ev.From = "" // as mellium's Serve does
	}
	s.deliverMessage(ev)
	return nil
}

// tokenDecoder returns the read loop's encoding/xml decoder, made on first
// use: it has read the server's stream header (its namespace declarations,
// which the elements inherit) and reads, element after element, what
// tokenElement feeds it. It reads byte by byte from the feed and never
// past the end tag of an element, so it is positioned between two
// elements of the stream after each, as mellium's decoder is.
func (s *Session) tokenDecoder() (*xml.Decoder, error) {
	if s.dec != nil {
		return s.dec, nil
	}
	s.feed.b = s.header
	d := xml.NewDecoder(&s.feed)
	if tok, err := d.Token(); err != nil {
		return nil, fmt.Errorf("component: replaying the stream header: %w", err)
	} else if _, ok := tok.(xml.StartElement); !ok || len(s.feed.b) != 0 {
		return nil, errors.New("component: replaying the stream header: not one start tag")
	}
	s.dec = d
	return d, nil
}

// tokenElement reads elem with encoding/xml into handle.
func (s *Session) tokenElement(elem []byte) error {
	d, err := s.tokenDecoder()
	if err != nil {
		return err
	}
	s.feed.b = elem
	defer func() { s.feed.b = nil }()
	from := d.InputOffset()
	r := streamChecker{d}
	tok, err := r.Token()
	if err != nil {
		return err
	}
	start, ok := tok.(xml.StartElement)
	if !ok {
		return fmt.Errorf("component: stream: %T where an element starts", tok)
	}
	if mstanza.Is(start.Name, s.ns) {
		// mellium's Serve blanks the first attribute named from (whatever
		// its prefix) when it is our own bare address.
		for i, a := range start.Attr {
			if a.Name.Local == "from" {
				if a.Value == s.bareSelf {
					start.Attr[i].Value = ""
				}
				break
			}
		}
	}
	in := &innerReader{r: r}
	w := &lazyWriter{s: s}
	defer w.Close()
	if err := s.handle(elemRW{in, w}, &start); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for {
		if _, err := in.Token(); err == io.EOF {
			break
		} else if err != nil {
			return err
		}
	}
	if n := d.InputOffset() - from; n != int64(len(elem)) || len(s.feed.b) != 0 {
		return fmt.Errorf("component: the XML decoder ended an element at byte %d of %d where the stream reader did not", n, len(elem))
	}
	return nil
}

// streamChecker refuses, anywhere in an element, what mellium's stream
// reader refuses: elements of the streams namespace (a stream error among
// them is decoded and returned as the error), processing instructions,
// comments and directives.
type streamChecker struct{ d *xml.Decoder }

func (c streamChecker) Token() (xml.Token, error) {
	tok, err := c.d.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case xml.StartElement:
		if t.Name.Space != nsStream {
			break
		}
		switch t.Name.Local {
		case "error":
			var se stream.Error
			if err := c.d.DecodeElement(&se, &t); err != nil {
				return nil, err
			}
			return nil, se
		case "stream":
			return nil, errUnexpectedRestart
		}
		return nil, errUnknownStreamElement
	case xml.EndElement:
		if t.Name.Space != nsStream {
			break
		}
		if t.Name.Local == "stream" {
			return nil, io.EOF
		}
		return nil, stream.BadFormat
	case xml.ProcInst:
		return nil, errors.New("disallowed XML proc inst encountered")
	case xml.Comment:
		return nil, errors.New("disallowed XML comment encountered")
	case xml.Directive:
		return nil, errors.New("disallowed XML directive encountered")
	}
	return tok, nil
}

// innerReader gives a handler the rest of an element: its content and end
// tag, then io.EOF (xmlstream.InnerElement's shape).
type innerReader struct {
	r     xml.TokenReader
	depth int
}

func (ir *innerReader) Token() (xml.Token, error) {
	if ir.depth < 0 {
		return nil, io.EOF
	}
	tok, err := ir.r.Token()
	switch tok.(type) {
	case xml.StartElement:
		ir.depth++
	case xml.EndElement:
		ir.depth--
	}
	return tok, err
}

// lazyWriter takes mellium's output lock at a handler's first write only
// and holds it until Close (mellium's deferWriter).
type lazyWriter struct {
	s *Session
	w xmlstream.TokenWriteFlushCloser
}

func (lw *lazyWriter) EncodeToken(t xml.Token) error {
	if lw.w == nil {
		lw.w = lw.s.xs.TokenWriter()
	}
	return lw.w.EncodeToken(t)
}

func (lw *lazyWriter) Flush() error {
	if lw.w == nil {
		return nil
	}
	return lw.w.Flush()
}

func (lw *lazyWriter) Close() error {
	if lw.w == nil {
		return nil
	}
	return lw.w.Close()
}

// elemRW is what a handler gets: the element's rest to read and a writer.
type elemRW struct {
	xml.TokenReader
	w *lazyWriter
}

func (rw elemRW) EncodeToken(t xml.Token) error { return rw.w.EncodeToken(t) }

// Encode and EncodeElement write v through the token writer (mellium's
// responseChecker does the same through its internal marshal package).
func (rw elemRW) Encode(v any) error { return rw.encode(v, nil) }

func (rw elemRW) EncodeElement(v any, start xml.StartElement) error { return rw.encode(v, &start) }

func (rw elemRW) encode(v any, start *xml.StartElement) error {
	if wt, ok := v.(xmlstream.WriterTo); ok {
		_, err := wt.WriteXML(rw)
		return err
	}
	var b bytes.Buffer
	e := xml.NewEncoder(&b)
	var err error
	if start != nil {
		err = e.EncodeElement(v, *start)
	} else {
		err = e.Encode(v)
	}
	if err != nil {
		return err
	}
	d := xml.NewDecoder(&b)
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			return rw.w.Flush()
		}
		if err != nil {
			return err
		}
		if err := rw.w.EncodeToken(tok); err != nil {
			return err
		}
	}
}

// feed is what the token decoder reads: the bytes tokenElement gives it,
// as an io.ByteReader (so that encoding/xml does not buffer ahead), then
// io.EOF until it is given more.
type feed struct{ b []byte }

func (f *feed) ReadByte() (byte, error) {
	if len(f.b) == 0 {
		return 0, io.EOF
	}
	c := f.b[0]
	f.b = f.b[1:]
	return c, nil
}

func (f *feed) Read(p []byte) (int, error) {
	if len(f.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, f.b)
	f.b = f.b[n:]
	return n, nil
}
