package queue

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testURL() string {
	if u := os.Getenv("XMPPGW_TEST_AMQP_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// testLogger sends the package's logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// uniqueName returns prefix followed by random hex, and deletes the queue of
// that name when the test ends.
func uniqueName(t testing.TB, prefix string) string {
	t.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := prefix + hex.EncodeToString(b[:])
	t.Cleanup(func() { deleteQueue(t, name) })
	return name
}

// admin is a plain connection of the test, independent of the code under
// test.
type admin struct {
	conn *amqp.Connection
	ch   *amqp.Channel
}

func newAdmin(t testing.TB) *admin {
	t.Helper()
	conn, err := amqp.Dial(testURL())
	if err != nil {
		t.Fatalf("dial %s: %v", RedactURL(testURL()), err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &admin{conn: conn, ch: ch}
}

// channel returns a fresh channel (a failed passive declare kills one).
func (a *admin) channel(t testing.TB) *amqp.Channel {
	t.Helper()
	ch, err := a.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func deleteQueue(t testing.TB, name string) {
	conn, err := amqp.Dial(testURL())
	if err != nil {
		t.Errorf("cleanup: dial: %v", err)
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	if _, err := ch.QueueDelete(name, false, false, false); err != nil {
		t.Errorf("cleanup: delete %s: %v", name, err)
	}
}

// inspect returns the ready message count and consumer count of q, or an
// error (404) if it does not exist.
func (a *admin) inspect(t testing.TB, q string) (amqp.Queue, error) {
	t.Helper()
	ch := a.channel(t)
	defer ch.Close()
	return ch.QueueDeclarePassive(q, true, false, false, false, nil)
}

// publishN publishes n persistent messages "msg-<i>" to q and waits for the
// confirms.
func (a *admin) publishN(t testing.TB, q string, n int) {
	t.Helper()
	var dcs []*amqp.DeferredConfirmation
	for i := range n {
		dc, err := a.ch.PublishWithDeferredConfirm("", q, true, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent,
			MessageId:    "id-" + itoa(i),
			Body:         []byte("msg-" + itoa(i)),
		})
		if err != nil {
			t.Fatal(err)
		}
		dcs = append(dcs, dc)
	}
	for _, dc := range dcs {
		if !dc.Wait() {
			t.Fatal("admin publish nacked")
		}
	}
}

func itoa(i int) string {
	const digits = "0123456789"
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{digits[i%10]}, b...)
	}
	return string(b)
}

// declare declares a plain durable classic queue.
func (a *admin) declare(t testing.TB, q string, args amqp.Table) {
	t.Helper()
	ch := a.channel(t)
	defer ch.Close()
	if _, err := ch.QueueDeclare(q, true, false, false, false, args); err != nil {
		t.Fatalf("declare %s: %v", q, err)
	}
}

func recv(t testing.TB, c <-chan amqp.Delivery, timeout time.Duration) (amqp.Delivery, bool) {
	t.Helper()
	select {
	case d, ok := <-c:
		return d, ok
	case <-time.After(timeout):
		return amqp.Delivery{}, false
	}
}

func waitDone(t testing.TB, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: Done not closed", what)
	}
}

func isAMQPCode(err error, code int) bool {
	var aerr *amqp.Error
	return errors.As(err, &aerr) && aerr.Code == code
}
