package component

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"xmppgw/stanza"
)

// MaxElementBytes is the largest element of a component stream the read
// loop takes with the decode limits lim: 1 MiB of markup and extensions,
// plus every field the decoders bound (body, subject, thread and error
// text at MaxTextBytes, the JSON payload at MaxPayloadBytes) at its limit
// and escaped five-fold (& is &amp;). 7.25 MiB with the default limits;
// Prosody's default stanza limit on the component port is 512 KiB.
//
// An element over it ends the session with an error saying so: it is not
// buffered whole. (mellium's Serve, which client mode keeps, buffers a
// text node of any size before the decoder refuses it.) An element within
// it but over the decode limits is refused with a stanza error, as ever.
func MaxElementBytes(lim stanza.Limits) int {
	text, payload := lim.MaxTextBytes, lim.MaxPayloadBytes
	if text <= 0 {
		text = stanza.DefaultMaxInTextBytes
	}
	if payload <= 0 {
		payload = stanza.DefaultMaxInPayloadBytes
	}
	return 1<<20 + 5*(4*text+payload)
}

// Buffer sizes of the stream reader: what it starts with and goes back to
// when idle, and the least room it reads into (bufConnSize or more, so
// that the reads bypass bufConn's buffer).
const (
	streamBufSize = 64 << 10
	minReadSize   = 16 << 10
)

// maxNameStack is how deep the stream reader checks that end tags match
// their start tags. Deeper end tags are only counted: the decoders check
// the element again before anyone acts on it, so a mismatch there ends
// the session all the same, only later.
const maxNameStack = 64

// streamReader splits a component stream, after its negotiation, into its
// top-level elements (the children of <stream:stream>), by scanning
// bytes: it knows tags, quoted attribute values (which may hold '>'),
// empty elements, CDATA sections, whitespace between stanzas and the
// stream's end tag, and what XMPP forbids (comments, processing
// instructions, DOCTYPE and other declarations, text between stanzas):
// those are errors, as is an element over its size limit or a stream
// that breaks off inside an element. It does not validate names, text or
// references: every element it returns is decoded by MessageDecoder or
// encoding/xml, which refuse anything malformed, so the session ends
// with an error rather than acting on a misread element.
//
// The element it returns is a slice of its own buffer, valid until the
// next call.
type streamReader struct {
	r   io.Reader
	max int    // bytes of one element
	end []byte // the qualified name of the stream element, e.g. stream:stream

	buf    []byte
	off    int   // start of the element being read (or of unread data)
	pos    int   // how far the element has been scanned
	n      int   // end of the data read
	rerr   error // the read error to report once the data read is used up
	st     uint8 // scan state
	depth  int   // elements open
	quote  byte  // in stAttrValue: the quote that ends it
	k      int   // progress through "[CDATA[" (stBang), ']' seen (stCDATA)
	name   int   // start of the name being read, from off
	ending bool  // the end tag being read is the stream's

	names [maxNameStack][2]int32 // names of the open elements: start (from off), length
}

// Scan states.
const (
	stTop       uint8 = iota // between elements: whitespace or '<'
	stText                   // in an element's content
	stLT                     // after '<'
	stBang                   // after "<!"
	stCDATA                  // in a CDATA section
	stStartName              // in a start tag's name
	stInTag                  // in a start tag, after its name
	stAttrValue              // in a quoted attribute value
	stSlash                  // after '/' in a start tag
	stEndName                // in an end tag's name
	stEndTail                // after an end tag's name
)

func newStreamReader(r io.Reader, end []byte, max int) *streamReader {
	return &streamReader{r: r, max: max, end: end, buf: make([]byte, streamBufSize)}
}

// next returns the next top-level element, whitespace before it skipped;
// it is valid until the next call. io.EOF means that the server ended the
// stream with its end tag; any other error that the stream is unusable.
func (sr *streamReader) next() ([]byte, error) {
	sr.off, sr.st, sr.depth = sr.pos, stTop, 0
	if pending := sr.n - sr.off; len(sr.buf) > streamBufSize && pending <= streamBufSize-minReadSize {
		// Give back the buffer a large element grew.
		nb := make([]byte, streamBufSize)
		copy(nb, sr.buf[sr.off:sr.n])
		sr.buf = nb
		sr.off, sr.pos, sr.n = 0, 0, pending
	} else if pending == 0 {
		sr.off, sr.pos, sr.n = 0, 0, 0
	}
	for {
		done, err := sr.scan()
		if err != nil {
			return nil, err
		}
		if done {
			if sr.pos-sr.off > sr.max {
				return nil, sr.tooLarge()
			}
			return sr.buf[sr.off:sr.pos], nil
		}
		if err := sr.fill(); err != nil {
			return nil, err
		}
	}
}

func (sr *streamReader) tooLarge() error {
	return fmt.Errorf("an element of more than %d bytes (MaxElementBytes for the decode limits)", sr.max)
}

// fill reads more of the stream after buf[n], making room first.
func (sr *streamReader) fill() error {
	if sr.rerr != nil {
		return sr.readErr()
	}
	if sr.n-sr.off > sr.max {
		return sr.tooLarge()
	}
	if len(sr.buf)-sr.n < minReadSize {
		// Move the element to the front (offsets into it are from off),
		// and grow the buffer if that is not enough.
		kept := copy(sr.buf, sr.buf[sr.off:sr.n])
		sr.pos -= sr.off
		sr.n, sr.off = kept, 0
		if len(sr.buf)-sr.n < minReadSize {
			nb := make([]byte, min(max(2*len(sr.buf), sr.n+minReadSize), sr.max+minReadSize+1))
			copy(nb, sr.buf[:sr.n])
			sr.buf = nb
		}
	}
	m, err := sr.r.Read(sr.buf[sr.n:])
	sr.n += m
	if err != nil {
		sr.rerr = err
		if m == 0 {
			return sr.readErr()
		}
	}
	return nil
}

// readErr is the read error, once the data read before it is used up.
func (sr *streamReader) readErr() error {
	if !errors.Is(sr.rerr, io.EOF) {
		return sr.rerr
	}
	if sr.st == stTop {
		return errors.New("the server closed the connection without ending the stream")
	}
	return fmt.Errorf("the server closed the connection inside an element: %w", io.ErrUnexpectedEOF)
}

// scan advances through buf[pos:n]. It reports whether a whole
// top-level element ends at pos; io.EOF when the stream's end tag does.
func (sr *streamReader) scan() (done bool, err error) {
	b := sr.buf[:sr.n]
	i := sr.pos
	defer func() { sr.pos = i }()
	for i < len(b) {
		switch sr.st {
		case stTop:
			for i < len(b) && isSpace(b[i]) {
				i++
			}
			sr.off = i
			if i == len(b) {
				break
			}
			if b[i] != '<' {
				return false, errors.New("text between stanzas")
			}
			i++
			sr.st = stLT
		case stText:
			j := bytes.IndexByte(b[i:], '<')
			if j < 0 {
				i = len(b)
				break
			}
			i += j + 1
			sr.st = stLT
		case stLT:
			switch c := b[i]; {
			case c == '/':
				i++
				sr.name, sr.st = i-sr.off, stEndName
			case c == '!':
				i++
				sr.k, sr.st = 0, stBang
			case c == '?':
				return false, errors.New("a processing instruction (XMPP forbids them)")
			case !nameByte(c):
				return false, fmt.Errorf("%q after '<'", c)
			default:
				sr.name, sr.st = i-sr.off, stStartName
			}
		case stBang:
			const cdata = "[CDATA["
			if c := b[i]; sr.depth == 0 || c != cdata[sr.k] {
				return false, forbidden(c, sr.k)
			}
			i++
			if sr.k++; sr.k == len(cdata) {
				sr.k, sr.st = 0, stCDATA
			}
		case stCDATA:
			for i < len(b) {
				c := b[i]
				i++
				if c == ']' {
					sr.k++
				} else if c == '>' && sr.k >= 2 {
					sr.k, sr.st = 0, stText
					break
				} else {
					sr.k = 0
					if j := bytes.IndexByte(b[i:], ']'); j < 0 {
						i = len(b)
					} else {
						i += j
					}
				}
			}
		case stStartName:
			for i < len(b) && nameByte(b[i]) {
				i++
			}
			if i == len(b) {
				break
			}
			if c := b[i]; !isSpace(c) && c != '/' && c != '>' {
				return false, fmt.Errorf("%q in an element name", c)
			}
			name := b[sr.off+sr.name : i]
			if sr.depth == 0 && (string(name) == "stream" || bytes.HasSuffix(name, []byte(":stream"))) {
				return false, errors.New("the server restarted the stream")
			}
			if sr.depth < maxNameStack {
				sr.names[sr.depth] = [2]int32{int32(sr.name), int32(len(name))}
			}
			sr.st = stInTag
		case stInTag:
			for i < len(b) && !tagByte[b[i]] {
				i++
			}
			if i == len(b) {
				break
			}
			switch c := b[i]; c {
			case '>':
				i++
				sr.depth++
				sr.st = stText
			case '/':
				i++
				sr.st = stSlash
			case '\'', '"':
				i++
				sr.quote, sr.st = c, stAttrValue
			case '<':
				return false, errors.New("'<' in a start tag")
			}
		case stAttrValue:
			j := bytes.IndexByte(b[i:], sr.quote)
			if j < 0 {
				i = len(b)
				break
			}
			i += j + 1
			sr.st = stInTag
		case stSlash:
			if b[i] != '>' {
				return false, errors.New("'/' not followed by '>' in a start tag")
			}
			i++
			if sr.depth == 0 {
				return true, nil
			}
			sr.st = stText
		case stEndName:
			for i < len(b) && nameByte(b[i]) {
				i++
			}
			if i == len(b) {
				break
			}
			name := b[sr.off+sr.name : i]
			if sr.depth == 0 {
				if !bytes.Equal(name, sr.end) {
					return false, fmt.Errorf("end tag </%s> outside any element", clip(name))
				}
				sr.ending = true
			} else {
				sr.depth--
				if sr.depth < maxNameStack {
					s := sr.names[sr.depth]
					if open := b[sr.off+int(s[0]) : sr.off+int(s[0]+s[1])]; !bytes.Equal(name, open) {
						return false, fmt.Errorf("element <%s> closed by </%s>", clip(open), clip(name))
					}
				}
			}
			sr.st = stEndTail
		case stEndTail:
			for i < len(b) && isSpace(b[i]) {
				i++
			}
			if i == len(b) {
				break
			}
			if b[i] != '>' {
				return false, errors.New("malformed end tag")
			}
			i++
			if sr.ending {
				return false, io.EOF
			}
			if sr.depth == 0 {
				return true, nil
			}
			sr.st = stText
		}
	}
	return false, nil
}

// forbidden names what starts "<!" when c follows k bytes of "[CDATA["
// after it: XMPP forbids comments and declarations, and CDATA sections
// have no place between stanzas.
func forbidden(c byte, k int) error {
	switch {
	case k > 0:
		return errors.New("a malformed CDATA section")
	case c == '-':
		return errors.New("a comment (XMPP forbids them)")
	case c == '[':
		return errors.New("a CDATA section between stanzas")
	}
	return errors.New("a DOCTYPE or other declaration (XMPP forbids them)")
}

// tagByte marks the bytes that matter in a start tag after its name.
var tagByte = [256]bool{'>': true, '/': true, '\'': true, '"': true, '<': true}

// nameByte reports whether c may be part of a name for the splitter: the
// decoders check names; this only stops at what ends one.
func nameByte(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', '<', '>', '/', '=', '\'', '"', '&', '!', '?':
		return false
	}
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// clip shortens a name quoted in an error.
func clip(name []byte) string {
	if len(name) > 40 {
		return string(name[:40]) + "…"
	}
	return string(name)
}
