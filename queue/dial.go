package queue

import (
	"context"
	"fmt"
	"net"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const (
	// heartbeat is the AMQP heartbeat interval we ask for: a dead broker or
	// a cut link is noticed within about twice this.
	heartbeat = 10 * time.Second
	// handshakeTimeout bounds the TCP/TLS/AMQP handshake when ctx has no
	// deadline.
	handshakeTimeout = 30 * time.Second
)

// dial opens one AMQP connection to rawURL named name (shown in the
// management UI). ctx bounds the whole handshake and nothing after it.
// Errors never contain the password of rawURL.
func dial(ctx context.Context, rawURL, name string) (*amqp.Connection, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("queue: dial %s: %w", RedactURL(rawURL), err)
	}
	props := amqp.NewConnectionProperties()
	if name != "" {
		props.SetClientConnectionName(name)
	}
	var (
		d    net.Dialer
		stop func() bool
	)
	cfg := amqp.Config{
		Heartbeat:  heartbeat,
		Locale:     "en_US",
		Properties: props,
		Dial: func(network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// The handshake runs without a context: bound it by a socket
			// deadline (cleared by amqp091 once the connection is open)
			// and cut it short if ctx is cancelled meanwhile.
			deadline, ok := ctx.Deadline()
			if !ok {
				deadline = time.Now().Add(handshakeTimeout)
			}
			if err := c.SetDeadline(deadline); err != nil {
				c.Close()
				return nil, err
			}
			stop = context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
			return c, nil
		},
	}
	conn, err := amqp.DialConfig(rawURL, cfg)
	if stop != nil && !stop() && err == nil {
		// ctx ended just after the handshake: the socket may carry a
		// deadline in the past now, so the connection is unusable.
		conn.Close()
		err = ctx.Err()
	}
	if err != nil {
		cerr := ctx.Err()
		if d, ok := ctx.Deadline(); ok && cerr == nil && !time.Now().Before(d) {
			// The socket deadline (= ctx's) fired a moment before ctx's
			// own timer.
			cerr = context.DeadlineExceeded
		}
		if cerr != nil && err != cerr {
			err = fmt.Errorf("%w (%w)", cerr, err)
		}
		return nil, fmt.Errorf("queue: dial %s: %w", RedactURL(rawURL), err)
	}
	return conn, nil
}
