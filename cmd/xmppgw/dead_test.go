package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The dead commands against the real broker, in uniquely named queues.

// TestMain lets a test run the command as a child process (to kill it):
// with XMPPGW_TEST_MAIN=1 the test binary is xmppgw.
func TestMain(m *testing.M) {
	if os.Getenv("XMPPGW_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// broker is the test's own connection, independent of the code under test.
type broker struct {
	t    *testing.T
	conn *amqp.Connection
	ch   *amqp.Channel // in confirm mode
}

func newBroker(t *testing.T) *broker {
	t.Helper()
	conn, err := amqp.Dial(amqpURL())
	if err != nil {
		t.Fatalf("broker: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	return &broker{t: t, conn: conn, ch: ch}
}

// queue declares a durable classic queue with a unique name, deleted when
// the test ends.
func (b *broker) queue(prefix string) string {
	b.t.Helper()
	var r [6]byte
	_, _ = rand.Read(r[:])
	q := prefix + hex.EncodeToString(r[:])
	ch := b.channel()
	defer ch.Close()
	if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() {
		conn, err := amqp.Dial(amqpURL())
		if err != nil {
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(q, false, false, false)
		}
	})
	return q
}

func (b *broker) channel() *amqp.Channel {
	b.t.Helper()
	ch, err := b.conn.Channel()
	if err != nil {
		b.t.Fatal(err)
	}
	return ch
}

// publish publishes msgs to q and waits for every confirm.
func (b *broker) publish(q string, msgs ...amqp.Publishing) {
	b.t.Helper()
	dcs := make([]*amqp.DeferredConfirmation, 0, len(msgs))
	for _, m := range msgs {
		dc, err := b.ch.PublishWithDeferredConfirm("", q, true, false, m)
		if err != nil {
			b.t.Fatal(err)
		}
		dcs = append(dcs, dc)
	}
	for _, dc := range dcs {
		if !dc.Wait() {
			b.t.Fatal("nacked")
		}
	}
}

// ready returns the number of ready messages of q.
func (b *broker) ready(q string) int {
	b.t.Helper()
	ch := b.channel()
	defer ch.Close()
	st, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return st.Messages
}

// drain takes every ready message of q (auto-ack), in order.
func (b *broker) drain(q string) []amqp.Delivery {
	b.t.Helper()
	ch := b.channel()
	defer ch.Close()
	var ds []amqp.Delivery
	for {
		d, ok, err := ch.Get(q, true)
		if err != nil {
			b.t.Fatal(err)
		}
		if !ok {
			return ds
		}
		ds = append(ds, d)
	}
}

func ids(ds []amqp.Delivery) []string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.MessageId
	}
	return s
}

// deadConfig writes a config naming out and dead.
func deadConfig(t *testing.T, out, dead string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "c.yaml")
	body := fmt.Sprintf("xmpp:\n  domain: gw.example.org\n  secret: hunter2-secret\namqp:\n  url: %s\n  out_queue: %s\n  dead_letter_queue: %s\n", amqpURL(), out, dead)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// deadLetter is a dead letter as the gateway publishes it: the item's body
// and properties, plus its headers and x-xmppgw-error.
func deadLetter(i int, reason string) amqp.Publishing {
	h := amqp.Table{"x-trace": "t-" + strconv.Itoa(i)}
	if reason != "" {
		h["x-xmppgw-error"] = reason
	}
	return amqp.Publishing{
		Headers:      h,
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		MessageId:    "item-" + strconv.Itoa(i),
		Timestamp:    time.Unix(1764400000+int64(i), 0),
		Body:         []byte(fmt.Sprintf(`{"target":"alice@example.org","text":"item %d %s"}`, i, strings.Repeat("x", 200))),
	}
}

// brokerDeadLetter is an item the broker moved itself (x-death).
func brokerDeadLetter(i int, out string) amqp.Publishing {
	p := deadLetter(i, "")
	p.Headers["x-death"] = []any{amqp.Table{"reason": "expired", "queue": out, "count": int64(1), "exchange": ""}}
	p.Headers["x-first-death-reason"] = "expired"
	p.Headers["x-first-death-queue"] = out
	p.Headers["x-delivery-count"] = int64(20)
	return p
}

// TestDeadListAndRequeue fills a dead-letter queue with items of three
// gateway reasons, two the broker moved and one without a reason; lists
// it, requeues by reason, by id and all, and checks after each step that
// the rest is untouched, in order.
func TestDeadListAndRequeue(t *testing.T) {
	b := newBroker(t)
	out, dead := b.queue("test-dead-out-"), b.queue("test-dead-")
	cfg := deadConfig(t, out, dead)
	reasons := []string{"text_too_long: text is 70000 bytes, limit 65536", `bad_jid: target "a@@b": invalid`, "invalid_json: body is not a JSON object"}
	var msgs []amqp.Publishing
	var all []string
	for i := range 30 {
		msgs = append(msgs, deadLetter(i, reasons[i%3]))
		all = append(all, "item-"+strconv.Itoa(i))
	}
	msgs = append(msgs, brokerDeadLetter(30, out), brokerDeadLetter(31, out), deadLetter(32, ""))
	all = append(all, "item-30", "item-31", "item-32")
	b.publish(dead, msgs...)

	// The listing: counts, one sample each, nothing removed, order kept.
	code, stdout, stderr := runCmd("dead", "-c", cfg)
	if code != exitOK {
		t.Fatalf("dead: exit %d\n%s%s", code, stdout, stderr)
	}
	t.Logf("dead:\n%s", stdout)
	at := func(i int) string { return deadLetter(i, "").Timestamp.UTC().Format(time.RFC3339) }
	size := func(i int) int { return len(deadLetter(i, "").Body) }
	for _, want := range []string{
		dead + ": 33 items examined", "10  text_too_long  gateway", "10  bad_jid        gateway",
		"10  invalid_json   gateway", "2  expired        broker", "1  unknown        unknown",
		fmt.Sprintf("text_too_long: 10 items; sample: #1 id=item-0 queued %s %d bytes", at(0), size(0)),
		"error: text_too_long: text is 70000 bytes, limit 65536",
		fmt.Sprintf(`body:  {"target":"alice@example.org","text":"item 0 %s… (%d bytes)`, strings.Repeat("x", 120-45), size(0)),
		"expired: 2 items; sample: #31 id=item-30", "unknown: 1 item; sample: #33 id=item-32", "dead-lettered by the broker (x-death): expired from queue " + out,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("dead output lacks %q", want)
		}
	}
	if strings.Contains(stdout+stderr, "hunter2-secret") || strings.Contains(stdout+stderr, "guest:guest") {
		t.Errorf("a secret was printed:\n%s%s", stdout, stderr)
	}
	if n := b.ready(dead); n != 33 {
		t.Fatalf("after the listing %s holds %d, want 33", dead, n)
	}

	// --max: only the head is examined, and the listing says so.
	_, stdout, _ = runCmd("dead", "-c", cfg, "--max", "2")
	if !strings.Contains(stdout, dead+": 2 items examined") || !strings.Contains(stdout, "31 items behind them not examined (--max)") ||
		!strings.Contains(stdout, "    1  bad_jid ") {
		t.Errorf("dead --max 2:\n%s", stdout)
	}

	// --items with a reason: one line per item of that reason.
	_, stdout, _ = runCmd("dead", "-c", cfg, "--items", "--reason", "expired", "--body-bytes", "0")
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^31\s+expired\s+item-30\s+%s\s+%d$`, at(30), size(30))).MatchString(stdout) ||
		!regexp.MustCompile(`(?m)^32\s+expired\s+item-31\s`).MatchString(stdout) || strings.Contains(stdout, "item-0 ") ||
		strings.Contains(stdout, "body:") {
		t.Errorf("dead --items --reason expired:\n%s", stdout)
	}

	// A dry run moves nothing.
	code, stdout, _ = runCmd("dead", "requeue", "-c", cfg, "--reason", "bad_jid", "--dry-run")
	if code != exitOK || !strings.Contains(stdout, "bad_jid: 10 items") || b.ready(dead) != 33 || b.ready(out) != 0 {
		t.Fatalf("dry run: exit %d, %d left, %d out\n%s", code, b.ready(dead), b.ready(out), stdout)
	}

	// Requeue one reason, and the broker's.
	code, stdout, stderr = runCmd("dead", "requeue", "-c", cfg, "--reason", "bad_jid,expired", "--window", "3")
	if code != exitOK || !strings.Contains(stdout, "requeued 12 of 12 selected to "+out+" (bad_jid 10, expired 2); 33 examined") {
		t.Fatalf("requeue: exit %d\n%s%s", code, stdout, stderr)
	}
	moved := b.drain(out)
	var wantMoved, rest []string
	for i, id := range all {
		if i%3 == 1 && i < 30 || i == 30 || i == 31 {
			wantMoved = append(wantMoved, id)
		} else {
			rest = append(rest, id)
		}
	}
	if got := ids(moved); strings.Join(got, " ") != strings.Join(wantMoved, " ") {
		t.Fatalf("moved:\n got %v\nwant %v", got, wantMoved)
	}
	for _, d := range moved {
		i, _ := strconv.Atoi(strings.TrimPrefix(d.MessageId, "item-"))
		want := deadLetter(i, "")
		if !bytes.Equal(d.Body, want.Body) || d.ContentType != want.ContentType || d.DeliveryMode != want.DeliveryMode ||
			!d.Timestamp.Equal(want.Timestamp) || d.Headers["x-trace"] != want.Headers["x-trace"] || len(d.Headers) != 1 {
			t.Fatalf("copy of %s: body %q type %q mode %d at %v headers %v", d.MessageId, d.Body, d.ContentType, d.DeliveryMode, d.Timestamp, d.Headers)
		}
	}
	// The rest, in order: browse it with the command (order of --items).
	checkOrder := func(want []string) {
		t.Helper()
		_, stdout, stderr := runCmd("dead", "-c", cfg, "--items", "--body-bytes", "0")
		var got []string
		for _, m := range regexp.MustCompile(`(?m)^\d+\s+\S+\s+(item-\d+)\s`).FindAllStringSubmatch(stdout, -1) {
			got = append(got, m[1])
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("left in %s:\n got %v\nwant %v\n%s%s", dead, got, want, stdout, stderr)
		}
	}
	checkOrder(rest)

	// By id: two of them.
	code, stdout, stderr = runCmd("dead", "requeue", "-c", cfg, "--id", "item-5", "--id", "item-32")
	if code != exitOK || !strings.Contains(stdout, "requeued 2 of 2 selected") {
		t.Fatalf("requeue --id: exit %d\n%s%s", code, stdout, stderr)
	}
	if got := ids(b.drain(out)); strings.Join(got, " ") != "item-5 item-32" {
		t.Fatalf("moved by id: %v", got)
	}
	rest = slicesDelete(rest, "item-5", "item-32")
	checkOrder(rest)

	// Nothing matches: exit 0, nothing moves.
	code, stdout, _ = runCmd("dead", "requeue", "-c", cfg, "--reason", "no_such_reason")
	if code != exitOK || !strings.Contains(stdout, "no item matched") || b.ready(dead) != len(rest) {
		t.Fatalf("requeue of nothing: exit %d\n%s", code, stdout)
	}

	// All, with --max: only the head moves.
	code, stdout, _ = runCmd("dead", "requeue", "-c", cfg, "--all", "--max", "5")
	if code != exitOK || !strings.Contains(stdout, "requeued 5 of 5 selected") || !strings.Contains(stdout, fmt.Sprintf("%d items behind them in %s not examined (--max 5)", len(rest)-5, dead)) {
		t.Fatalf("requeue --all --max 5: exit %d\n%s", code, stdout)
	}
	if got := ids(b.drain(out)); strings.Join(got, " ") != strings.Join(rest[:5], " ") {
		t.Fatalf("moved with --max 5: %v, want %v", got, rest[:5])
	}
	checkOrder(rest[5:])
	code, stdout, _ = runCmd("dead", "requeue", "-c", cfg, "--all")
	if code != exitOK || b.ready(dead) != 0 || b.ready(out) != len(rest)-5 {
		t.Fatalf("requeue --all: exit %d, %d left, %d out\n%s", code, b.ready(dead), b.ready(out), stdout)
	}
	if _, stdout, _ := runCmd("dead", "-c", cfg); !strings.Contains(stdout, dead+": empty") {
		t.Fatalf("empty queue:\n%s", stdout)
	}
}

func slicesDelete(s []string, drop ...string) []string {
	var out []string
	for _, v := range s {
		keep := true
		for _, d := range drop {
			keep = keep && v != d
		}
		if keep {
			out = append(out, v)
		}
	}
	return out
}

// TestDeadRequeueToMissingQueue: the out queue does not exist, the broker
// returns the copy: exit 1, nothing leaves the dead-letter queue.
func TestDeadRequeueToMissingQueue(t *testing.T) {
	b := newBroker(t)
	dead := b.queue("test-dead-")
	cfg := deadConfig(t, dead+"-missing-out", dead)
	b.publish(dead, deadLetter(0, "bad_jid: x"), deadLetter(1, "bad_jid: x"))
	code, stdout, stderr := runCmd("dead", "requeue", "-c", cfg, "--all")
	if code != exitFailure || !strings.Contains(stderr, "NO_ROUTE") || !strings.Contains(stderr, "not moved stay in "+dead) {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	if got := ids(b.drain(dead)); strings.Join(got, " ") != "item-0 item-1" {
		t.Fatalf("left: %v", got)
	}
}

func TestDeadUsage(t *testing.T) {
	cfg := deadConfig(t, "o", "d")
	for i, tc := range []struct {
		args []string
		out  string
	}{
		0: {[]string{"dead", "requeue", "-c", cfg}, "exactly one of --reason, --id or --all"},
		1: {[]string{"dead", "requeue", "-c", cfg, "--all", "--reason", "x"}, "exactly one of"},
		2: {[]string{"dead", "requeue", "-c", cfg, "--id", "a", "--reason", "x"}, "exactly one of"},
		3: {[]string{"dead"}, "-c FILE is required"},
		4: {[]string{"dead", "-c", cfg, "--max", "0"}, "--max must be at least 1"},
		5: {[]string{"dead", "requeue", "-c", cfg, "--all", "--window", "0"}, "--window"},
		6: {[]string{"dead", "--bogus"}, "flag provided but not defined"},
		7: {[]string{"dead", "requeue", "-c", deadConfig(t, "same", "same"), "--all"}, "is also amqp.out_queue"},
	} {
		code, stdout, stderr := runCmd(tc.args...)
		if code != exitUsage || !strings.Contains(stdout+stderr, tc.out) {
			t.Errorf("%d: %v: exit %d\n%s%s", i, tc.args, code, stdout, stderr)
		}
	}
}

// child starts the test binary as xmppgw with args.
func child(t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "XMPPGW_TEST_MAIN=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, &out
}

// waitFor polls cond until it holds, at most d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// killedMidway SIGKILLs cmd once cond holds; it fails the test if the
// command ended on its own first (nothing was interrupted).
func killedMidway(t *testing.T, cmd *exec.Cmd, out *bytes.Buffer, what string, cond func() bool) {
	t.Helper()
	exited := make(chan struct{})
	go func() { _, _ = cmd.Process.Wait(); close(exited) }()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		select {
		case <-exited:
			t.Fatalf("%s: the command ended before it could be killed midway:\n%s", what, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: timed out", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill: %v", err)
	}
	<-exited
}

const killItems = 20000

func fillDead(t *testing.T, b *broker, dead string) []string {
	t.Helper()
	msgs := make([]amqp.Publishing, killItems)
	want := make([]string, killItems)
	for i := range msgs {
		reason := "bad_jid: x"
		if i%2 == 1 {
			reason = "text_too_long: y"
		}
		msgs[i] = deadLetter(i, reason)
		want[i] = msgs[i].MessageId
	}
	b.publish(dead, msgs...)
	return want
}

// TestDeadListKilled: `xmppgw dead` SIGKILLed while it holds part of the
// queue: the broker returns everything, in order.
func TestDeadListKilled(t *testing.T) {
	b := newBroker(t)
	out, dead := b.queue("test-dead-out-"), b.queue("test-dead-")
	cfg := deadConfig(t, out, dead)
	want := fillDead(t, b, dead)
	cmd, output := child(t, "dead", "-c", cfg)
	killedMidway(t, cmd, output, "dead", func() bool {
		n := b.ready(dead)
		return n < killItems-100 && n > 0
	})
	waitFor(t, 30*time.Second, "the broker to return every item", func() bool { return b.ready(dead) == killItems })
	if got := ids(b.drain(dead)); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("after the kill the queue holds %d items, not in their order", len(got))
	}
}

// TestDeadRequeueKilled: `xmppgw dead requeue --all` SIGKILLed while copies
// flow: every item is in the out queue or back in the dead-letter queue
// (some may be in both: killed between a confirm and its ack).
func TestDeadRequeueKilled(t *testing.T) {
	b := newBroker(t)
	out, dead := b.queue("test-dead-out-"), b.queue("test-dead-")
	cfg := deadConfig(t, out, dead)
	want := fillDead(t, b, dead)
	cmd, output := child(t, "dead", "requeue", "-c", cfg, "--reason", "bad_jid,text_too_long")
	killedMidway(t, cmd, output, "dead requeue", func() bool { return b.ready(out) > 200 })

	found := map[string]int{}
	deadline := time.Now().Add(30 * time.Second)
	var inOut, inDead, dups int
	for len(found) < killItems {
		if time.Now().After(deadline) {
			t.Fatalf("lost: %d of %d items found (%d in %s, %d back in %s)", len(found), killItems, inOut, out, inDead, dead)
		}
		for _, d := range b.drain(out) {
			inOut++
			found[d.MessageId]++
		}
		for _, d := range b.drain(dead) {
			inDead++
			found[d.MessageId]++
		}
		time.Sleep(5 * time.Millisecond) // the broker returns the unacked ones once it sees the connection gone
	}
	for _, id := range want {
		if found[id] > 1 {
			dups++
		}
	}
	if inOut == 0 || inDead == 0 {
		t.Fatalf("not killed midway: %d moved, %d left", inOut, inDead)
	}
	t.Logf("killed midway: %d in %s, %d back in %s, %d in both", inOut, out, inDead, dead, dups)
}
