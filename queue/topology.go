package queue

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Queue types of Topology.QueueType.
const (
	Classic = "classic"
	Quorum  = "quorum"
)

// Topology names the queues the gateway declares.
type Topology struct {
	OutQueue, InQueue, DeadLetterQueue string
	// WaitQueue holds items parked for a while (a group chat being
	// rejoined): each goes back to OutQueue WaitTTL after it was parked,
	// by the broker's dead-lettering. "" declares none.
	WaitQueue string
	WaitTTL   time.Duration
	// Legacy, if set, hears of an out queue that exists without the
	// dead-letter arguments Declare gives new ones (declared by an older
	// gateway): it is used as it is, and the broker drops what expires in
	// it instead of moving it to the dead-letter queue.
	Legacy    func(queue, detail string)
	Extra     []string // route queues the gateway declares as well (inbound.routes values)
	QueueType string   // "classic" (default when empty) | "quorum"
}

// Queues returns the distinct non-empty queue names of t in declaration
// order: out, in, dead letter, then the extra ones.
func (t Topology) Queues() []string {
	seen := make(map[string]bool)
	var qs []string
	for _, q := range append([]string{t.OutQueue, t.InQueue, t.DeadLetterQueue, t.WaitQueue}, t.Extra...) {
		if q != "" && !seen[q] {
			seen[q] = true
			qs = append(qs, q)
		}
	}
	return qs
}

// Args returns the x-arguments Declare uses for queue q.
func (t Topology) Args(q string) amqp.Table {
	args := amqp.Table{}
	if t.QueueType == Quorum {
		args[amqp.QueueTypeArg] = amqp.QueueTypeQuorum
	}
	if q == t.OutQueue {
		// A second gateway is a hot standby, not a competing consumer.
		args[amqp.SingleActiveConsumerArg] = true
		if t.DeadLetterQueue != "" {
			// What the broker itself takes out of the queue (an item whose
			// AMQP expiration passed, one over a quorum queue's delivery
			// limit) goes to the dead-letter queue, with the broker's
			// x-death header saying why, instead of being dropped.
			args["x-dead-letter-exchange"] = ""
			args["x-dead-letter-routing-key"] = t.DeadLetterQueue
			if t.QueueType == Quorum {
				args["x-dead-letter-strategy"] = "at-least-once"
				args["x-overflow"] = "reject-publish"
			}
		}
	}
	if q == t.WaitQueue && q != "" {
		args["x-message-ttl"] = t.WaitTTL.Milliseconds()
		args["x-dead-letter-exchange"] = ""
		args["x-dead-letter-routing-key"] = t.OutQueue
		if t.QueueType == Quorum {
			// Quorum queues dead-letter at most once unless told.
			args["x-dead-letter-strategy"] = "at-least-once"
			args["x-overflow"] = "reject-publish"
		}
	}
	if len(args) == 0 {
		return nil
	}
	return args
}

// declareLegacy declares the out queue q with the arguments of gateways
// before the dead-letter ones, on a channel of its own.
func declareLegacy(conn *amqp.Connection, q string, t Topology) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	args := t.Args(q)
	for _, k := range []string{"x-dead-letter-exchange", "x-dead-letter-routing-key", "x-dead-letter-strategy", "x-overflow"} {
		delete(args, k)
	}
	_, err = ch.QueueDeclare(q, true, false, false, false, args)
	return err
}

// Declare declares every queue of t durable on its own short-lived channels
// of conn. The out queue gets x-single-active-consumer; quorum queues get
// x-queue-type quorum, classic ones no type argument (so that they match
// queues declared by plain clients).
//
// A queue that exists with other arguments makes the broker close the
// channel with 406 PRECONDITION_FAILED: Declare then opens a new channel,
// goes on with the other queues and returns every such conflict as a
// *TopologyError (errors.Is ErrTopology), joined. conn stays usable.
func Declare(conn *amqp.Connection, t Topology) error {
	switch t.QueueType {
	case "", Classic, Quorum:
	default:
		return &TopologyError{Queue: t.OutQueue, Detail: fmt.Sprintf("amqp.queue_type %q: want classic or quorum", t.QueueType)}
	}
	var (
		ch   *amqp.Channel
		errs []error
	)
	defer func() {
		if ch != nil {
			ch.Close()
		}
	}()
	for _, q := range t.Queues() {
		if ch == nil {
			var err error
			if ch, err = conn.Channel(); err != nil {
				errs = append(errs, fmt.Errorf("queue: declare %s: open channel: %w", q, err))
				break
			}
		}
		_, err := ch.QueueDeclare(q, true, false, false, false, t.Args(q))
		if err == nil {
			continue
		}
		ch = nil // a failed declare closes the channel
		var aerr *amqp.Error
		if errors.As(err, &aerr) && aerr.Code == amqp.PreconditionFailed && q == t.OutQueue && t.DeadLetterQueue != "" {
			// An out queue from before the dead-letter arguments: take it
			// as it is if it matches the old ones.
			lerr := declareLegacy(conn, q, t)
			if lerr == nil {
				if t.Legacy != nil {
					t.Legacy(q, strings.TrimPrefix(aerr.Reason, "PRECONDITION_FAILED - "))
				}
				continue
			}
			// Not an old queue either: its own mismatch (the queue type,
			// say) is the one to report.
			var laerr *amqp.Error
			if errors.As(lerr, &laerr) && laerr.Code == amqp.PreconditionFailed {
				aerr = laerr
				err = lerr
			}
		}
		if errors.As(err, &aerr) && aerr.Code == amqp.PreconditionFailed {
			errs = append(errs, &TopologyError{Queue: q, Detail: strings.TrimPrefix(aerr.Reason, "PRECONDITION_FAILED - "), Err: aerr})
			continue
		}
		errs = append(errs, fmt.Errorf("queue: declare %s: %w", q, err))
		if conn.IsClosed() {
			break
		}
	}
	return errors.Join(errs...)
}

// legacyWarning is the Legacy callback that logs, once per connection, that
// the out queue predates its dead-letter arguments.
func legacyWarning(log *slog.Logger) func(queue, detail string) {
	var once sync.Once
	return func(q, detail string) {
		once.Do(func() {
			log.Warn("the out queue was declared by an older gateway without dead-letter arguments: items whose AMQP expiration passes are dropped by the broker, not dead-lettered; to fix it, set a policy with dead-letter-exchange \"\" and dead-letter-routing-key <dead_letter_queue>, or recreate the queue when it is empty",
				"queue", q, "broker", detail)
		})
	}
}
