package component

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"net"
)

// bufConnSize is the size of bufConn's buffer. Reads of at least this
// size bypass it once it is empty (bufio.Reader.Read), so the read loop's
// reads go straight to the socket.
const bufConnSize = 4096

// maxHeaderBytes bounds what bufConn records of the negotiation to find
// the server's stream header in.
const maxHeaderBytes = 64 << 10

// bufConn is the connection mellium negotiates a component stream over.
// Every read goes through one bufio.Reader, and bufConn implements
// io.ByteReader: encoding/xml then reads the negotiation from it byte by
// byte, with no buffer of its own (xml.NewDecoder uses an io.ByteReader
// as it is), and never reads past the last token it returns — so
// whatever the server sent after its handshake reply, even in the same
// TCP segment, is still in the bufio.Reader when our read loop takes
// over, reading through Read.
//
// While recording it keeps the bytes read (at most maxHeaderBytes), for
// streamHeader. Reads happen on one goroutine at a time (mellium's
// negotiation, then the read loop), as bufio requires.
type bufConn struct {
	net.Conn
	br        *bufio.Reader
	rec       []byte
	recording bool
}

func newBufConn(c net.Conn) *bufConn {
	return &bufConn{Conn: c, br: bufio.NewReaderSize(c, bufConnSize), recording: true}
}

func (c *bufConn) Read(p []byte) (int, error) {
	n, err := c.br.Read(p)
	if c.recording {
		c.record(p[:n]...)
	}
	return n, err
}

// ReadByte makes bufConn an io.ByteReader (see the type's comment).
func (c *bufConn) ReadByte() (byte, error) {
	b, err := c.br.ReadByte()
	if err == nil && c.recording {
		c.record(b)
	}
	return b, err
}

func (c *bufConn) record(p ...byte) {
	if len(c.rec)+len(p) <= maxHeaderBytes {
		c.rec = append(c.rec, p...)
	}
}

// streamHeader stops recording and returns the server's stream header
// reduced to what its elements inherit — the start tag of its
// <stream:stream> with the namespace declarations alone — and the tag's
// qualified name, which the stream's end tag repeats.
func (c *bufConn) streamHeader() (header, name []byte, err error) {
	rec := c.rec
	c.recording, c.rec = false, nil
	d := xml.NewDecoder(bytes.NewReader(rec))
	for {
		from := d.InputOffset()
		tok, err := d.Token()
		if err != nil {
			return nil, nil, errors.New("component: the server's stream header was not found in what it sent")
		}
		if se, ok := tok.(xml.StartElement); ok {
			if se.Name.Space != nsStream || se.Name.Local != "stream" {
				return nil, nil, errors.New("component: the server's first element is not its stream header")
			}
			name = rec[from+1 : d.InputOffset()]
			if i := bytes.IndexAny(name, " \t\r\n/>"); i >= 0 {
				name = name[:i]
			}
			name = bytes.Clone(name)
			h := bytes.NewBuffer(append([]byte{'<'}, name...))
			for _, a := range se.Attr {
				switch {
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					h.WriteString(" xmlns='")
				case a.Name.Space == "xmlns":
					h.WriteString(" xmlns:" + a.Name.Local + "='")
				default:
					continue
				}
				_ = xml.EscapeText(h, []byte(a.Value))
				h.WriteByte('\'')
			}
			h.WriteByte('>')
			return h.Bytes(), name, nil
		}
	}
}

// nsStream is the namespace of the stream's own elements.
const nsStream = "http://etherx.jabber.org/streams"
