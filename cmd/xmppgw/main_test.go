package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("xmpp:\n  domain: gw.example.org\n  secret: hunter2-secret\n  keepalive: 1ms\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		args []string
		code int
		out  string // substring of stdout+stderr
	}{
		0:  {nil, exitUsage, "usage"},
		1:  {[]string{"frobnicate"}, exitUsage, `unknown command "frobnicate"`},
		2:  {[]string{"version"}, exitOK, "xmppgw "},
		3:  {[]string{"check-config", "-c", "../../configs/component.example.yaml"}, exitOK, "<redacted>"},
		4:  {[]string{"check-config", "-c", bad}, exitUsage, "xmpp.keepalive"},
		5:  {[]string{"check-config"}, exitUsage, "-c FILE is required"},
		6:  {[]string{"check-config", "-c", "/nonexistent.yaml"}, exitUsage, "/nonexistent.yaml"},
		7:  {[]string{"run", "--bogus"}, exitUsage, "flag provided but not defined"},
		8:  {[]string{"run", "-c", bad}, exitUsage, "xmpp.keepalive"},
		9:  {[]string{"send", "-c", bad, "--target", "a@b"}, exitUsage, "--text or --payload"},
		10: {[]string{"send", "-c", bad, "--target", "a@b", "--payload", "{nope"}, exitUsage, "not valid JSON"},
		11: {[]string{"help"}, exitOK, "commands:"},
		12: {[]string{"check-config", "-q", "-c", bad}, exitUsage, "xmpp.keepalive"},
	} {
		code, out, errs := runCmd(tc.args...)
		if code != tc.code {
			t.Errorf("%d: %v: exit %d, want %d\n%s%s", i, tc.args, code, tc.code, out, errs)
		}
		if !strings.Contains(out+errs, tc.out) {
			t.Errorf("%d: %v: output lacks %q:\n%s%s", i, tc.args, tc.out, out, errs)
		}
		if strings.Contains(out+errs, "hunter2-secret") || strings.Contains(out+errs, "change-me") {
			t.Errorf("%d: %v: a secret was printed:\n%s%s", i, tc.args, out, errs)
		}
	}
}

func amqpURL() string {
	if u := os.Getenv("XMPPGW_TEST_AMQP_URL"); u != "" {
		return u
	}
	return "amqp://guest:guest@127.0.0.1:5672/"
}

// TestSendPublishes runs `xmppgw send` against the real broker.
func TestSendPublishes(t *testing.T) {
	conn, err := amqp.Dial(amqpURL())
	if err != nil {
		t.Fatalf("broker: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	q := "test-send-" + hex.EncodeToString(suffix)
	if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	defer ch.QueueDelete(q, false, false, false)
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	body := fmt.Sprintf("xmpp:\n  domain: gw.example.org\n  secret: s\namqp:\n  url: %s\n  out_queue: %s\n", amqpURL(), q)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd("send", "-c", cfg, "--target", "alice@example.org", "--text", "hi <there>", "--payload", `{"k":1}`, "--type", "headline")
	if code != exitOK || !strings.Contains(out, "queued") {
		t.Fatalf("send: exit %d\n%s%s", code, out, errs)
	}
	d, ok, err := ch.Get(q, true)
	if err != nil || !ok {
		t.Fatalf("nothing in %s: %v", q, err)
	}
	var item map[string]any
	if err := json.Unmarshal(d.Body, &item); err != nil {
		t.Fatal(err)
	}
	if item["target"] != "alice@example.org" || item["text"] != "hi <there>" || item["type"] != "headline" ||
		fmt.Sprint(item["payload"]) != "map[k:1]" || d.MessageId == "" || d.DeliveryMode != amqp.Persistent {
		t.Fatalf("item = %v (message id %q)", item, d.MessageId)
	}
	if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(item["enqueued_at"])); err != nil {
		t.Fatalf("enqueued_at: %v", err)
	}

	// A queue that does not exist: the broker returns the item, exit 1.
	missing := filepath.Join(t.TempDir(), "m.yaml")
	body = strings.Replace(body, q, q+"-missing", 1)
	if err := os.WriteFile(missing, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCmd("send", "-c", missing, "--target", "alice@example.org", "--text", "x"); code != exitFailure {
		t.Fatalf("send to a missing queue: exit %d, want 1\n%s%s", code, out, errs)
	}
}
