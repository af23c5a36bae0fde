package presence

import (
	"context"
	"sort"
)

// The subscriptions of a pgStore: every change is written to PostgreSQL
// first and applied in memory once committed; reads come from memory.

func stateName(st subState) string {
	if st == subApproved {
		return "approved"
	}
	return "pending"
}

func (s *pgStore) addSubscriber(local, contact string) (bool, error) {
	k := string(pairKey(local, contact))
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	_, known := s.subs[k]
	err := s.admit(&s.subscribers, known, k, contact)
	s.mu.Unlock()
	if known || err != nil {
		return false, err
	}
	tag, err := s.exec(`INSERT INTO xmppgw_subscribers (component, local_jid, contact) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
		s.domain, local, contact)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	s.subs[k] = struct{}{}
	s.subscribers.add(contact, 1)
	s.mu.Unlock()
	return tag.RowsAffected() == 1, nil
}

// admit checks a new pair (known false) against the caps; mu is held.
func (s *pgStore) admit(t *storeTally, known bool, k, contact string) error {
	if known {
		return nil
	}
	if len(k) > storeMaxKeyBytes {
		return &storeFullError{"length"}
	}
	return t.check(contact, s.lim)
}

func (s *pgStore) removeSubscriber(local, contact string) (bool, error) {
	k := string(pairKey(local, contact))
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	_, known := s.subs[k]
	s.mu.Unlock()
	if !known {
		return false, nil
	}
	if _, err := s.exec(`DELETE FROM xmppgw_subscribers WHERE component = $1 AND local_jid = $2 AND contact = $3`,
		s.domain, local, contact); err != nil {
		return false, err
	}
	s.mu.Lock()
	delete(s.subs, k)
	s.subscribers.add(contact, -1)
	s.mu.Unlock()
	return true, nil
}

func (s *pgStore) isSubscriber(local, contact string) (bool, error) {
	k := string(pairKey(local, contact))
	s.mu.Lock()
	_, ok := s.subs[k]
	s.mu.Unlock()
	if ok {
		return true, nil
	}
	if !s.up.Load() {
		return false, ErrStoreUnavailable
	}
	// Not in memory: ask the database before saying no (another gateway
	// may have written it since the last refresh).
	ctx, cancel := context.WithTimeout(context.Background(), s.opt.opTimeout)
	defer cancel()
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM xmppgw_subscribers WHERE component = $1 AND local_jid = $2 AND contact = $3`,
		s.domain, local, contact).Scan(&n)
	if err != nil {
		return false, s.failed(err)
	}
	if n > 0 {
		// Another gateway wrote it: memory holds it from now on.
		s.wmu.Lock()
		s.mu.Lock()
		if _, ok := s.subs[k]; !ok {
			s.subs[k] = struct{}{}
			s.subscribers.add(contact, 1)
		}
		s.mu.Unlock()
		s.wmu.Unlock()
	}
	return n > 0, nil
}

func (s *pgStore) canAdd(contact string) error {
	if len(contact)+1 >= storeMaxKeyBytes {
		return &storeFullError{"length"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subscribers.check(contact, s.lim)
}

func (s *pgStore) setSubscription(local, contact string, st subState) error {
	k := string(pairKey(local, contact))
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	old, known := s.subns[k]
	err := s.admit(&s.subscriptions, known, k, contact)
	s.mu.Unlock()
	if err != nil || known && old == st {
		return err
	}
	if _, err := s.exec(`INSERT INTO xmppgw_subscriptions (component, local_jid, contact, state) VALUES ($1, $2, $3, $4)
		ON CONFLICT (component, local_jid, contact) DO UPDATE SET state = EXCLUDED.state, updated_at = now()`,
		s.domain, local, contact, stateName(st)); err != nil {
		return err
	}
	s.mu.Lock()
	s.subns[k] = st
	if !known {
		s.subscriptions.add(contact, 1)
	}
	s.mu.Unlock()
	return nil
}

func (s *pgStore) subscription(local, contact string) (subState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subns[string(pairKey(local, contact))], nil
}

func (s *pgStore) removeSubscription(local, contact string) (bool, error) {
	k := string(pairKey(local, contact))
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	_, known := s.subns[k]
	s.mu.Unlock()
	if !known {
		return false, nil
	}
	if _, err := s.exec(`DELETE FROM xmppgw_subscriptions WHERE component = $1 AND local_jid = $2 AND contact = $3`,
		s.domain, local, contact); err != nil {
		return false, err
	}
	s.mu.Lock()
	delete(s.subns, k)
	s.subscriptions.add(contact, -1)
	s.mu.Unlock()
	return true, nil
}

// eachSubscriber calls fn for every subscriber in memory, ordered by key
// (as the bbolt store), outside the lock.
func (s *pgStore) eachSubscriber(fn func(local, contact string) error) error {
	s.mu.Lock()
	keys := make([]string, 0, len(s.subs))
	for k := range s.subs {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	sort.Strings(keys)
	for _, k := range keys {
		local, contact, _ := splitKey([]byte(k))
		if err := fn(local, contact); err != nil {
			return err
		}
	}
	return nil
}

func (s *pgStore) eachSubscription(fn func(local, contact string, st subState) error) error {
	type row struct {
		k  string
		st subState
	}
	s.mu.Lock()
	rows := make([]row, 0, len(s.subns))
	for k, st := range s.subns {
		rows = append(rows, row{k, st})
	}
	s.mu.Unlock()
	sort.Slice(rows, func(i, j int) bool { return rows[i].k < rows[j].k })
	for _, r := range rows {
		local, contact, _ := splitKey([]byte(r.k))
		if err := fn(local, contact, r.st); err != nil {
			return err
		}
	}
	return nil
}

func (s *pgStore) counts() (int, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subscribers.total, s.subscriptions.total, nil
}
