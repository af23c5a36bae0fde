package presence

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openTestStore(t *testing.T, path string) *boltStore {
	t.Helper()
	st, err := openBolt(path, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStorePersistsAcrossReopen(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			loc := filepath.Join(t.TempDir(), "sub", "dir", "xmppgw.db") // parents created
			if kind == "postgres" {
				loc = pgTestSchema(t)
			}
			testStorePersists(t, kind, loc)
		})
	}
}

func testStorePersists(t *testing.T, kind, loc string) {
	st := openKind(t, kind, loc)
	const l, x, y = "notices@gw.example.org", "alice@example.org", "bob@example.org"
	if added, err := st.addSubscriber(l, x); err != nil || !added {
		t.Fatalf("addSubscriber: %v %v", added, err)
	}
	if added, err := st.addSubscriber(l, x); err != nil || added {
		t.Fatalf("second addSubscriber: %v %v, want not added", added, err)
	}
	if _, err := st.addSubscriber(l, y); err != nil {
		t.Fatal(err)
	}
	if err := st.setSubscription(l, x, subApproved); err != nil {
		t.Fatal(err)
	}
	if err := st.setSubscription(l, y, subPending); err != nil {
		t.Fatal(err)
	}
	if removed, err := st.removeSubscriber(l, y); err != nil || !removed {
		t.Fatalf("removeSubscriber: %v %v", removed, err)
	}
	if err := st.close(); err != nil {
		t.Fatal(err)
	}

	st = openKind(t, kind, loc)
	defer st.close()
	var subs []string
	if err := st.eachSubscriber(func(local, contact string) error {
		subs = append(subs, local+" "+contact)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(subs) != 1 || subs[0] != l+" "+x {
		t.Fatalf("subscribers after reopen: %q", subs)
	}
	for c, want := range map[string]subState{x: subApproved, y: subPending, "carol@example.org": subNone} {
		if got, err := st.subscription(l, c); err != nil || got != want {
			t.Errorf("subscription %s: %q %v, want %q", c, got, err, want)
		}
	}
	if n, m, err := st.counts(); err != nil || n != 1 || m != 2 {
		t.Errorf("counts %d %d %v, want 1 2", n, m, err)
	}
}

func TestStoreLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "xmppgw.db")
	st := openTestStore(t, path)
	defer st.close()
	start := time.Now()
	_, err := openBolt(path, 200*time.Millisecond)
	if !errors.Is(err, ErrStoreLocked) {
		t.Fatalf("second open: %v, want ErrStoreLocked", err)
	}
	if !strings.Contains(err.Error(), "presence.store") || !strings.Contains(err.Error(), path) ||
		!strings.Contains(err.Error(), "another xmppgw running?") {
		t.Errorf("error %q does not name the key, the path and the likely cause", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s", d)
	}
}

func TestStoreCorrupt(t *testing.T) {
	other := filepath.Join(t.TempDir(), "other.db")
	db, err := bolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("x")); return err }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	otherBytes, err := os.ReadFile(other)
	if err != nil {
		t.Fatal(err)
	}
	page := os.Getpagesize()
	for i, content := range [][]byte{
		[]byte("not a database at all"),             // too small
		bytes.Repeat([]byte("garbage!"), page),      // bad meta pages
		make([]byte, 4*page),                        // zeros
		otherBytes,                                  // a bbolt file that is not ours
		append([]byte(nil), otherBytes[:2*page]...), // truncated
		bytes.Repeat([]byte{0xff}, 2*page+page/2),   // odd size
	} {
		path := filepath.Join(t.TempDir(), "xmppgw.db")
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := openBolt(path, 100*time.Millisecond)
		if err == nil {
			st.close()
			t.Errorf("%d: opened a corrupt file", i)
			continue
		}
		if !strings.Contains(err.Error(), "presence.store "+path) {
			t.Errorf("%d: error %q does not name presence.store and the path", i, err)
		}
		t.Logf("%d: %v", i, err)
	}
}

func TestStoreUnreadable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "xmppgw.db")
	if err := os.Mkdir(path, 0o700); err != nil { // a directory in the way
		t.Fatal(err)
	}
	_, err := openBolt(path, 100*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "presence.store "+path) {
		t.Fatalf("err %v", err)
	}
}
