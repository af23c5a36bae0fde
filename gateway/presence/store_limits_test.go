package presence

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// A flood of subscriptions from one JID (or one domain) to ever new local
// JIDs stops at the caps: refused without a write, existing records kept,
// the file bounded.
func TestStoreFloodBounded(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) { testStoreFloodBounded(t, kind) })
	}
}

func testStoreFloodBounded(t *testing.T, kind string) {
	loc := newStoreLocation(t, kind)
	st := openKind(t, kind, loc)
	defer st.close()
	lim := storeLimits{perContact: 10, perDomain: 25, total: 40}
	st.setLimits(lim)

	const victim = "victim@example.org"
	if _, err := st.addSubscriber("notices@gw.example.org", victim); err != nil {
		t.Fatal(err)
	}
	var full []error
	for i := range 1000 {
		_, err := st.addSubscriber(fmt.Sprintf("x%d@gw.example.org", i), "eve@evil.example")
		if err != nil {
			full = append(full, err)
		}
	}
	if n, _, _ := st.counts(); n != 11 {
		t.Errorf("subscribers %d, want 1 + 10 (per contact cap)", n)
	}
	if len(full) != 990 || !errors.Is(full[0], ErrStoreFull) || storeFullLimit(full[0]) != "contact" {
		t.Fatalf("%d refusals, first %v", len(full), full[0])
	}
	// many JIDs of one domain: the domain cap
	for i := range 100 {
		_, err := st.addSubscriber("notices@gw.example.org", fmt.Sprintf("e%d@evil.example", i))
		if err != nil && storeFullLimit(err) != "domain" {
			t.Fatalf("%d: %v", i, err)
		}
	}
	// many domains: the total cap
	for i := range 100 {
		_, err := st.addSubscriber("notices@gw.example.org", fmt.Sprintf("m@evil%d.example", i))
		if err != nil && storeFullLimit(err) != "total" {
			t.Fatalf("%d: %v", i, err)
		}
	}
	if n, _, _ := st.counts(); n != 40 {
		t.Errorf("subscribers %d, want the total cap 40", n)
	}
	// refusals cost no write transaction; known pairs neither
	w := st.writeCount()
	for i := range 500 {
		_, _ = st.addSubscriber(fmt.Sprintf("y%d@gw.example.org", i), "eve@evil.example")
		_, _ = st.addSubscriber("notices@gw.example.org", victim)
		_, _ = st.removeSubscriber(fmt.Sprintf("y%d@gw.example.org", i), "nobody@example.org")
		_, _ = st.removeSubscription(fmt.Sprintf("y%d@gw.example.org", i), "nobody@example.org")
	}
	if d := st.writeCount() - w; d != 0 {
		t.Errorf("%d write transactions for refused, known or absent pairs", d)
	}
	if ok, _ := st.isSubscriber("notices@gw.example.org", victim); !ok {
		t.Error("an existing subscriber was touched")
	}
	// removing frees room for that contact again
	if _, err := st.removeSubscriber("x0@gw.example.org", "eve@evil.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.removeSubscriber("notices@gw.example.org", victim); err != nil {
		t.Fatal(err)
	}
	if added, err := st.addSubscriber("z@gw.example.org", "eve@evil.example"); err != nil || !added {
		t.Errorf("after a removal: %v %v", added, err)
	}
	// our subscriptions have the same caps
	for i := range 50 {
		err := st.setSubscription(fmt.Sprintf("x%d@gw.example.org", i), "eve@evil.example", subPending)
		if i >= 10 && storeFullLimit(err) != "contact" {
			t.Fatalf("subscription %d: %v", i, err)
		}
	}
	// an existing subscription may still change state at the cap
	if err := st.setSubscription("x0@gw.example.org", "eve@evil.example", subApproved); err != nil {
		t.Fatal(err)
	}
	if _, m, _ := st.counts(); m != 10 {
		t.Errorf("subscriptions %d", m)
	}
	// counters are rebuilt from the file at open
	if err := st.close(); err != nil {
		t.Fatal(err)
	}
	st2 := openKind(t, kind, loc)
	defer st2.close()
	st2.setLimits(lim)
	if n, m, _ := st2.counts(); n != 39 || m != 10 { // 40, two removed, one added
		t.Errorf("after reopen: %d %d", n, m)
	}
	if _, err := st2.addSubscriber("q@gw.example.org", "new@example.net"); err != nil {
		t.Fatal(err)
	}
	if _, err := st2.addSubscriber("q@gw.example.org", "new2@example.net"); storeFullLimit(err) != "total" {
		t.Errorf("after reopen the total cap is gone: %v", err)
	}
	// long made-up JIDs are refused whatever the counts
	long := strings.Repeat("l", 400)
	if _, err := st2.addSubscriber(long+"@gw.example.org", long+"@example.net"); storeFullLimit(err) != "length" {
		t.Errorf("a %d-byte pair: %v", 2*len(long), err)
	}
	if err := st2.canAdd(long + long + "@example.net"); storeFullLimit(err) != "length" {
		t.Errorf("canAdd of a long contact: %v", err)
	}
	if kind == "bolt" {
		fi, err := os.Stat(loc)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("file %d bytes after the flood", fi.Size())
	}
}

// With the default caps, one JID subscribing to 5,000 local JIDs leaves at
// most storeMaxPerContact records.
func TestStoreFloodDefaults(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			st := openKind(t, kind, newStoreLocation(t, kind))
			defer st.close()
			testStoreFloodDefaults(t, st)
		})
	}
}

func testStoreFloodDefaults(t *testing.T, st store) {
	for i := range 5000 {
		_, _ = st.addSubscriber(fmt.Sprintf("x%d@gw.example.org", i), "eve@evil.example")
	}
	if n, _, _ := st.counts(); n != storeMaxPerContact {
		t.Errorf("subscribers %d, want %d", n, storeMaxPerContact)
	}
	if w := st.writeCount(); w > storeMaxPerContact+2 {
		t.Errorf("%d write transactions", w)
	}
}
