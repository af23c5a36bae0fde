// Package muc keeps the gateway in its XEP-0045 group chats: it joins the
// configured rooms on every XMPP session (without history), tells healthy
// rooms from forgotten ones with XEP-0410 self-pings, rejoins with backoff,
// gives up for good only where retrying cannot help (a ban, a wrong
// password, a members-only room), tells the outbound pipe whether a room
// takes messages now, and sorts what rooms send: events for workers, or the
// gateway's own echoes and the history a room replays, which are not.
//
// Every method is safe for concurrent use and none blocks on I/O beyond one
// write to the session: the read loop calls Presence, Message and IQResult.
package muc

import (
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"xmppgw/stanza"
)

// Room is one configured room.
type Room struct {
	JID      string // bare room JID, canonical
	Nick     string // the nick asked for
	Password string // "" for none
}

// Config is what the muc section of the config says.
type Config struct {
	Rooms    []Room
	SelfPing time.Duration // 0 disables self-pings
	Mentions bool          // only messages naming the nick become events
}

// Writer is the current XMPP session.
type Writer interface{ Write([]byte) error }

// Metrics are the series the manager keeps.
type Metrics struct {
	Rooms     *prometheus.GaugeVec // state: joined, joining, failed
	Rejoins   prometheus.Counter
	SelfPings *prometheus.CounterVec // result: joined, lost, unknown
}

// Options configure a Manager.
type Options struct {
	Log     *slog.Logger
	Metrics Metrics
	// From is the address the gateway joins from: <default_from>@<domain>
	// in component mode; "" in client mode (the server stamps the
	// account's full JID).
	From string
	// Echo, if set, gets the room's echo of each of the gateway's own
	// messages (which carries the id the room gave it), outside the
	// manager's lock.
	Echo func(ev *stanza.Event)
}

// Timing of joins and self-pings.
const (
	joinTimeout = 30 * time.Second // a join unanswered this long is sent again
	pingTimeout = 30 * time.Second // a self-ping unanswered this long rejoins
	backoffMin  = time.Second
	backoffMax  = 5 * time.Minute
	maxSuffix   = 9 // nick conflicts resolved by a suffix before backing off
)

// State of a room.
type State int

// States of a room. Joining covers a join in flight and one waiting for its
// retry.
const (
	Joining State = iota
	Joined
	Failed // refused for good (banned, password, members-only, destroyed): not rejoined until the config changes
)

func (s State) String() string {
	switch s {
	case Joined:
		return "joined"
	case Failed:
		return "failed"
	}
	return "joining"
}

// room is the manager's state of one configured room.
type room struct {
	cfg    Room
	nick   string // the nick asked for, or the one the room assigned
	suffix int    // nick conflicts so far
	st     State
	why    string // the last failure, for logs and the status page

	joinID  string    // id of the join in flight
	sentAt  time.Time // when the join went out; zero: not sent
	retryAt time.Time // when to send the next join (sentAt zero)
	backoff time.Duration

	pingID  string    // self-ping in flight
	pingAt  time.Time // when it went out
	aliveAt time.Time // last proof of being joined

	since   time.Time     // when the room entered its state
	changed chan struct{} // closed when it leaves Joining
}

// Manager keeps the gateway in its rooms.
type Manager struct {
	o   Options
	log *slog.Logger

	mu    sync.Mutex
	w     Writer
	cfg   Config
	rooms map[string]*room
	seq   uint64
	buf   []byte
	now   func() time.Time
}

// New returns a Manager without rooms and without a session.
func New(o Options) *Manager {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{o: o, log: o.Log.With("component", "muc"), rooms: map[string]*room{}, now: time.Now}
	for _, s := range []State{Joined, Joining, Failed} {
		o.Metrics.Rooms.WithLabelValues(s.String())
	}
	for _, r := range []string{"joined", "lost", "unknown"} {
		o.Metrics.SelfPings.WithLabelValues(r)
	}
	return m
}

// Configure applies the muc section: new rooms are joined, removed ones
// left, changed ones (nick or password) left and joined again; a failed
// room whose entry is unchanged stays failed.
func (m *Manager) Configure(c Config) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cfg = c
	want := make(map[string]Room, len(c.Rooms))
	for _, r := range c.Rooms {
		want[r.JID] = r
	}
	now := m.now()
	for key, r := range m.rooms {
		if w, ok := want[key]; !ok || w != r.cfg {
			m.leave(r)
			delete(m.rooms, key)
			r.release()
		}
	}
	for key, cfg := range want {
		if _, ok := m.rooms[key]; ok {
			continue
		}
		r := &room{cfg: cfg, nick: cfg.Nick, st: Joining, since: now, changed: make(chan struct{}), retryAt: now}
		m.rooms[key] = r
		m.sendJoin(r, now)
	}
	m.gauges()
}

// Online starts a session: every room that has not failed is joined on it.
func (m *Manager) Online(w Writer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.w = w
	now := m.now()
	for _, r := range m.rooms {
		if r.st == Failed {
			continue
		}
		m.setJoining(r, now, "")
		r.backoff = 0
		r.retryAt = now
		m.sendJoin(r, now)
	}
	m.gauges()
}

// Offline ends the session: every joined room is joining again (the next
// session rejoins it).
func (m *Manager) Offline() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.w = nil
	now := m.now()
	for _, r := range m.rooms {
		if r.st != Failed {
			m.setJoining(r, now, "")
			r.sentAt, r.retryAt = time.Time{}, now
		}
	}
	m.gauges()
}

// Tick sends the joins and self-pings that are due and gives up on those
// unanswered. Run calls it every second.
func (m *Manager) Tick() {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	for _, r := range m.rooms {
		switch r.st {
		case Joining:
			if !r.sentAt.IsZero() && now.Sub(r.sentAt) > joinTimeout {
				m.log.Warn("no answer to the join; joining again", "room", r.cfg.JID, "after", joinTimeout)
				m.retry(r, now, "no answer to the join")
			}
			if r.sentAt.IsZero() && !now.Before(r.retryAt) {
				m.sendJoin(r, now)
			}
		case Joined:
			if r.pingID != "" && now.Sub(r.pingAt) > pingTimeout {
				m.o.Metrics.SelfPings.WithLabelValues("lost").Inc()
				m.log.Warn("self-ping unanswered; rejoining", "room", r.cfg.JID)
				m.rejoin(r, now, "self-ping unanswered")
				continue
			}
			if sp := m.cfg.SelfPing; sp > 0 && r.pingID == "" && now.Sub(r.aliveAt) >= sp {
				m.sendPing(r, now)
			}
		}
	}
	m.gauges()
}

// Run ticks every second until stop is closed.
func (m *Manager) Run(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			m.Tick()
		}
	}
}

// Target says whether a groupchat item to room (a bare JID) can go out:
// configured reports whether the room is one of ours; st is its state,
// since when it is in it, and changed is closed when it leaves Joining.
func (m *Manager) Target(roomJID string) (configured bool, st State, since time.Time, changed <-chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rooms[roomJID]
	if !ok {
		return false, Failed, time.Time{}, nil
	}
	return true, r.st, r.since, r.changed
}

// Status is a room as the status page shows it.
type Status struct {
	JID   string    `json:"jid"`
	Nick  string    `json:"nick"`
	State string    `json:"state"`
	Since time.Time `json:"since"`
	Why   string    `json:"why,omitempty"`
}

// Rooms returns the state of every configured room, sorted by JID.
func (m *Manager) Rooms() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Status, 0, len(m.rooms))
	for _, r := range m.rooms {
		out = append(out, Status{JID: r.cfg.JID, Nick: r.nick, State: r.st.String(), Since: r.since, Why: r.why})
	}
	sortStatus(out)
	return out
}

func sortStatus(s []Status) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].JID < s[j-1].JID; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// --- sending (m.mu held) ---

func (m *Manager) nextID(prefix string) string {
	m.seq++
	return prefix + strconv.FormatUint(m.seq, 36)
}

// sendJoin writes r's join presence when a session is up.
func (m *Manager) sendJoin(r *room, now time.Time) {
	if m.w == nil {
		r.sentAt = time.Time{}
		return
	}
	r.joinID = m.nextID("xgmj-")
	m.buf = stanza.AppendMUCJoin(m.buf[:0], m.o.From, r.cfg.JID+"/"+r.nick, r.joinID, r.cfg.Password)
	if err := m.w.Write(m.buf); err != nil {
		r.sentAt = time.Time{}
		return // the session is going; Online joins again
	}
	r.sentAt = now
}

// sendPing writes r's XEP-0410 self-ping.
func (m *Manager) sendPing(r *room, now time.Time) {
	if m.w == nil {
		return
	}
	r.pingID = m.nextID("xgmp-")
	m.buf = stanza.AppendPing(m.buf[:0], m.o.From, r.cfg.JID+"/"+r.nick, r.pingID)
	if err := m.w.Write(m.buf); err != nil {
		r.pingID = ""
		return
	}
	r.pingAt = now
}

// leave writes an unavailable presence to r's occupant JID if it is joined.
func (m *Manager) leave(r *room) {
	if m.w == nil || r.st != Joined {
		return
	}
	m.buf = stanza.AppendPresence(m.buf[:0], m.o.From, r.cfg.JID+"/"+r.nick, "", "unavailable", "", "")
	_ = m.w.Write(m.buf)
}

// --- state changes (m.mu held) ---

// setJoining moves r to Joining (keeping its changed channel if it is
// joining already).
func (m *Manager) setJoining(r *room, now time.Time, why string) {
	if r.st != Joining {
		r.st, r.since, r.changed = Joining, now, make(chan struct{})
	}
	r.pingID = ""
	if why != "" {
		r.why = why
	}
}

// release closes r's changed channel: waiters look again.
func (r *room) release() {
	select {
	case <-r.changed:
	default:
		close(r.changed)
	}
}

func (m *Manager) setJoined(r *room, now time.Time, nick string) {
	if r.st != Joined {
		r.st, r.since = Joined, now
		r.release()
	}
	r.nick, r.why = nick, ""
	r.sentAt, r.joinID, r.pingID = time.Time{}, "", ""
	r.backoff = 0
	r.aliveAt = now
}

func (m *Manager) setFailed(r *room, now time.Time, why string) {
	m.log.Error("room refused the gateway; not rejoining until the config changes", "room", r.cfg.JID, "nick", r.nick, "why", why)
	r.st, r.since, r.why = Failed, now, why
	r.sentAt, r.joinID, r.pingID = time.Time{}, "", ""
	r.release()
}

// retry schedules r's next join after its backoff.
func (m *Manager) retry(r *room, now time.Time, why string) {
	m.setJoining(r, now, why)
	r.backoff = min(max(2*r.backoff, backoffMin), backoffMax)
	r.sentAt, r.joinID = time.Time{}, ""
	r.retryAt = now.Add(r.backoff)
}

// rejoin counts and schedules a rejoin of a room that forgot us.
func (m *Manager) rejoin(r *room, now time.Time, why string) {
	m.o.Metrics.Rejoins.Inc()
	m.retry(r, now, why)
}

func (m *Manager) gauges() {
	var n [3]int
	for _, r := range m.rooms {
		n[r.st]++
	}
	for _, s := range []State{Joining, Joined, Failed} {
		m.o.Metrics.Rooms.WithLabelValues(s.String()).Set(float64(n[s]))
	}
}
