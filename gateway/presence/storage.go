package presence

import (
	"errors"
	"log/slog"

	"xmppgw/gateway/config"
)

// store is what the service needs of a presence store: the subscriptions
// of the component's JIDs, bounded by storeLimits. Two implementations:
// boltStore (a bbolt file, one gateway) and pgStore (PostgreSQL, shared by
// the gateways that serve one component). Their methods are safe for
// concurrent use.
type store interface {
	// addSubscriber records that contact is subscribed to local; added is
	// false if it already was. A new pair past a cap is refused with
	// ErrStoreFull.
	addSubscriber(local, contact string) (added bool, err error)
	// removeSubscriber forgets that contact is subscribed to local.
	removeSubscriber(local, contact string) (removed bool, err error)
	// isSubscriber reports whether contact is subscribed to local. An
	// error (ErrStoreUnavailable) means the store does not know: never
	// answer "unsubscribed" on it.
	isSubscriber(local, contact string) (bool, error)
	// canAdd reports (as ErrStoreFull, or nil) whether contact could
	// become a new subscriber now.
	canAdd(contact string) error
	// setSubscription records our subscription of local to contact.
	setSubscription(local, contact string, st subState) error
	// subscription is the state of our subscription of local to contact.
	subscription(local, contact string) (subState, error)
	// removeSubscription forgets our subscription of local to contact.
	removeSubscription(local, contact string) (removed bool, err error)
	// eachSubscriber calls fn for every subscriber, ordered by local JID.
	eachSubscriber(fn func(local, contact string) error) error
	// eachSubscription calls fn for every subscription of ours.
	eachSubscription(fn func(local, contact string, st subState) error) error
	// counts returns the number of subscribers and of our subscriptions.
	counts() (subscribers, subscriptions int, err error)
	// refresh re-reads what another gateway may have written (after each
	// connect: a takeover). A no-op for a file.
	refresh() error
	// ready is signalled (capacity 1) when the store is back after it was
	// unavailable; nil for a store that never is.
	ready() <-chan struct{}
	// available reports whether writes may succeed now.
	available() bool
	setLimits(storeLimits)
	writeCount() int64 // write transactions (tests)
	close() error
}

// ErrStoreUnavailable is a PostgreSQL store that cannot be reached: the
// change was not made, or the store cannot tell (a contact it does not
// hold in memory). The service waits for it to come back rather than
// answer for lack of data.
var ErrStoreUnavailable = errors.New("presence: store unavailable")

// openStore opens presence.store: a postgres:// URL (shared by the gateways
// of domain, the component) or else the path of a bbolt file.
func openStore(location, domain string, log *slog.Logger) (store, error) {
	if config.IsStoreURL(location) {
		return openPG(location, domain, log, pgOptions{})
	}
	st, err := openBolt(location, storeLockTimeout)
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (s *boltStore) refresh() error            { return nil }
func (s *boltStore) ready() <-chan struct{}    { return nil }
func (s *boltStore) available() bool           { return true }
func (s *boltStore) setLimits(lim storeLimits) { s.mu.Lock(); s.lim = lim; s.mu.Unlock() }
func (s *boltStore) writeCount() int64         { return s.writes.Load() }
