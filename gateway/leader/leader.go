// Package leader decides which of the gateways serving one component is the
// active one, with a lease row in PostgreSQL (the database of a shared
// presence store).
//
// The active gateway holds the lease of its component's domain: a row
// (name, holder, expires) that it renews every TTL/3 with the database's
// own clock. A standby tries to take it every TTL/3 and gets it only once
// it has expired or been released. The holder fences itself: when it has
// not renewed the lease for 2/3 of the TTL — its database link is down or
// stalled, as after a network stall — it stops acting (closes its XMPP
// stream and stops consuming) before the lease can expire, measured on its
// own monotonic clock from the moment it sent the last renewal that
// succeeded. So two gateways never act at once, and a half-open connection
// of the old holder blocks a takeover for at most one TTL, not until TCP
// notices; with the lease the XMPP server should replace an old component
// connection by a new one (Prosody: component_conflict_resolve =
// "kick_old"), which is then safe: only the holder connects.
package leader

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultTTL is the lease's time to live.
const DefaultTTL = 15 * time.Second

// schema is the lease table, created at Open.
const schema = `CREATE TABLE IF NOT EXISTS xmppgw_leases (
	name    text PRIMARY KEY,
	holder  text NOT NULL,
	expires timestamptz NOT NULL
)`

// Lease is one gateway's view of the lease of one component.
type Lease struct {
	pool   *pgxpool.Pool
	name   string
	holder string
	ttl    time.Duration
	log    *slog.Logger
}

// Options configure a Lease.
type Options struct {
	URL    string        // the PostgreSQL URL (presence.store)
	Name   string        // what is led: the component's domain
	TTL    time.Duration // 0 = DefaultTTL
	Logger *slog.Logger
}

// Open connects and creates the table if needed. The holder id is unique to
// this process (host, pid, random).
func Open(ctx context.Context, o Options) (*Lease, error) {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(o.URL)
	if err != nil {
		return nil, errors.New("leader: presence.store is not a PostgreSQL URL that parses")
	}
	cfg.MaxConns = 2
	cfg.ConnConfig.ConnectTimeout = o.TTL / 3
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("leader: %w", err)
	}
	if _, err := pool.Exec(ctx, schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("leader: creating the lease table: %w", err)
	}
	host, _ := os.Hostname()
	var r [6]byte
	_, _ = rand.Read(r[:])
	return &Lease{pool: pool, name: o.Name, ttl: o.TTL, log: o.Logger.With("component", "leader"),
		holder: fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(r[:]))}, nil
}

// Close releases the lease if held and closes the pool.
func (l *Lease) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), l.ttl/3)
	defer cancel()
	_, _ = l.pool.Exec(ctx, `DELETE FROM xmppgw_leases WHERE name = $1 AND holder = $2`, l.name, l.holder)
	l.pool.Close()
}

// Holder is this process's holder id.
func (l *Lease) Holder() string { return l.holder }

// TryAcquire takes the lease if it is free, expired or already ours, and
// reports whether we hold it now.
func (l *Lease) TryAcquire(ctx context.Context) (bool, error) {
	var holder string
	err := l.pool.QueryRow(ctx, `INSERT INTO xmppgw_leases (name, holder, expires)
		VALUES ($1, $2, now() + $3::interval)
		ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires = EXCLUDED.expires
		WHERE xmppgw_leases.expires < now() OR xmppgw_leases.holder = EXCLUDED.holder
		RETURNING holder`, l.name, l.holder, l.ttl.String()).Scan(&holder)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return holder == l.holder, nil
}

// Renew extends the lease we hold and reports whether we still hold it.
func (l *Lease) Renew(ctx context.Context) (bool, error) {
	tag, err := l.pool.Exec(ctx, `UPDATE xmppgw_leases SET expires = now() + $3::interval
		WHERE name = $1 AND holder = $2`, l.name, l.holder, l.ttl.String())
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// Release gives the lease up (a graceful stop): a standby takes it at its
// next try instead of after the TTL.
func (l *Lease) Release(ctx context.Context) error {
	_, err := l.pool.Exec(ctx, `DELETE FROM xmppgw_leases WHERE name = $1 AND holder = $2`, l.name, l.holder)
	return err
}

// Lead runs lead with a context that is cancelled when the lease is lost or
// can no longer be renewed in time, and tries again to take it, until ctx
// ends. standby is called (if set) each time the gateway waits for the
// lease. lead must return soon after its context ends.
func (l *Lease) Lead(ctx context.Context, standby func(), lead func(ctx context.Context)) {
	every := l.ttl / 3
	for ctx.Err() == nil {
		ok, err := l.try(ctx, l.TryAcquire)
		if err != nil {
			l.log.Warn("lease: cannot reach PostgreSQL", "err", err)
		}
		if !ok {
			if standby != nil {
				standby()
			}
			if !sleep(ctx, every) {
				return
			}
			continue
		}
		l.log.Info("lease taken: this gateway is the active one", "holder", l.holder, "ttl", l.ttl)
		l.hold(ctx, lead)
	}
}

// hold runs lead while the lease is renewed in time. Renewals run on a
// goroutine of their own, so that a renewal stuck on a stalled link cannot
// delay the fence: lead is stopped 2/3 of the TTL after the last renewal
// that succeeded was sent, whatever the renewals are doing.
func (l *Lease) hold(ctx context.Context, lead func(ctx context.Context)) {
	leadCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		lead(leadCtx)
	}()
	renewed := make(chan time.Time, 1) // when the request of a success was sent
	lost := make(chan struct{})
	go l.renewLoop(leadCtx, renewed, lost)
	fence := time.NewTimer(l.ttl * 2 / 3)
	defer fence.Stop()
	defer func() {
		stop()
		<-done
	}()
	for {
		select {
		case <-ctx.Done():
			// A graceful stop: let lead finish (its session closed) before
			// a standby may take over.
			stop()
			<-done
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.ttl/3)
			_ = l.Release(rctx)
			cancel()
			return
		case <-done:
			return
		case <-lost:
			l.log.Error("lease lost to another gateway: stopping", "holder", l.holder)
			return
		case sent := <-renewed:
			fence.Reset(time.Until(sent.Add(l.ttl * 2 / 3)))
		case <-fence.C:
			l.log.Error("lease not renewed in time (PostgreSQL unreachable or slow): stopping before it expires", "ttl", l.ttl)
			return
		}
	}
}

// renewLoop renews the lease every TTL/3 until ctx ends, reporting each
// success (the time its request was sent) on renewed and closing lost when
// another gateway holds it.
func (l *Lease) renewLoop(ctx context.Context, renewed chan<- time.Time, lost chan<- struct{}) {
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sent := time.Now()
		ok, err := l.try(ctx, l.Renew)
		switch {
		case ok:
			select {
			case renewed <- sent:
			default: // the previous one is not read yet: the fence stays earlier, which is safe
			}
		case err == nil:
			close(lost)
			return
		default:
			if ctx.Err() == nil {
				l.log.Warn("lease renewal failed; retrying", "err", err)
			}
		}
	}
}

// try runs f with a deadline of a third of the TTL.
func (l *Lease) try(ctx context.Context, f func(context.Context) (bool, error)) (bool, error) {
	c, cancel := context.WithTimeout(ctx, l.ttl/3)
	defer cancel()
	return f(c)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
