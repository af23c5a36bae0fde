package presence

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The presence store keeps the component's subscriptions across restarts
// (a component has no server-side roster). It is a bbolt file: one writer
// at a time, every change in one transaction that is fsynced before it
// returns, so a crash leaves either the old or the new state, never half.
//
// Two buckets, keys "<local bare JID>\x00<contact bare JID>" (a JID cannot
// hold a NUL, so the split is unambiguous and a local JID's records are one
// key range):
//
//   - subscribers: the contact is subscribed to our local JID ("from" in
//     the local JID's roster terms); value "a".
//   - subscriptions: our local JID is subscribed to the contact ("to");
//     value "p" (we asked, no answer yet) or "a" (the contact approved).
//
// A "meta" bucket holds the schema version.
//
// Anybody on the network can ask to subscribe to any JID of the domain, so
// the store is bounded (storeLimits): a new pair past a cap is refused with
// ErrStoreFull and costs no write; existing pairs are never touched by a
// refusal. The counts behind the caps live in memory, rebuilt by one scan
// at open and kept up to date by each change, so a change costs O(log n)
// (one bbolt lookup and at most one write), never a rescan.
var (
	bucketSubscribers   = []byte("subscribers")
	bucketSubscriptions = []byte("subscriptions")
	bucketMeta          = []byte("meta")
	keyVersion          = []byte("version")
	storeVersion        = []byte("1")
)

// Errors of the presence store. Both are wrapped with the config key and
// the path of the file.
var (
	ErrStoreLocked  = errors.New("presence: store locked (another xmppgw running?)")
	ErrStoreCorrupt = errors.New("presence: store corrupt or not a xmppgw store")
	// ErrStoreFull is a new subscription refused by a cap of the store
	// (storeFullLimit tells which).
	ErrStoreFull = errors.New("presence: store full")
)

// Caps of the store, each applied separately to the subscribers bucket and
// to the subscriptions bucket. A usual pair is about 100 bytes in bbolt
// (key, value, page overhead), so a full store is a file of some 20 MB; at
// most (every key of storeMaxKeyBytes) about 120 MB.
const (
	// storeMaxKeyBytes bounds a new pair's two bare JIDs together (bytes).
	// A JID may be 3 KiB; real ones are a few dozen bytes, and long
	// made-up ones would multiply the file size the caps allow.
	storeMaxKeyBytes = 512
	// storeMaxPerContact bounds the local JIDs one contact (bare JID) may be
	// subscribed to. A person follows a handful of a site's notifiers;
	// in auto mode any localpart accepts a subscription, so without this
	// one JID could fill the disk with made-up localparts.
	storeMaxPerContact = 100
	// storeMaxPerDomain bounds the pairs of all contacts of one domain: an
	// attacker owns as many JIDs on its own server as it likes. 10,000
	// leaves room for a large organisation's users.
	storeMaxPerDomain = 10_000
	// storeMaxTotal bounds the whole bucket: far more subscribers than a
	// site's notifications reach, yet a file that stays small and a start
	// (available presence to every subscriber) that stays quick.
	storeMaxTotal = 100_000
)

type storeLimits struct{ perContact, perDomain, total int }

var defaultStoreLimits = storeLimits{perContact: storeMaxPerContact, perDomain: storeMaxPerDomain, total: storeMaxTotal}

// storeFullError is ErrStoreFull with the cap that refused.
type storeFullError struct{ limit string }

func (e *storeFullError) Error() string        { return ErrStoreFull.Error() + " (" + e.limit + " cap)" }
func (e *storeFullError) Is(target error) bool { return target == ErrStoreFull }

// storeFullLimit names the cap behind err: contact, domain, total or
// length ("" if err is not ErrStoreFull).
func storeFullLimit(err error) string {
	var e *storeFullError
	if errors.As(err, &e) {
		return e.limit
	}
	return ""
}

// storeTally counts the pairs of one bucket: in total, per contact and per
// contact domain.
type storeTally struct {
	total    int
	contacts map[string]int
	domains  map[string]int
}

func newStoreTally() storeTally {
	return storeTally{contacts: make(map[string]int), domains: make(map[string]int)}
}

func contactDomain(contact string) string {
	return contact[strings.IndexByte(contact, '@')+1:]
}

// check reports whether one more pair of contact would pass a cap.
func (t *storeTally) check(contact string, lim storeLimits) error {
	switch {
	case t.contacts[contact] >= lim.perContact:
		return &storeFullError{"contact"}
	case t.domains[contactDomain(contact)] >= lim.perDomain:
		return &storeFullError{"domain"}
	case t.total >= lim.total:
		return &storeFullError{"total"}
	}
	return nil
}

func (t *storeTally) add(contact string, d int) {
	t.total += d
	storeBump(t.contacts, contact, d)
	storeBump(t.domains, contactDomain(contact), d)
}

// storeBump adds d to m[k], deleting the key at zero so that the maps hold only
// what the store holds.
func storeBump(m map[string]int, k string, d int) {
	if n := m[k] + d; n > 0 {
		m[k] = n
	} else {
		delete(m, k)
	}
}

// storeLockTimeout is how long opening waits for the file lock that another
// process holds.
const storeLockTimeout = 2 * time.Second

// subState is the state of one of our subscriptions to a contact.
type subState byte

const (
	subNone     subState = 0
	subPending  subState = 'p'
	subApproved subState = 'a'
)

// boltStore is the bbolt file of subscriptions. Its methods are safe for
// concurrent use (mu serialises changes and their counts).
type boltStore struct {
	db   *bolt.DB
	path string
	lim  storeLimits

	mu            sync.Mutex
	subscribers   storeTally
	subscriptions storeTally
	writes        atomic.Int64 // write transactions (tests)
}

func (s *boltStore) tally(bucket []byte) *storeTally {
	if bytes.Equal(bucket, bucketSubscribers) {
		return &s.subscribers
	}
	return &s.subscriptions
}

// openBolt opens (creating if needed, with its parent directory) the store
// at path. A file that another process holds gives ErrStoreLocked after
// lockTimeout, a file that is not a valid store ErrStoreCorrupt.
func openBolt(path string, lockTimeout time.Duration) (st *boltStore, err error) {
	wrap := func(err error) error { return fmt.Errorf("presence.store %s: %w", path, err) }
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, wrap(err)
		}
	}
	if err := checkStoreFile(path); err != nil {
		return nil, wrap(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		switch {
		case errors.Is(err, bolt.ErrTimeout):
			return nil, wrap(ErrStoreLocked)
		case errors.Is(err, bolt.ErrInvalid), errors.Is(err, bolt.ErrChecksum),
			errors.Is(err, bolt.ErrVersionMismatch):
			return nil, wrap(fmt.Errorf("%w: %w", ErrStoreCorrupt, err))
		}
		// Permissions, a directory in the way, a truncated file ("file size
		// too small"), ...
		return nil, wrap(fmt.Errorf("cannot open (unreadable or corrupt?): %w", err))
	}
	st = &boltStore{db: db, path: path, lim: defaultStoreLimits, subscribers: newStoreTally(), subscriptions: newStoreTally()}
	// bbolt panics on some kinds of damaged pages; a store must never take
	// the process down: report it as corrupt instead.
	defer func() {
		if r := recover(); r != nil {
			_ = db.Close()
			st, err = nil, wrap(fmt.Errorf("%w: %v", ErrStoreCorrupt, r))
		}
	}()
	if err := st.init(); err != nil {
		_ = db.Close()
		return nil, wrap(err)
	}
	return st, nil
}

// init creates the buckets, checks the version and the file's consistency.
func (s *boltStore) init() error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			// A fresh file has no buckets at all; an existing file without
			// our meta bucket is someone else's database.
			empty := true
			_ = tx.ForEach(func([]byte, *bolt.Bucket) error { empty = false; return nil })
			if !empty {
				return fmt.Errorf("%w: no meta bucket", ErrStoreCorrupt)
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			if err := meta.Put(keyVersion, storeVersion); err != nil {
				return err
			}
		}
		if v := meta.Get(keyVersion); !bytes.Equal(v, storeVersion) {
			return fmt.Errorf("%w: schema version %q, want %q", ErrStoreCorrupt, v, storeVersion)
		}
		for _, b := range [][]byte{bucketSubscribers, bucketSubscriptions} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("%w: %w", ErrStoreCorrupt, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The counts behind the caps: one scan at open.
	for _, b := range [][]byte{bucketSubscribers, bucketSubscriptions} {
		t := s.tally(b)
		if err := s.each(b, func(_, contact string, _ subState) error {
			t.add(contact, 1)
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

func (s *boltStore) close() error { return s.db.Close() }

// checkStoreFile looks at an existing file's meta pages before bbolt maps
// it: bbolt trusts the high-water mark they record, and touching a page
// beyond the end of a truncated file is a SIGBUS that no recover catches.
// Layout (bbolt internal/common, native byte order): a 16-byte page header,
// then magic, version, page size, flags (uint32 each), root bucket (16
// bytes), freelist, high-water mark and txid (uint64 each), and an FNV-64a
// checksum of the preceding 56 bytes. Files whose meta pages are both
// invalid are left to bbolt, which reports them as invalid.
func checkStoreFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
		return err // bbolt initialises an empty file and rejects the rest
	}
	const hdr, metaLen = 16, 64
	type meta struct{ pageSize, pgid, txid uint64 }
	read := func(off int64) (meta, bool) {
		var b [hdr + metaLen]byte
		if _, err := f.ReadAt(b[:], off); err != nil {
			return meta{}, false
		}
		m := b[hdr:]
		ne := binary.NativeEndian
		if ne.Uint32(m[0:]) != 0xED0CDAED || ne.Uint32(m[4:]) != 2 {
			return meta{}, false
		}
		h := fnv.New64a()
		h.Write(m[:56])
		if h.Sum64() != ne.Uint64(m[56:]) {
			return meta{}, false
		}
		return meta{pageSize: uint64(ne.Uint32(m[8:])), pgid: ne.Uint64(m[40:]), txid: ne.Uint64(m[48:])}, true
	}
	best, ok := read(0)
	ps := int64(os.Getpagesize())
	if ok {
		ps = int64(best.pageSize)
	}
	if m1, ok1 := read(ps); ok1 && (!ok || m1.txid > best.txid) {
		best, ok = m1, true
	}
	if !ok {
		return nil
	}
	if need := best.pgid * best.pageSize; best.pageSize == 0 || uint64(fi.Size()) < need {
		return fmt.Errorf("%w: truncated: %d bytes, its pages need %d", ErrStoreCorrupt, fi.Size(), need)
	}
	return nil
}

func pairKey(local, contact string) []byte {
	k := make([]byte, 0, len(local)+1+len(contact))
	k = append(k, local...)
	k = append(k, 0)
	return append(k, contact...)
}

func splitKey(k []byte) (local, contact string, ok bool) {
	i := bytes.IndexByte(k, 0)
	if i < 0 {
		return "", "", false
	}
	return string(k[:i]), string(k[i+1:]), true
}

// addSubscriber records that contact is subscribed to local; added is false
// if it already was. A new pair past a cap is refused with ErrStoreFull.
func (s *boltStore) addSubscriber(local, contact string) (added bool, err error) {
	return s.put(bucketSubscribers, local, contact, subApproved)
}

// removeSubscriber forgets that contact is subscribed to local; removed is
// false if it was not.
func (s *boltStore) removeSubscriber(local, contact string) (removed bool, err error) {
	return s.remove(bucketSubscribers, local, contact)
}

// get reads one pair's value (nil if absent) without a write transaction.
func (s *boltStore) get(bucket, k []byte) (v []byte, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucket).Get(k); b != nil {
			v = append([]byte{}, b...)
		}
		return nil
	})
	return v, err
}

// put stores a pair with state st. A pair already in that state costs a
// lookup and no write; a new pair is checked against the caps first.
func (s *boltStore) put(bucket []byte, local, contact string, st subState) (added bool, err error) {
	k := pairKey(local, contact)
	s.mu.Lock()
	defer s.mu.Unlock()
	old, err := s.get(bucket, k)
	if err != nil || len(old) == 1 && old[0] == byte(st) {
		return false, err
	}
	t := s.tally(bucket)
	if old == nil {
		if len(k) > storeMaxKeyBytes {
			return false, &storeFullError{"length"}
		}
		if err := t.check(contact, s.lim); err != nil {
			return false, err
		}
	}
	s.writes.Add(1)
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Put(k, []byte{byte(st)})
	}); err != nil {
		return false, err
	}
	if old == nil {
		t.add(contact, 1)
	}
	return old == nil, nil
}

func (s *boltStore) remove(bucket []byte, local, contact string) (removed bool, err error) {
	k := pairKey(local, contact)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, err := s.get(bucket, k); old == nil || err != nil {
		return false, err
	}
	s.writes.Add(1)
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Delete(k) }); err != nil {
		return false, err
	}
	s.tally(bucket).add(contact, -1)
	return true, nil
}

// canAdd reports (as ErrStoreFull, or nil) whether contact could become a
// new subscriber now.
func (s *boltStore) canAdd(contact string) error {
	if len(contact)+1 >= storeMaxKeyBytes {
		return &storeFullError{"length"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subscribers.check(contact, s.lim)
}

// isSubscriber reports whether contact is subscribed to local.
func (s *boltStore) isSubscriber(local, contact string) (bool, error) {
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bucketSubscribers).Get(pairKey(local, contact)) != nil
		return nil
	})
	return ok, err
}

// setSubscription records our subscription of local to contact. A new one
// past a cap is refused with ErrStoreFull.
func (s *boltStore) setSubscription(local, contact string, st subState) error {
	_, err := s.put(bucketSubscriptions, local, contact, st)
	return err
}

// subscription is the state of our subscription of local to contact.
func (s *boltStore) subscription(local, contact string) (subState, error) {
	st := subNone
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketSubscriptions).Get(pairKey(local, contact)); len(v) == 1 {
			st = subState(v[0])
		}
		return nil
	})
	return st, err
}

// removeSubscription forgets our subscription of local to contact.
func (s *boltStore) removeSubscription(local, contact string) (removed bool, err error) {
	return s.remove(bucketSubscriptions, local, contact)
}

// eachSubscriber calls fn for every (local, contact) where contact is
// subscribed to local, ordered by local.
func (s *boltStore) eachSubscriber(fn func(local, contact string) error) error {
	return s.each(bucketSubscribers, func(local, contact string, _ subState) error {
		return fn(local, contact)
	})
}

// eachSubscription calls fn for every subscription of ours.
func (s *boltStore) eachSubscription(fn func(local, contact string, st subState) error) error {
	return s.each(bucketSubscriptions, fn)
}

// each runs fn over a bucket. fn runs inside a read transaction: it must
// not write to the store (the worker that calls it only writes stanzas).
func (s *boltStore) each(bucket []byte, fn func(local, contact string, st subState) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).ForEach(func(k, v []byte) error {
			local, contact, ok := splitKey(k)
			if !ok || len(v) != 1 {
				return nil // not ours; never written by this code
			}
			return fn(local, contact, subState(v[0]))
		})
	})
}

// counts returns the number of subscribers and of our subscriptions, O(1).
func (s *boltStore) counts() (subscribers, subscriptions int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subscribers.total, s.subscriptions.total, nil
}
