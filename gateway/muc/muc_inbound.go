package muc

import (
	"strconv"
	"strings"
	"time"

	"xmppgw/stanza"
)

// What rooms send: presences (our joins answered, kicks, bans, a room's
// destruction), answers to self-pings, and messages. All of it runs on the
// XMPP read loop.

// bareAndResource splits a JID at its first slash.
func bareAndResource(j string) (string, string) {
	b, res, _ := strings.Cut(j, "/")
	return b, res
}

// Presence handles a presence from one of our rooms (reporting true: it is
// the manager's, never a contact's); others are not touched.
func (m *Manager) Presence(p *stanza.Presence) bool {
	bare, nick := bareAndResource(p.From)
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rooms[bare]
	if !ok {
		return false
	}
	now := m.now()
	defer m.gauges()
	switch {
	case p.Type == "error":
		if r.st == Joining && nick == r.nick {
			m.joinRefused(r, now, p.Error)
		}
	case p.Type == "unavailable" && p.MUC != nil && p.MUC.Destroyed:
		// The room is gone. ejabberd 23.01 tells each occupant so without
		// status 110 (as XEP-0045's example does), Prosody 0.12 with it:
		// either way it is about us, or the room would stay joined until
		// a self-ping's rejoin created it again.
		m.removed(r, now, p.MUC)
	case p.MUC == nil || !p.MUC.Has(110):
		// another occupant, or not about us
	case p.Type == "unavailable":
		m.removed(r, now, p.MUC)
	case p.Type == "available":
		if r.st != Joined {
			m.log.Info("joined room", "room", r.cfg.JID, "nick", nick)
		}
		m.setJoined(r, now, nick)
	}
	return true
}

// joinRefused handles the error answer to a join.
func (m *Manager) joinRefused(r *room, now time.Time, cond string) {
	switch cond {
	case "conflict":
		if r.suffix < maxSuffix {
			r.suffix++
			r.nick = r.cfg.Nick + "-" + strconv.Itoa(r.suffix+1)
			m.log.Warn("nick taken in room; joining with another", "room", r.cfg.JID, "nick", r.nick)
			r.sentAt = time.Time{}
			m.sendJoin(r, now)
			return
		}
		m.retry(r, now, "nick taken")
	case "not-authorized":
		m.setFailed(r, now, "password required or wrong (not-authorized)")
	case "registration-required":
		m.setFailed(r, now, "members-only room, and the gateway is not a member (registration-required)")
	case "forbidden":
		m.setFailed(r, now, "banned from the room (forbidden)")
	default:
		m.log.Warn("join refused; retrying", "room", r.cfg.JID, "condition", cond)
		m.retry(r, now, "join refused: "+cond)
	}
}

// removed handles our own unavailable presence from a room: kicked, banned,
// the room destroyed or shut down.
func (m *Manager) removed(r *room, now time.Time, x *stanza.MUCUser) {
	switch {
	case x.Has(301):
		m.setFailed(r, now, "banned from the room")
	case x.Destroyed:
		m.setFailed(r, now, "the room was destroyed")
	case x.Has(321), x.Has(322):
		m.setFailed(r, now, "membership removed (members-only room)")
	case x.Has(307):
		m.log.Warn("kicked from room; rejoining", "room", r.cfg.JID)
		m.rejoin(r, now, "kicked")
	default:
		if r.st == Joined {
			m.log.Warn("left room (shutdown or nick change refused); rejoining", "room", r.cfg.JID)
			m.rejoin(r, now, "removed from the room")
		}
	}
}

// IQResult handles the answer to a self-ping (reporting true when it was
// one).
func (m *Manager) IQResult(id, from, typ, cond string) bool {
	if !strings.HasPrefix(id, "xgmp-") {
		return false
	}
	bare, _ := bareAndResource(from)
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rooms[bare]
	if !ok || r.pingID != id {
		return true
	}
	now := m.now()
	r.pingID = ""
	// XEP-0410 §3: a result, or an error the occupant's own client would
	// give, means we are still in the room; remote-server errors say
	// nothing; anything else (not-acceptable above all) means the room
	// forgot us.
	switch {
	case typ == "result", cond == "service-unavailable", cond == "feature-not-implemented":
		m.o.Metrics.SelfPings.WithLabelValues("joined").Inc()
		r.aliveAt = now
	case cond == "remote-server-not-found", cond == "remote-server-timeout":
		m.o.Metrics.SelfPings.WithLabelValues("unknown").Inc()
		r.aliveAt = now // indeterminate: ask again next time
	default:
		m.o.Metrics.SelfPings.WithLabelValues("lost").Inc()
		m.log.Warn("self-ping says the room forgot the gateway; rejoining", "room", r.cfg.JID, "condition", cond)
		m.rejoin(r, now, "self-ping: "+cond)
		m.gauges()
	}
	return true
}

// Message sorts a message from a room: it reports whether it is an event
// for workers, and fills in Room and Nick. The gateway's own echoes,
// history the room replays (delayed), the room's own notices and, with
// mentions, messages that do not name the nick are not. A bounce of ours
// from a room that says we are not in it (not-acceptable) rejoins it.
func (m *Manager) Message(ev *stanza.Event) bool {
	bare, nick := bareAndResource(ev.From)
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.rooms[bare]
	if !ok {
		return true
	}
	if ev.Kind == "error" {
		if ev.Condition == "not-acceptable" && r.st == Joined {
			m.log.Warn("room says the gateway is not an occupant; rejoining", "room", r.cfg.JID)
			m.rejoin(r, m.now(), "not an occupant")
			m.gauges()
		}
		return true
	}
	if ev.Kind != "message" {
		return true // receipts and markers from occupants
	}
	if ev.Type != "groupchat" {
		ev.Room, ev.Nick = bare, nick // a private message from an occupant
		return nick != ""
	}
	if nick == r.nick && nick != "" && m.o.Echo != nil {
		m.mu.Unlock()
		m.o.Echo(ev)
		m.mu.Lock()
		return false
	}
	if nick == "" || nick == r.nick || ev.Delayed {
		return false
	}
	if m.cfg.Mentions && !containsFold(ev.Text, r.nick) {
		return false
	}
	ev.Room, ev.Nick = bare, nick
	return true
}

// containsFold reports whether s contains sub, ignoring case.
func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}
