package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"xmppgw/gateway"
	"xmppgw/queue"
)

// sendItem is the item `xmppgw send` publishes.
type sendItem struct {
	Target     string          `json:"target"`
	Text       string          `json:"text,omitempty"`
	Payload    json.RawMessage `json:"payload,omitempty"`
	Type       string          `json:"type,omitempty"`
	EnqueuedAt string          `json:"enqueued_at"`
}

func cmdSend(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs, cfgPath := newFlags("send", stderr)
	bulk := fs.Bool("stdin", false, "read items from standard input, one JSON object per line (JSON lines)")
	window := fs.Int("window", 256, "with --stdin: publishes waiting for the broker's confirm at most")
	noCheck := fs.Bool("no-check", false, "with --stdin: publish every non-empty line as it is, without the gateway's checks")
	target := fs.String("target", "", "recipient JID (required)")
	text := fs.String("text", "", "message text")
	payload := fs.String("payload", "", "JSON payload (XEP-0335)")
	typ := fs.String("type", "", "message type: chat, normal, headline or groupchat (default outbound.default_type)")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the broker")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *bulk {
		if *target != "" || *text != "" || *payload != "" || *typ != "" {
			fmt.Fprintln(stderr, "xmppgw send: --stdin reads whole items: --target, --text, --payload and --type do not apply")
			return exitUsage
		}
		if *window < 1 || *window > 65535 {
			fmt.Fprintln(stderr, "xmppgw send: --window must be in 1..65535")
			return exitUsage
		}
		cfg, err := gateway.LoadConfig(*cfgPath)
		if err != nil {
			fmt.Fprintf(stderr, "xmppgw: %v\n", err)
			return exitUsage
		}
		return sendBulk(cfg, bulkOptions{in: stdin, window: *window, check: !*noCheck, timeout: *timeout}, stdout, stderr)
	}
	if *target == "" || (*text == "" && *payload == "") {
		fmt.Fprintln(stderr, "xmppgw send: --target and one of --text or --payload are required")
		return exitUsage
	}
	if *payload != "" && !json.Valid([]byte(*payload)) {
		fmt.Fprintln(stderr, "xmppgw send: --payload is not valid JSON")
		return exitUsage
	}
	cfg, err := gateway.LoadConfig(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "xmppgw: %v\n", err)
		return exitUsage
	}
	now := time.Now().UTC()
	item := sendItem{Target: *target, Text: *text, Type: *typ, EnqueuedAt: now.Format(time.RFC3339Nano)}
	if *payload != "" {
		item.Payload = json.RawMessage(*payload)
	}
	body, err := json.Marshal(item)
	if err != nil {
		fmt.Fprintf(stderr, "xmppgw send: %v\n", err)
		return exitFailure
	}

	ctx, stop := signalContext()
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	p, err := queue.DialPublisher(ctx, cfg.AMQP.URL, "xmppgw send", nil)
	if err != nil {
		fmt.Fprintf(stderr, "xmppgw send: %v\n", err)
		return exitFailure
	}
	defer p.Close()
	id := fmt.Sprintf("send-%d", now.UnixNano())
	c, err := p.Publish(ctx, cfg.AMQP.OutQueue, amqp.Publishing{
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		MessageId:    id,
		Timestamp:    now,
		Body:         body,
	}, true)
	if err == nil {
		err = c.Wait(ctx)
	}
	if err != nil {
		fmt.Fprintf(stderr, "xmppgw send: to queue %s: %v\n", cfg.AMQP.OutQueue, err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "queued %s on %s\n", id, cfg.AMQP.OutQueue)
	return exitOK
}
