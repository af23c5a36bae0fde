package harness

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Send sends a chat message with body to the JID to.
func (c *Client) Send(ctx context.Context, to, body string) error {
	id := c.nextID()
	return c.SendRaw(ctx, fmt.Sprintf(`<message type='chat' id='%s' to='%s'><body>%s</body></message>`, id, escape(to), escape(body)))
}

// SendRaw writes raw bytes to the stream between two stanzas, unchecked:
// it may be any (even malformed) XML.
func (c *Client) SendRaw(ctx context.Context, raw string) error {
	w := c.s.TokenWriter() // holds the output lock
	defer w.Close()
	if err := w.Flush(); err != nil {
		return err
	}
	conn := c.s.Conn()
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetWriteDeadline(d)
		defer conn.SetWriteDeadline(time.Time{})
	}
	_, err := io.WriteString(conn, raw)
	return err
}

// SendIQ writes the raw <iq/> iq and returns the raw reply (result or
// error: check IQType) when it arrives. An iq without an id attribute gets
// one. Never call it from code that runs inside the client's reading
// goroutine; tests call it from their own.
func (c *Client) SendIQ(ctx context.Context, iq string) (string, error) {
	id, raw, err := ensureID(iq, c.nextID)
	if err != nil {
		return "", err
	}
	ch, err := c.await(id)
	if err != nil {
		return "", err
	}
	defer c.forget(id)
	if err := c.SendRaw(ctx, raw); err != nil {
		return "", err
	}
	select {
	case reply := <-ch:
		return reply, nil
	case <-c.done:
		return "", fmt.Errorf("harness: stream ended waiting for iq %q: %v", id, c.err)
	case <-ctx.Done():
		return "", fmt.Errorf("harness: iq %q: %w", id, ctx.Err())
	}
}

// await registers a waiter for the reply to the iq with this id.
func (c *Client) await(id string) (<-chan string, error) {
	ch := make(chan string, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.waiters[id]; dup {
		return nil, fmt.Errorf("harness: iq id %q already waiting", id)
	}
	c.waiters[id] = ch
	return ch, nil
}

// forget removes the waiter await registered.
func (c *Client) forget(id string) {
	c.mu.Lock()
	delete(c.waiters, id)
	c.mu.Unlock()
}

// deliverReply hands the raw reply to the iq with this id to its waiter,
// if any (and if it has none yet).
func (c *Client) deliverReply(id, raw string) {
	c.mu.Lock()
	ch := c.waiters[id]
	c.mu.Unlock()
	if ch != nil {
		select {
		case ch <- raw:
		default:
		}
	}
}

func (c *Client) nextID() string {
	return fmt.Sprintf("h%d", c.ids.Add(1))
}

// IQType returns the type attribute of a raw reply from SendIQ.
func IQType(raw string) string {
	d := xml.NewDecoder(strings.NewReader(raw))
	for {
		tok, err := d.Token()
		if err != nil {
			return ""
		}
		if s, ok := tok.(xml.StartElement); ok {
			for _, a := range s.Attr {
				if a.Name.Local == "type" && a.Name.Space == "" {
					return a.Value
				}
			}
			return ""
		}
	}
}

// ensureID returns the id of the root element of raw, adding one made by
// next if it has none.
func ensureID(raw string, next func() string) (id, out string, err error) {
	d := xml.NewDecoder(strings.NewReader(raw))
	for {
		tok, err := d.RawToken()
		if err != nil {
			return "", "", fmt.Errorf("harness: iq: %w", err)
		}
		s, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		for _, a := range s.Attr {
			if a.Name.Local == "id" && a.Name.Space == "" {
				return a.Value, raw, nil
			}
		}
		i := strings.Index(raw, "<"+s.Name.Local)
		if s.Name.Space != "" {
			i = strings.Index(raw, "<"+s.Name.Space+":"+s.Name.Local)
		}
		if i < 0 {
			return "", "", errors.New("harness: iq: cannot find the root element")
		}
		id = next()
		j := i + 1 + strings.IndexAny(raw[i+1:], " \t\r\n/>")
		return id, raw[:j] + " id='" + id + "'" + raw[j:], nil
	}
}
