package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
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
	ErrStoreLocked  = errors.New("gateway: store locked (another xmppgw running?)")
	ErrStoreCorrupt = errors.New("gateway: store corrupt or not a xmppgw store")
)

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

// store is the bbolt file of subscriptions. Its methods are safe for
// concurrent use (bbolt serialises writers).
type store struct {
	db   *bolt.DB
	path string
}

// openStore opens (creating if needed, with its parent directory) the store
// at path. A file that another process holds gives ErrStoreLocked after
// lockTimeout, a file that is not a valid store ErrStoreCorrupt.
func openStore(path string, lockTimeout time.Duration) (st *store, err error) {
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
	st = &store{db: db, path: path}
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
func (s *store) init() error {
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
	return s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return fmt.Errorf("%w: %w", ErrStoreCorrupt, err)
		}
		return nil
	})
}

func (s *store) close() error { return s.db.Close() }

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
// if it already was.
func (s *store) addSubscriber(local, contact string) (added bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSubscribers)
		k := pairKey(local, contact)
		if b.Get(k) != nil {
			return nil
		}
		added = true
		return b.Put(k, []byte{byte(subApproved)})
	})
	if err != nil {
		added = false
	}
	return added, err
}

// removeSubscriber forgets that contact is subscribed to local; removed is
// false if it was not.
func (s *store) removeSubscriber(local, contact string) (removed bool, err error) {
	return s.remove(bucketSubscribers, local, contact)
}

func (s *store) remove(bucket []byte, local, contact string) (removed bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		k := pairKey(local, contact)
		if b.Get(k) == nil {
			return nil
		}
		removed = true
		return b.Delete(k)
	})
	if err != nil {
		removed = false
	}
	return removed, err
}

// isSubscriber reports whether contact is subscribed to local.
func (s *store) isSubscriber(local, contact string) (bool, error) {
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bucketSubscribers).Get(pairKey(local, contact)) != nil
		return nil
	})
	return ok, err
}

// setSubscription records our subscription of local to contact.
func (s *store) setSubscription(local, contact string, st subState) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSubscriptions).Put(pairKey(local, contact), []byte{byte(st)})
	})
}

// subscription is the state of our subscription of local to contact.
func (s *store) subscription(local, contact string) (subState, error) {
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
func (s *store) removeSubscription(local, contact string) (removed bool, err error) {
	return s.remove(bucketSubscriptions, local, contact)
}

// eachSubscriber calls fn for every (local, contact) where contact is
// subscribed to local, ordered by local.
func (s *store) eachSubscriber(fn func(local, contact string) error) error {
	return s.each(bucketSubscribers, func(local, contact string, _ subState) error {
		return fn(local, contact)
	})
}

// eachSubscription calls fn for every subscription of ours.
func (s *store) eachSubscription(fn func(local, contact string, st subState) error) error {
	return s.each(bucketSubscriptions, fn)
}

// each runs fn over a bucket. fn runs inside a read transaction: it must
// not write to the store (the worker that calls it only writes stanzas).
func (s *store) each(bucket []byte, fn func(local, contact string, st subState) error) error {
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

// counts returns the number of subscribers and of our subscriptions.
func (s *store) counts() (subscribers, subscriptions int, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		subscribers = tx.Bucket(bucketSubscribers).Stats().KeyN
		subscriptions = tx.Bucket(bucketSubscriptions).Stats().KeyN
		return nil
	})
	return subscribers, subscriptions, err
}
