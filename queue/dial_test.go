package queue

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestDialErrorsRedacted(t *testing.T) {
	// Nothing listens on port 1.
	_, err := DialPublisher(testCtx(t), "amqp://guest:s3cret@127.0.0.1:1/", "x", testLogger(t))
	if err == nil {
		t.Fatal("dial succeeded")
	}
	if strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "xxxxx") {
		t.Fatalf("error %q", err)
	}
	_, err = Consume(testCtx(t), ConsumerConfig{URL: "amqp://guest:s3cret@127.0.0.1:1/", Queue: "q"})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("Consume: %v", err)
	}
	// Wrong password: the broker refuses.
	u := strings.Replace(testURL(), "guest:guest", "guest:wrong-s3cret", 1)
	_, err = DialPublisher(testCtx(t), u, "x", testLogger(t))
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("dial with a wrong password: %v", err)
	}
	t.Log(err)
}

// A server that accepts the TCP connection and never speaks: ctx bounds the
// handshake.
func TestDialContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	defer func() {
		ln.Close()
		for c := range accepted {
			c.Close()
		}
	}()
	url := "amqp://guest:guest@" + ln.Addr().String() + "/"

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = DialPublisher(ctx, url, "x", nil)
	if err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("DialPublisher = %v after %v", err, time.Since(start))
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}

	// Cancellation without a deadline works too.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start = time.Now()
	_, err = Consume(ctx, ConsumerConfig{URL: url, Queue: "q"})
	if err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("Consume = %v after %v", err, time.Since(start))
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want Canceled", err)
	}
}

func TestConsumeTopologyError(t *testing.T) {
	a := newAdmin(t)
	q := uniqueName(t, "test-queue-")
	a.declare(t, q, nil) // classic, no single active consumer
	_, err := Consume(testCtx(t), ConsumerConfig{URL: testURL(), Queue: q, Prefetch: 1, Topology: Topology{OutQueue: q}, Logger: testLogger(t)})
	var te *TopologyError
	if !errors.As(err, &te) || te.Queue != q || !errors.Is(err, ErrTopology) {
		t.Fatalf("Consume: %v, want a TopologyError of %s", err, q)
	}
	if !strings.Contains(err.Error(), "x-single-active-consumer") {
		t.Errorf("error %q does not say which argument", err)
	}
}

// The publishing channel closes without the Publisher asking: it ends.
func TestPublisherChannelLost(t *testing.T) {
	p := dialPublisher(t)
	p.ch.Close()
	waitDone(t, p.Done(), "publisher")
	if !errors.Is(p.Err(), ErrClosed) {
		t.Fatalf("Err = %v", p.Err())
	}
	if _, err := p.Publish(testCtx(t), "x", amqp.Publishing{}, false); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish: %v", err)
	}
}

// A URL whose password amqp091 cannot parse, or would split in the wrong
// place, is refused before dialling, and no error quotes any part of the
// password.
func TestDialBadURLsRedacted(t *testing.T) {
	const tok = "Qz8DialSecret"
	for i, tc := range []struct {
		url    string
		badURL bool // refused with ErrURL
	}{
		0:  {"amqp://u:" + tok + "%zz" + tok + "@127.0.0.1:1/", true},
		1:  {"amqp://u:" + tok + " " + tok + "@127.0.0.1:1/", true},
		2:  {"amqp://u:" + tok + "#" + tok + "@127.0.0.1:1/", true},
		3:  {"amqp://u:" + tok + "@" + tok + "#" + tok + "@127.0.0.1:1/", true},
		4:  {"amqp://u:12/" + tok + "@127.0.0.1:1/", true},
		5:  {"amqp://u:" + tok + "?" + tok + "@127.0.0.1:1/", true},
		6:  {"amqp://u:" + tok + "\"\\" + tok + "@127.0.0.1:1/", true},
		7:  {"http://u:" + tok + "@127.0.0.1:1/", true},
		8:  {"u:" + tok + "@127.0.0.1:1", true},
		9:  {"amqp://u:" + tok + "@" + tok + "@127.0.0.1:1/", false}, // valid: split at the last @
		10: {"amqp://u:" + tok + "%40" + tok + "@127.0.0.1:1/", false},
		11: {"amqp://u:" + tok + "@127.0.0.1:1/?heartbeat=often", true},
	} {
		for _, what := range []string{"publisher", "consumer"} {
			var err error
			if what == "publisher" {
				_, err = DialPublisher(testCtx(t), tc.url, "x", testLogger(t))
			} else {
				_, err = Consume(testCtx(t), ConsumerConfig{URL: tc.url, Queue: "q"})
			}
			if err == nil {
				t.Fatalf("%d: %s: dial succeeded", i, what)
			}
			if strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), "Qz8") {
				t.Errorf("%d: %s: error leaks the password: %v", i, what, err)
			}
			if errors.Is(err, ErrURL) != tc.badURL {
				t.Errorf("%d: %s: errors.Is(%v, ErrURL) = %v", i, what, err, !tc.badURL)
			}
		}
	}
}

// The heartbeat is 10 s unless the URL asks for another (?heartbeat=N, in
// seconds, as the AMQP URI spec has it): a stalled link is noticed within
// about two heartbeats.
func TestDialHeartbeat(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  time.Duration
	}{
		{"", heartbeat},
		{"?heartbeat=3", 3 * time.Second},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, _, err := dial(ctx, strings.TrimSuffix(testURL(), "/")+"/"+tc.query, "heartbeat test")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		got := conn.Config.Heartbeat
		_ = conn.Close()
		if got != tc.want {
			t.Errorf("URL %q: heartbeat %v, want %v", tc.query, got, tc.want)
		}
	}
}
