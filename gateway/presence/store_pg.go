package presence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"xmppgw/gateway/config"
)

// pgStore keeps the subscriptions in PostgreSQL, shared by the gateways
// that serve one component (a hot standby): rows are keyed by the
// component's domain, so one database may hold several components. The
// schema is created and migrated at open (store_pg_schema.go).
//
// Every row of the component is also held in memory, loaded at open and
// again at each refresh (after each connect to the XMPP server: a takeover
// reads what the previous active gateway wrote), and kept current by each
// change. Reads are answered from memory; a change is written to
// PostgreSQL first and applied in memory only once committed, so memory
// never holds what the database does not.
//
// While PostgreSQL cannot be reached (a failed statement marks the store
// unavailable; a watcher retries with backoff and reloads memory when it
// is back) the store answers from memory, refuses every change with
// ErrStoreUnavailable at once (no network wait), and isSubscriber answers
// a contact it does not hold with ErrStoreUnavailable rather than "no":
// the service must never answer unsubscribed for lack of data. While it is
// up, a contact memory does not hold is looked up in PostgreSQL before the
// answer is no (another gateway may have written it).
//
// The caps (storeLimits, the key length) are checked against the counts in
// memory, as in the bbolt store.
type pgStore struct {
	pool   *pgxpool.Pool
	domain string
	shown  string // the URL with its password redacted
	log    *slog.Logger
	opt    pgOptions

	wmu sync.Mutex // serialises changes and reloads

	mu            sync.Mutex // guards what follows
	lim           storeLimits
	subs          map[string]struct{} // pairKey → subscriber
	subns         map[string]subState // pairKey → our subscription
	subscribers   storeTally
	subscriptions storeTally

	up     atomic.Bool
	writes atomic.Int64
	downc  chan struct{} // signalled when the store goes unavailable
	readyc chan struct{} // signalled when it is back
	quit   chan struct{}
	done   chan struct{}
	raw    string // the URL as configured: only to redact its password

	closeOnce sync.Once
}

// pgOptions tune a pgStore (tests shorten them).
type pgOptions struct {
	connectTimeout time.Duration // opening: connect, migrate, load
	opTimeout      time.Duration // one statement
	minBackoff     time.Duration // first retry after the store went away
	maxBackoff     time.Duration
}

const (
	pgConnectTimeout = 10 * time.Second
	pgOpTimeout      = 5 * time.Second
	pgMinBackoff     = 250 * time.Millisecond
	pgMaxBackoff     = 15 * time.Second
	// pgStableUp is how long the store must stay up for the backoff to
	// start again from the minimum: a database that drops every
	// connection right after it is made is not retried in a tight loop.
	pgStableUp = 30 * time.Second
)

func (o *pgOptions) defaults() {
	if o.connectTimeout == 0 {
		o.connectTimeout = pgConnectTimeout
	}
	if o.opTimeout == 0 {
		o.opTimeout = pgOpTimeout
	}
	if o.minBackoff == 0 {
		o.minBackoff = pgMinBackoff
	}
	if o.maxBackoff == 0 {
		o.maxBackoff = pgMaxBackoff
	}
}

// redactStoreURL replaces the password of the postgres:// URL u (in every
// form config.Redact knows) in s.
func redactStoreURL(u, s string) string {
	return config.Redact(&config.Config{Presence: config.PresenceConfig{Store: u}}, s)
}

// openPG connects to the database at rawURL, creates or migrates the
// schema, and loads the rows of domain. An unreachable server, a refused
// login or a bad URL is an error that names presence.store and shows the
// URL without its password.
func openPG(rawURL, domain string, log *slog.Logger, o pgOptions) (*pgStore, error) {
	o.defaults()
	shown := redactStoreURL(rawURL, rawURL)
	fail := func(what string, err error) error {
		msg := "presence.store " + shown + ": " + what
		if err != nil {
			// pgx puts each address it tried on a line of its own
			msg += ": " + strings.NewReplacer("\n\t", "; ", "\n", " ").Replace(redactStoreURL(rawURL, err.Error()))
		}
		return &pgOpenError{msg: msg, unreachable: what == "unreachable"}
	}
	if _, err := url.Parse(rawURL); err != nil {
		return nil, fail("not a valid postgres:// URL", nil)
	}
	pc, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, fail("not a valid postgres:// URL", err)
	}
	if pc.ConnConfig.ConnectTimeout == 0 || pc.ConnConfig.ConnectTimeout > o.connectTimeout {
		pc.ConnConfig.ConnectTimeout = o.connectTimeout
	}
	pc.MaxConns = 4
	if pc.ConnConfig.RuntimeParams == nil {
		pc.ConnConfig.RuntimeParams = map[string]string{}
	}
	if pc.ConnConfig.RuntimeParams["application_name"] == "" {
		pc.ConnConfig.RuntimeParams["application_name"] = "xmppgw"
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.connectTimeout)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fail("not a valid postgres:// URL", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fail(pgProblem(err), err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fail("schema", err)
	}
	s := &pgStore{
		pool: pool, domain: domain, shown: shown, raw: rawURL, log: log.With("store", shown), opt: o,
		lim:    defaultStoreLimits,
		downc:  make(chan struct{}, 1),
		readyc: make(chan struct{}, 1),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	if err := s.load(ctx); err != nil {
		pool.Close()
		return nil, fail(pgProblem(err), err)
	}
	s.up.Store(true)
	go s.watch()
	return s, nil
}

// pgOpenError is a store that could not be opened: its message names the
// key and the URL without its password; an unreachable server is
// ErrStoreUnavailable.
type pgOpenError struct {
	msg         string
	unreachable bool
}

func (e *pgOpenError) Error() string { return e.msg }
func (e *pgOpenError) Is(target error) bool {
	return e.unreachable && target == ErrStoreUnavailable
}

// pgProblem says in a few words what kind of failure err is.
func pgProblem(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "28P01" || pe.Code == "28000":
			return "authentication failed"
		case pe.Code == "3D000":
			return "database does not exist"
		case pe.Code == "42501":
			return "permission denied"
		case strings.HasPrefix(pe.Code, "08"), strings.HasPrefix(pe.Code, "57P"), strings.HasPrefix(pe.Code, "53"):
			return "unreachable"
		}
		return "error"
	}
	return "unreachable"
}

func (s *pgStore) String() string { return "postgres " + s.shown }

// load reads every row of the component into new maps and swaps them in.
func (s *pgStore) load(ctx context.Context) error {
	subs := map[string]struct{}{}
	subns := map[string]subState{}
	ta, tb := newStoreTally(), newStoreTally()
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT local_jid, contact FROM xmppgw_subscribers WHERE component = $1`, s.domain)
		if err != nil {
			return err
		}
		var local, contact, state string
		if _, err := pgx.ForEachRow(rows, []any{&local, &contact}, func() error {
			subs[string(pairKey(local, contact))] = struct{}{}
			ta.add(contact, 1)
			return nil
		}); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT local_jid, contact, state FROM xmppgw_subscriptions WHERE component = $1`, s.domain)
		if err != nil {
			return err
		}
		_, err = pgx.ForEachRow(rows, []any{&local, &contact, &state}, func() error {
			st := subPending
			if state == "approved" {
				st = subApproved
			}
			subns[string(pairKey(local, contact))] = st
			tb.add(contact, 1)
			return nil
		})
		return err
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.subs, s.subns, s.subscribers, s.subscriptions = subs, subns, ta, tb
	s.mu.Unlock()
	return nil
}

// refresh reloads memory from the database (after a connect: what another
// gateway wrote). While the store is unavailable memory stays as it is.
func (s *pgStore) refresh() error {
	if !s.up.Load() {
		return ErrStoreUnavailable
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), s.opt.connectTimeout)
	defer cancel()
	if err := s.load(ctx); err != nil {
		return s.failed(err)
	}
	return nil
}

// failed marks the store unavailable after a failed statement and returns
// ErrStoreUnavailable with the (redacted) cause.
func (s *pgStore) failed(err error) error {
	if s.up.CompareAndSwap(true, false) {
		s.log.Warn("presence store unavailable: answering from memory, changes wait until it is back", "err", s.redact(err))
		select {
		case s.downc <- struct{}{}:
		default:
		}
	}
	return fmt.Errorf("%w: %s", ErrStoreUnavailable, s.redact(err))
}

func (s *pgStore) redact(err error) string {
	return strings.NewReplacer("\n\t", "; ", "\n", " ").Replace(redactStoreURL(s.raw, err.Error()))
}

// watch brings the store back after it went unavailable: it retries with
// backoff (reloading memory, which is also the test that the database
// answers) and signals ready.
func (s *pgStore) watch() {
	defer close(s.done)
	backoff := s.opt.minBackoff
	var upAt time.Time
	for {
		select {
		case <-s.quit:
			return
		case <-s.downc:
		}
		if time.Since(upAt) >= pgStableUp {
			backoff = s.opt.minBackoff
		}
		for {
			t := time.NewTimer(backoff)
			select {
			case <-s.quit:
				t.Stop()
				return
			case <-t.C:
			}
			backoff = min(2*backoff, s.opt.maxBackoff)
			ctx, cancel := context.WithTimeout(context.Background(), s.opt.connectTimeout)
			s.wmu.Lock()
			err := s.load(ctx)
			s.wmu.Unlock()
			cancel()
			if err == nil {
				break
			}
			s.log.Debug("presence store still unavailable", "err", s.redact(err), "retry_in", backoff)
		}
		upAt = time.Now()
		s.up.Store(true)
		s.log.Info("presence store back")
		select {
		case s.readyc <- struct{}{}:
		default:
		}
	}
}

func (s *pgStore) ready() <-chan struct{} { return s.readyc }
func (s *pgStore) available() bool        { return s.up.Load() }
func (s *pgStore) writeCount() int64      { return s.writes.Load() }

func (s *pgStore) setLimits(lim storeLimits) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lim = lim
}

func (s *pgStore) close() error {
	s.closeOnce.Do(func() {
		close(s.quit)
		<-s.done
		s.pool.Close()
	})
	return nil
}

// exec runs one change with the statement timeout; a failure makes the
// store unavailable.
func (s *pgStore) exec(sql string, args ...any) (pgconn.CommandTag, error) {
	if !s.up.Load() {
		return pgconn.CommandTag{}, ErrStoreUnavailable
	}
	s.writes.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), s.opt.opTimeout)
	defer cancel()
	tag, err := s.pool.Exec(ctx, sql, args...)
	if err != nil {
		return tag, s.failed(err)
	}
	return tag, nil
}
