package component

import (
	"bytes"
	"net"
	"sync"
)

// tailSize is how many of the last bytes read from the server are kept.
const tailSize = 1024

// tailConn keeps the last bytes read from the server, so that the stream
// error a server sends just before closing the stream can be told even when
// mellium reports another error: it echoes a received stream error back to
// the server, and when that write fails (the server has closed) it returns
// the write error instead of the one it read. A failed write of ours ends
// the session first in the same way.
type tailConn struct {
	net.Conn
	mu   sync.Mutex
	tail []byte
}

func newTailConn(c net.Conn) *tailConn {
	return &tailConn{Conn: c, tail: make([]byte, 0, 2*tailSize)}
}

func (c *tailConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		if n >= tailSize {
			c.tail = append(c.tail[:0], p[n-tailSize:n]...)
		} else {
			if len(c.tail)+n > cap(c.tail) {
				keep := c.tail[len(c.tail)-(tailSize-n):]
				c.tail = append(c.tail[:0], keep...)
			}
			c.tail = append(c.tail, p[:n]...)
		}
		c.mu.Unlock()
	}
	return n, err
}

// streamError returns the condition of the last stream error in the bytes
// read, "" if there is none.
func (c *tailConn) streamError() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return lastStreamError(c.tail)
}

// lastStreamError finds the condition element of the last <stream:error> in
// b: the name of the first child element. Servers write stream errors with
// the conventional stream: prefix.
func lastStreamError(b []byte) string {
	i := bytes.LastIndex(b, []byte("<stream:error"))
	if i < 0 {
		return ""
	}
	b = b[i+len("<stream:error"):]
	end := bytes.IndexByte(b, '>')
	if end < 0 || (len(b) > 0 && b[0] != '>' && b[0] != ' ' && b[0] != '\t' && b[0] != '\n' && b[0] != '\r') {
		return ""
	}
	b = b[end+1:]
	for {
		lt := bytes.IndexByte(b, '<')
		if lt < 0 || lt+1 >= len(b) {
			return ""
		}
		b = b[lt+1:]
		if b[0] == '/' || b[0] == '!' || b[0] == '?' {
			return ""
		}
		n := 0
		for n < len(b) && (b[n] >= 'a' && b[n] <= 'z' || b[n] == '-') {
			n++
		}
		if n == 0 || n >= len(b) {
			return ""
		}
		return string(b[:n])
	}
}
