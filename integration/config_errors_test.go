package integration

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"xmppgw/gateway"
	"xmppgw/integration/harness"
)

// runToError runs a gateway that must stop by itself with an error.
func runToError(t *testing.T, cfg *gateway.Config) error {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testLogWriter{t}, nil))
	g, err := gateway.New(cfg, gateway.Deps{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = g.Run(ctx)
	if ctx.Err() != nil {
		t.Fatal("the gateway kept running (a crash loop in the making) instead of stopping with an error")
	}
	return err
}

// TestConfigRejectedByServersStops: a configuration the servers reject is
// a configuration error (exit 2, which systemd does not restart), with a
// message that names what to fix.
func TestConfigRejectedByServersStops(t *testing.T) {
	p := harness.StartProsody(t, harness.ProsodyOptions{})

	t.Run("wrong secret", func(t *testing.T) {
		cfg := gatewayConfig(t, p, newQueues(t))
		cfg.XMPP.Secret = "not-the-secret"
		err := runToError(t, cfg)
		if !errors.Is(err, gateway.ErrConfig) || !strings.Contains(err.Error(), "xmpp.secret") || strings.Contains(err.Error(), "not-the-secret") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("unknown domain", func(t *testing.T) {
		cfg := gatewayConfig(t, p, newQueues(t))
		cfg.XMPP.Domain = "nope.localhost"
		err := runToError(t, cfg)
		if !errors.Is(err, gateway.ErrConfig) || !strings.Contains(err.Error(), "nope.localhost") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("queue with other arguments", func(t *testing.T) {
		q := newQueues(t)
		harness.DeclareQueue(t, q.out, amqp.Table{"x-queue-type": "quorum"})
		err := runToError(t, gatewayConfig(t, p, q))
		if !errors.Is(err, gateway.ErrConfig) || !strings.Contains(err.Error(), q.out) || !strings.Contains(err.Error(), "amqp.queue_type") {
			t.Fatalf("err = %v", err)
		}
	})
}
