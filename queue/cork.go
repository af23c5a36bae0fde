package queue

import (
	"net"
	"sync"
)

// corkMax bounds the bytes a corked connection holds: beyond it a write
// goes out at once, with what was held before it.
const corkMax = 64 << 10

// corkConn is the publishing connection's socket. amqp091 writes (and
// flushes) every publish on its own, one system call each; while corked,
// corkConn holds those writes in memory and sends them with one call when
// uncorked, as TCP_CORK does in the kernel. A batch of publishes then costs
// the gateway one write and the broker one read, not one per message.
//
// Bytes leave in the order amqp091 wrote them: every write and every flush
// of the held bytes happens under mu. Deadlines, reads and Close go
// straight to the socket. A failed flush closes the socket, so that
// amqp091's reader fails and the connection ends as if its own write had
// failed (every unconfirmed publish then resolves with ErrClosed).
type corkConn struct {
	net.Conn

	mu     sync.Mutex
	corked int // Cork calls not yet matched by Uncork
	held   []byte
	err    error // the error of a failed flush; returned by every later write
	open   bool  // false once Release was called: Cork does nothing
}

func newCorkConn(c net.Conn) *corkConn { return &corkConn{Conn: c, open: true} }

// Write sends b, or holds it while corked.
func (c *corkConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if c.corked > 0 && len(c.held)+len(b) <= corkMax {
		c.held = append(c.held, b...)
		return len(b), nil
	}
	if err := c.flushLocked(); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// Cork holds the writes that follow until the matching Uncork.
func (c *corkConn) Cork() {
	c.mu.Lock()
	if c.open {
		c.corked++
	}
	c.mu.Unlock()
}

// Release uncorks for good and sends what is held: the connection is
// closing, and its close must not wait behind a cork.
func (c *corkConn) Release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open = false
	c.corked = 0
	_ = c.flushLocked()
}

// Uncork undoes one Cork; the last one sends what is held.
func (c *corkConn) Uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked > 0 {
		c.corked--
	}
	if c.corked > 0 {
		return nil
	}
	return c.flushLocked()
}

// Flush sends what is held now, corked or not.
func (c *corkConn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.flushLocked()
}

func (c *corkConn) flushLocked() error {
	if c.err != nil {
		return c.err
	}
	if len(c.held) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.held)
	c.held = c.held[:0]
	if err != nil {
		c.err = err
		_ = c.Conn.Close()
	}
	return err
}
