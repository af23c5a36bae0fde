package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"

	amqp "github.com/rabbitmq/amqp091-go"
)

func runIn(stdin io.Reader, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, stdin, &out, &errb)
	return code, out.String(), errb.String()
}

// TestSendStdinBulk: 10,000 lines arrive complete and in order, with
// confirms; then a file with bad lines: each reported with its number, the
// good ones still queued, exit 1.
func TestSendStdinBulk(t *testing.T) {
	const n = 10000
	b := newBroker(t)
	out := b.queue("test-send-bulk-")
	cfg := deadConfig(t, out, out+".dead")
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, `{"target":"user%d@example.org","text":"line %d","payload":{"n":%d}}`+"\n", i, i+1, i)
	}
	code, stdout, stderr := runIn(strings.NewReader(in.String()), "send", "-c", cfg, "--stdin", "--window", "100")
	if code != exitOK || !strings.Contains(stdout, fmt.Sprintf("queued %d items on %s (%d lines read, 0 invalid, 0 failed)", n, out, n)) || stderr != "" {
		t.Fatalf("send --stdin: exit %d\n%s%s", code, stdout, stderr)
	}
	got := b.drain(out)
	if len(got) != n {
		t.Fatalf("%d items arrived, want %d", len(got), n)
	}
	seen := map[string]bool{}
	for i, d := range got {
		var item struct {
			Target  string
			Text    string
			Payload struct{ N int }
		}
		if err := json.Unmarshal(d.Body, &item); err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		if item.Text != fmt.Sprintf("line %d", i+1) || item.Payload.N != i || item.Target != fmt.Sprintf("user%d@example.org", i) {
			t.Fatalf("item %d out of order or changed: %s", i, d.Body)
		}
		if d.ContentType != "application/json" || d.DeliveryMode != amqp.Persistent || d.Timestamp.IsZero() ||
			!strings.HasSuffix(d.MessageId, fmt.Sprintf("-%d", i+1)) || seen[d.MessageId] {
			t.Fatalf("item %d: properties %q %d %v %q", i, d.ContentType, d.DeliveryMode, d.Timestamp, d.MessageId)
		}
		seen[d.MessageId] = true
	}

	// Bad lines among good ones, CRLF endings, blank lines, no final newline.
	bad := strings.Join([]string{
		`{"target":"alice@example.org","text":"one"}`, // 1
		``,         // 2 blank: skipped
		`not json`, // 3
		`{"target":"bad jid@@example.org","text":"two"}`,              // 4
		"{\"target\":\"alice@example.org\",\"text\":\"three\"}\r",     // 5
		`{"target":"alice@example.org"}`,                              // 6 no text
		`{"target":"alice@example.org","text":"` + "\xff" + `"}`,      // 7 not UTF-8
		`  {"target":"alice@example.org","text":"four","type":"x"}  `, // 8 bad type
		`{"target":"alice@example.org","text":"five"}`,                // 9, no newline
	}, "\n")
	code, stdout, stderr = runIn(strings.NewReader(bad), "send", "-c", cfg, "--stdin")
	if code != exitFailure || !strings.Contains(stdout, "queued 3 items") || !strings.Contains(stdout, "(9 lines read, 5 invalid, 0 failed)") {
		t.Fatalf("bad lines: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"line 3: invalid: invalid_json", "line 4: invalid: bad_jid", "line 6: invalid: missing_field",
		"line 7: invalid: invalid_utf8", "line 8: invalid: bad_field"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	var texts []string
	for _, d := range b.drain(out) {
		texts = append(texts, string(d.Body))
	}
	if strings.Join(texts, "|") != `{"target":"alice@example.org","text":"one"}|{"target":"alice@example.org","text":"three"}|{"target":"alice@example.org","text":"five"}` {
		t.Fatalf("queued: %q", texts)
	}

	// --no-check sends what the gateway will dead-letter, as it is.
	code, stdout, _ = runIn(strings.NewReader("not json\n"), "send", "-c", cfg, "--stdin", "--no-check")
	if code != exitOK || !strings.Contains(stdout, "queued 1 items") {
		t.Fatalf("--no-check: exit %d\n%s", code, stdout)
	}
	if d := b.drain(out); len(d) != 1 || string(d[0].Body) != "not json" {
		t.Fatalf("--no-check queued %v", d)
	}

	// The queue does not exist: the first return stops the run (every
	// line would be returned), at the latest when the window is full.
	missing := deadConfig(t, out+"-missing", out+".dead")
	code, stdout, stderr = runIn(strings.NewReader(in.String()), "send", "-c", missing, "--stdin", "--window", "10")
	if code != exitFailure || !strings.Contains(stdout, "queued 0 items") || !strings.Contains(stderr, "line 1: not queued") ||
		!strings.Contains(stderr, "NO_ROUTE") || !regexp.MustCompile(`stopped after line (\d|1[01]):.* the lines after it were not read`).MatchString(stderr) {
		t.Fatalf("missing queue: exit %d\n%s%s", code, stdout, stderr)
	}
}

func TestSendStdinUsage(t *testing.T) {
	cfg := deadConfig(t, "o", "d")
	for i, tc := range []struct {
		args []string
		out  string
	}{
		0: {[]string{"send", "-c", cfg, "--stdin", "--target", "a@b"}, "--stdin reads whole items"},
		1: {[]string{"send", "-c", cfg, "--stdin", "--window", "0"}, "--window"},
		2: {[]string{"send", "-c", "/nonexistent.yaml", "--stdin"}, "/nonexistent.yaml"},
	} {
		code, stdout, stderr := runIn(strings.NewReader(""), tc.args...)
		if code != exitUsage || !strings.Contains(stdout+stderr, tc.out) {
			t.Errorf("%d: %v: exit %d\n%s%s", i, tc.args, code, stdout, stderr)
		}
	}
}

func TestLineReader(t *testing.T) {
	long := strings.Repeat("a", 100)
	for i, tc := range []struct {
		in   string
		want []string // "!" marks a line reported too long
	}{
		0: {"", nil},
		1: {"a\nb\n", []string{"a", "b"}},
		2: {"a\r\nb", []string{"a", "b"}},
		3: {"\n\n", []string{"", ""}},
		4: {long[:64] + "\n" + long[:65] + "\nx", []string{long[:64], "!", "x"}},
		5: {long + long + "\nok\n", []string{"!", "ok"}},
		6: {long[:64] + "\r\n", []string{long[:64]}},
	} {
		for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
			lr := lineReader{r: bufio.NewReaderSize(r, 16), max: 64}
			var got []string
			for {
				line, tooLong, err := lr.next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if tooLong {
					got = append(got, "!")
					continue
				}
				got = append(got, string(line))
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Errorf("%d: lines %q, want %q", i, got, tc.want)
			}
		}
	}
}

func TestShorten(t *testing.T) {
	for i, tc := range []struct {
		in   string
		n    int
		want string
	}{
		0: {"hello", 10, "hello"},
		1: {"hello world", 5, "hello… (11 bytes)"},
		2: {"a\nb\x00c", 10, `a\nb\x00c`},
		3: {"\xffé€", 10, `\xffé€`},
		4: {"ééé", 3, "éé… (6 bytes)"},
		5: {"", 5, ""},
		6: {"\u2028\u0085", 20, `\u2028\u0085`},
	} {
		if got := shorten([]byte(tc.in), tc.n); got != tc.want {
			t.Errorf("%d: shorten(%q, %d) = %q, want %q", i, tc.in, tc.n, got, tc.want)
		}
	}
}

func TestDescribeDead(t *testing.T) {
	for i, tc := range []struct {
		d                      amqp.Delivery
		reason, source, detail string
		id                     string
	}{
		0: {amqp.Delivery{MessageId: "m1", Headers: amqp.Table{"x-xmppgw-error": "bad_jid: target"}}, "bad_jid", "gateway", "bad_jid: target", "m1"},
		1: {amqp.Delivery{Body: []byte("x"), Headers: amqp.Table{"x-death": []any{amqp.Table{"reason": "maxlen", "queue": "q", "count": int64(3)}}}},
			"maxlen", "broker", "dead-lettered by the broker (x-death): maxlen from queue q, 3 times", "sha256:2d711642b726b044"},
		2: {amqp.Delivery{Headers: amqp.Table{"x-last-death-reason": "delivery_limit", "x-last-death-queue": "q"}}, "delivery_limit", "broker", "(x-last-death-reason): delivery_limit from queue q", ""},
		3: {amqp.Delivery{}, "unknown", "unknown", "no x-xmppgw-error", ""},
		4: {amqp.Delivery{Headers: amqp.Table{"x-xmppgw-error": "  ", "x-death": []any{amqp.Table{"reason": "expired"}}}}, "unknown", "gateway", "  ", ""},
		5: {amqp.Delivery{Headers: amqp.Table{"x-xmppgw-error": []byte("expired: ttl"), "x-death": []any{amqp.Table{"reason": "rejected"}}}}, "expired", "gateway", "expired: ttl", ""},
	} {
		it := describeDead(&tc.d, 1)
		if it.reason != tc.reason || it.source != tc.source || !strings.Contains(it.detail, tc.detail) || (tc.id != "" && it.id != tc.id) {
			t.Errorf("%d: %+v", i, it)
		}
	}
}

func TestIsFailureHeader(t *testing.T) {
	for h, want := range map[string]bool{
		"x-xmppgw-error": true, "x-death": true, "x-delivery-count": true, "x-first-death-reason": true,
		"x-last-death-queue": true, "x-trace": false, "x-deathly": false, "traceparent": false,
	} {
		if isFailureHeader(h) != want {
			t.Errorf("isFailureHeader(%q) = %v", h, !want)
		}
	}
}
