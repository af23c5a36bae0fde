package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMUCConfig(t *testing.T) {
	const comp = "xmpp:\n  domain: gw.example.org\n  secret: s3cr3t-value\n"
	p := writeTemp(t, comp+`muc:
  rooms:
    - jid: ops@conference.example.org
    - jid: dev@conference.example.org
      nick: deploy-bot
      password: room-pw
  self_ping: 2m
  events: mentions
`)
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.MUC
	if len(m.Rooms) != 2 || m.Rooms[1].Nick != "deploy-bot" || m.Rooms[1].Password != "room-pw" || m.SelfPing != 2*time.Minute || m.Events != "mentions" {
		t.Fatalf("%+v", m)
	}
	if n := cfg.RoomNick(m.Rooms[0]); n != "notices" {
		t.Fatalf("default nick %q, want xmpp.default_from", n)
	}
	def, err := Load(writeTemp(t, comp))
	if err != nil || len(def.MUC.Rooms) != 0 || def.MUC.SelfPing != time.Minute || def.MUC.Events != "all" {
		t.Fatalf("defaults: %+v %v", def.MUC, err)
	}
	t.Setenv("XMPPGW_MUC_ROOMS", "a@conf.example.org/n1, b@conf.example.org")
	env, err := Load(writeTemp(t, comp))
	if err != nil || len(env.MUC.Rooms) != 2 || env.MUC.Rooms[0] != (MUCRoom{JID: "a@conf.example.org", Nick: "n1"}) || env.MUC.Rooms[1].JID != "b@conf.example.org" {
		t.Fatalf("from the environment: %+v %v", env.MUC.Rooms, err)
	}
}

func TestMUCConfigErrors(t *testing.T) {
	const comp = "xmpp:\n  domain: gw.example.org\n  secret: s3cr3t-value\n"
	for i, tc := range []struct{ body, want string }{
		0: {"muc:\n  rooms:\n    - nick: x\n", "muc.rooms[0].jid: required"},
		1: {"muc:\n  rooms:\n    - jid: ops@conference.example.org/me\n", "muc.rooms[0].jid"},
		2: {"muc:\n  rooms:\n    - jid: conference.example.org\n", "muc.rooms[0].jid"},
		3: {"muc:\n  rooms:\n    - jid: Ops@Conference.example.org\n", `write "Ops@Conference.example.org" as "ops@conference.example.org"`},
		4: {"muc:\n  rooms:\n    - jid: a@c.example.org\n    - jid: a@c.example.org\n", "muc.rooms[1].jid: \"a@c.example.org\" is also muc.rooms[0]"},
		5: {"muc:\n  rooms:\n    - jid: a@c.example.org\n      nick: \"\\u0000\"\n", "muc.rooms[0].nick"},
		6: {"muc:\n  self_ping: 1s\n", "muc.self_ping"},
		7: {"muc:\n  events: some\n", "muc.events"},
		8: {"muc:\n  rooms:\n    - jid: a@c.example.org\n      colour: red\n", "colour"},
	} {
		p := writeTemp(t, comp+tc.body)
		_, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%d: err %v, want it to name %q and the file", i, err, tc.want)
		}
	}
}

// writeTemp writes a config file for one test.
func writeTemp(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "xmppgw.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLeaseTTLConfig(t *testing.T) {
	const comp = "xmpp:\n  domain: gw.example.org\n  secret: s3cr3t-value\n"
	cfg, err := Load(writeTemp(t, comp+"presence:\n  store: postgres://gw@db.example.org/xmppgw\n  lease_ttl: 15s\n"))
	if err != nil || cfg.Presence.LeaseTTL != 15*time.Second {
		t.Fatalf("%v %v", cfg, err)
	}
	for i, tc := range []struct{ body, want string }{
		0: {"presence:\n  lease_ttl: 15s\n", "presence.lease_ttl: needs presence.store to be a postgres:// URL"},
		1: {"presence:\n  store: postgres://gw@db.example.org/xmppgw\n  lease_ttl: 1s\n", "presence.lease_ttl"},
	} {
		p := writeTemp(t, comp+tc.body)
		if _, err := Load(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%d: %v, want %q", i, err, tc.want)
		}
	}
}
