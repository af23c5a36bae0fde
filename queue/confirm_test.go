package queue

import (
	"context"
	"errors"
	"testing"
)

func TestConfirmResolve(t *testing.T) {
	// Done asked for before the outcome.
	notify := make(chan struct{}, 1)
	c := &Confirm{notify: notify}
	done := c.Done()
	if c.Resolved() || c.Err() != nil {
		t.Fatal("resolved too early")
	}
	select {
	case <-done:
		t.Fatal("Done closed too early")
	case <-notify:
		t.Fatal("notified too early")
	default:
	}
	c.resolve(ErrNacked)
	<-done
	<-notify
	if !c.Resolved() || !errors.Is(c.Err(), ErrNacked) || !errors.Is(c.Wait(context.Background()), ErrNacked) {
		t.Fatalf("after resolve: resolved %v, err %v", c.Resolved(), c.Err())
	}

	// Done asked for only after the outcome; the notification does not block.
	c = &Confirm{notify: notify}
	notify <- struct{}{}
	c.resolve(nil)
	select {
	case <-c.Done():
	default:
		t.Fatal("Done not closed after resolve")
	}
	if c.Err() != nil || c.Wait(context.Background()) != nil {
		t.Fatal("want success")
	}

	// Wait gives up with its context.
	c = &Confirm{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v", err)
	}
}
