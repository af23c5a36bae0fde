package queue

import (
	"errors"
	"fmt"
)

// Sentinel errors of the package; test them with errors.Is.
var (
	// ErrClosed: the connection or channel is gone (or was closed); nothing
	// more can be published or consumed on this object.
	ErrClosed = errors.New("queue: connection closed")
	// ErrNacked: the broker refused a publish with basic.nack.
	ErrNacked = errors.New("queue: publish nacked by the broker")
	// ErrReturned: a mandatory publish could not be routed to any queue
	// (basic.return); the broker's positive confirm that follows does not
	// make it a success.
	ErrReturned = errors.New("queue: publish returned as unroutable")
	// ErrTopology: a queue exists with other arguments than the gateway
	// declares, or the topology configuration itself is invalid. It is a
	// configuration error: redialing does not help.
	ErrTopology = errors.New("queue: topology mismatch")
	// ErrBlocked: the broker blocks publishing (memory or disk alarm) and the
	// context ended before it lifted the block.
	ErrBlocked = errors.New("queue: connection blocked by the broker")
	// ErrCanceled: the broker cancelled the consumer (the queue was deleted).
	ErrCanceled = errors.New("queue: consumer cancelled by the broker")
	// ErrNotFound: QueueDepth of a queue that does not exist.
	ErrNotFound = errors.New("queue: no such queue")
)

// TopologyError reports a queue that exists with other arguments than the
// ones the gateway declares (the broker answered 406 PRECONDITION_FAILED), or
// an invalid topology. errors.Is(err, ErrTopology) is true.
type TopologyError struct {
	Queue  string // the queue concerned
	Detail string // the broker's reply text, or what is wrong
	Err    error  // the underlying *amqp.Error, if any
}

func (e *TopologyError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("queue %s: %s", e.Queue, e.Detail)
	}
	return fmt.Sprintf("queue %s exists with different arguments (%s): delete it or set amqp.queue_type to match", e.Queue, e.Detail)
}

// Is makes errors.Is(err, ErrTopology) true.
func (e *TopologyError) Is(target error) bool { return target == ErrTopology }

func (e *TopologyError) Unwrap() error { return e.Err }

// ReturnedError is the error of a Confirm whose mandatory publish the broker
// returned as unroutable. errors.Is(err, ErrReturned) is true.
type ReturnedError struct {
	Key       string // routing key of the publish
	ReplyCode uint16 // e.g. 312
	ReplyText string // e.g. NO_ROUTE
}

func (e *ReturnedError) Error() string {
	return fmt.Sprintf("queue: publish to %q returned by the broker: %d %s", e.Key, e.ReplyCode, e.ReplyText)
}

// Is makes errors.Is(err, ErrReturned) true.
func (e *ReturnedError) Is(target error) bool { return target == ErrReturned }

// closedError wraps ErrClosed with the reason the connection died, if known.
func closedError(cause error) error {
	if cause == nil || errors.Is(cause, ErrClosed) {
		if cause == nil {
			return ErrClosed
		}
		return cause
	}
	return fmt.Errorf("%w: %w", ErrClosed, cause)
}

// RedactURL returns u with its password replaced by "xxxxx", fit for logs
// and error messages. A string that does not parse as a URL is reduced to
// its scheme and host part after the last "@", so that nothing secret leaks
// from a malformed URL either.
func RedactURL(u string) string { return redactURL(u) }
