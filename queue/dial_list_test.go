package queue

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func TestSplitAndCheckURLs(t *testing.T) {
	for i, tc := range []struct {
		in   string
		urls int
		ok   bool
		why  string // in the error
	}{
		0: {"amqp://guest:guest@127.0.0.1:5672/", 1, true, ""},
		1: {"amqp://u:p@a:5672/,amqp://u:p@b:5672/,amqp://u:p@c:5672/", 3, true, ""},
		2: {"amqp://u:p@a/, amqp://u:p@b/", 2, true, ""},
		3: {"amqp://u:p@a/,", 2, false, "URL 2 of 2 is empty"},
		4: {"amqp://u:p@a/,,amqp://u:p@b/", 3, false, "URL 2 of 3 is empty"},
		5: {"amqp://u:p@a/,http://u:p@b/", 2, false, "URL 2 of 2: it must start with amqp://"},
		6: {"amqp://u:p%zz@a/,amqp://u:p@b/", 2, false, "URL 1 of 2: it contains an invalid percent-encoding"},
		// A comma in a password splits the URL: it must be percent-encoded.
		7: {"amqp://u:pa,ss@a/", 2, false, "URL 1 of 2"},
		8: {"amqp://u:pa%2Css@a/", 1, true, ""},
	} {
		if n := len(SplitURLs(tc.in)); n != tc.urls {
			t.Errorf("%d: SplitURLs(%q) has %d URLs, want %d", i, tc.in, n, tc.urls)
		}
		err := CheckURLs(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("%d: CheckURLs(%q) = %v, want ok %v", i, tc.in, err, tc.ok)
			continue
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrURL) || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%d: CheckURLs(%q) = %v, want ErrURL and %q", i, tc.in, err, tc.why)
		}
		if strings.Contains(err.Error(), "u:p") || strings.Contains(err.Error(), "ss@") {
			t.Errorf("%d: %q quotes the URL", i, err)
		}
	}
}

func TestRedactURLList(t *testing.T) {
	for i, tc := range []struct{ in, want string }{
		0: {"amqp://u:secret1@a:1/,amqp://u:secret2@b:2/vh", "amqp://u:xxxxx@a:1/,amqp://u:xxxxx@b:2/vh"},
		1: {"amqp://u:secret1@a:1/, amqp://b:2/", "amqp://u:xxxxx@a:1/,amqp://b:2/"},
		// One bad URL: the whole list is one malformed URL, cut at its last @.
		2: {"amqp://u:secret1@a:1/,amqp://u:sec#ret2@b:2/", "amqp://xxxxx@b:2/"},
		3: {"amqp://u:sec,ret@a:1/", "amqp://u:xxxxx@a:1/"},
		4: {"amqp://u:sec,ret#x@a:1/", "amqp://xxxxx@a:1/"},
	} {
		got := RedactURL(tc.in)
		if got != tc.want {
			t.Errorf("%d: RedactURL(%q) = %q, want %q", i, tc.in, got, tc.want)
		}
		if strings.Contains(got, "sec") || strings.Contains(got, "ret") {
			t.Errorf("%d: %q leaks a password", i, got)
		}
	}
}

// deadAddr is a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silentAddr accepts connections and never speaks, until the test ends.
func silentAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// The dial walks the list in order: nodes that refuse or never answer are
// passed over, the first that answers wins, and each dial starts again from
// the first URL.
func TestDialListOrder(t *testing.T) {
	good := testURL()
	hostOf := func(u string) string { return u[strings.LastIndex(u, "@")+1:] }
	dead := "amqp://guest:s3cret-dead@" + deadAddr(t) + "/"
	silent := "amqp://guest:s3cret-silent@" + silentAddr(t) + "/"
	for i, tc := range []struct {
		list string
		want string // the URL that answers ("" none)
	}{
		0: {good, good},
		1: {dead + "," + good, good},
		2: {dead + "," + silent + "," + good, good},
		3: {good + "," + dead, good},
		4: {dead + "," + silent, ""},
	} {
		// The silent node gets its share of the 6 s (a half or a third),
		// not all of it: else the good node after it would time out.
		ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
		p, err := DialPublisher(ctx, tc.list, "dial order test", testLogger(t))
		cancel()
		if tc.want == "" {
			if err == nil {
				p.Close()
				t.Fatalf("%d: connected to %s", i, p.URL())
			}
			if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "none of the 2 brokers") {
				t.Errorf("%d: error %q", i, err)
			}
			t.Logf("%d: %v", i, err)
			continue
		}
		if err != nil {
			t.Fatalf("%d: DialPublisher: %v", i, err)
		}
		if got := p.URL(); got != RedactURL(tc.want) || !strings.HasSuffix(got, hostOf(tc.want)) {
			t.Errorf("%d: connected to %s, want %s", i, got, RedactURL(tc.want))
		}
		p.Close()
	}
	// The consumer walks the same way.
	a := newAdmin(t)
	q := uniqueName(t, "test-queue-")
	a.declare(t, q, map[string]any{"x-single-active-consumer": true})
	c, err := Consume(testCtx(t), ConsumerConfig{URL: dead + "," + good, Queue: q,
		Topology: Topology{OutQueue: q}, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Consume: %v", err)
	}
	if c.URL() != RedactURL(good) {
		t.Errorf("consumer on %s, want %s", c.URL(), RedactURL(good))
	}
	c.Close()
}
