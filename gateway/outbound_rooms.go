package gateway

import (
	"fmt"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"xmppgw/gateway/muc"
	"xmppgw/queue"
	"xmppgw/stanza"
)

// Group chat items. A groupchat item goes out only to a configured room the
// gateway is in. While a room is being (re)joined its items wait without
// holding back other targets for long: the first one holds the pipe at
// most roomHold from when the room began joining; after that, and for every
// later item of the room, the item is parked: published with confirms to
// the wait queue (amqp.out_queue + ".wait"), from which the broker puts it
// back into the out queue config.WaitTTL later, and acknowledged once the
// broker confirmed the copy (at-least-once, as dead letters). While any
// item of a room is parked, newer items of the room are parked behind it,
// and parked items come back in the order they left, so a room's items keep
// their order (across a restart of the gateway the count of parked items
// is lost: a new item may then overtake parked ones). An item to a room that is not
// configured, or that refused the gateway for good, is dead-lettered
// (not_joined).

// roomHold bounds how long the pipe holds everything for one room.
const roomHold = 10 * time.Second

// ReasonNotJoined is the dead-letter reason of a groupchat item to a room
// the gateway is not in and will not be.
const ReasonNotJoined stanza.Reason = "not_joined"

// parkedPrefix starts the x-xmppgw-error header of a parked item.
const parkedPrefix = "parked: "

// roomVerdict is what becomes of a groupchat item.
type roomVerdict int

const (
	roomSend roomVerdict = iota
	roomDead
	roomPark
)

// roomGate decides what becomes of a groupchat item to room (the target
// as written). While it holds the pipe for a joining room, barrier answers
// are acted on; err is a failure of the stream.
func (p *pipe) roomGate(d *amqp.Delivery, room string) (v roomVerdict, why error, err error) {
	o := p.o
	room, _, _ = strings.Cut(room, "/")
	// A parked item back from the wait queue is the oldest of its room
	// there (the queue keeps their order): it does not wait behind the
	// others, a new item does.
	h, _ := d.Headers[queue.ErrorHeader].(string)
	returning := strings.HasPrefix(h, parkedPrefix)
	if returning && o.parked[room] > 0 {
		o.parked[room]--
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		configured, st, since, changed := o.g.muc.Target(room)
		switch {
		case !configured:
			return roomDead, &stanza.ItemError{Reason: ReasonNotJoined, Detail: "a groupchat item to a room that is not in muc.rooms"}, nil
		case st == muc.Failed:
			return roomDead, &stanza.ItemError{Reason: ReasonNotJoined, Detail: "the room refused the gateway (see the log and the status page)"}, nil
		case o.parked[room] > 0 && !returning:
			return roomPark, nil, nil // behind the room's parked items
		case st == muc.Joined:
			return roomSend, nil, nil
		}
		left := roomHold - time.Since(since)
		if left <= 0 || p.draining {
			return roomPark, nil, nil
		}
		// The batch so far goes out; then wait for the room.
		if err := p.flush(); err != nil {
			return 0, nil, err
		}
		if timer == nil {
			timer = time.NewTimer(left)
		}
		select {
		case <-changed:
		case <-timer.C:
			return roomPark, nil, nil
		case <-p.sess.Notify():
			if err := p.confirm(); err != nil {
				return 0, nil, err
			}
		case <-p.sess.Done():
			return 0, nil, fmt.Errorf("xmpp session ended: %v", p.sess.Err())
		}
	}
}

// park sends d to the wait queue, like a dead letter (acknowledged once the
// broker confirmed the copy), and counts it against its room.
func (p *pipe) park(d *amqp.Delivery, key uint64, room string) {
	o := p.o
	room, _, _ = strings.Cut(room, "/")
	o.parked[room]++
	b := o.open
	b.dls = append(b.dls, deadLetter{d: *d, reason: parkedPrefix + "the room is being joined", label: "parked", queue: p.waitq})
	if key != 0 {
		b.keys = append(b.keys, key)
	}
	b.lastTag = d.DeliveryTag
	p.taken++
	p.publishDeadLetter(&b.dls[len(b.dls)-1])
}
