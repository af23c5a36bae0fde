// Package config is the gateway's configuration: the types, the keys with
// their defaults, validation, liveness and secrecy (keys.go), loading from
// YAML and XMPPGW_* environment variables (load.go), validation
// (validate.go), redaction of secrets (redact.go) and what a reload may
// change (reload.go). The keys are part of the external contract and are
// documented in README.md.
package config

import (
	"errors"
	"sort"
	"strings"
	"time"

	"xmppgw/queue"
	"xmppgw/stanza"
)

// Config is the whole configuration of the gateway, as read from the YAML
// file and XMPPGW_* environment variables. Each field's mapstructure tag is
// its key; everything else about a key is in the table of keys.go.
type Config struct {
	XMPP     XMPPConfig     `mapstructure:"xmpp"`
	AMQP     AMQPConfig     `mapstructure:"amqp"`
	Outbound OutboundConfig `mapstructure:"outbound"`
	Inbound  InboundConfig  `mapstructure:"inbound"`
	Presence PresenceConfig `mapstructure:"presence"`
	MUC      MUCConfig      `mapstructure:"muc"`
	HTTP     HTTPConfig     `mapstructure:"http"`
	Log      LogConfig      `mapstructure:"log"`

	// File is the path the config was loaded from ("" for defaults only).
	File string `mapstructure:"-"`
}

// XMPPConfig is the xmpp section: the one connection the gateway owns.
type XMPPConfig struct {
	Mode          stanza.Mode   `mapstructure:"mode"`
	Server        string        `mapstructure:"server"`
	Domain        string        `mapstructure:"domain"`
	Secret        string        `mapstructure:"secret"`
	JID           string        `mapstructure:"jid"`
	Password      string        `mapstructure:"password"`
	TLS           string        `mapstructure:"tls"`
	TLSCA         string        `mapstructure:"tls_ca"`
	TLSServerName string        `mapstructure:"tls_server_name"`
	DefaultFrom   string        `mapstructure:"default_from"`
	Keepalive     time.Duration `mapstructure:"keepalive"`
}

// AMQPConfig is the amqp section: the broker and the queues.
type AMQPConfig struct {
	URL             string `mapstructure:"url"`
	OutQueue        string `mapstructure:"out_queue"`
	InQueue         string `mapstructure:"in_queue"`
	DeadLetterQueue string `mapstructure:"dead_letter_queue"`
	QueueType       string `mapstructure:"queue_type"`
	Prefetch        int    `mapstructure:"prefetch"`
	// DeliveryLimit is how many times an item may be delivered without
	// being acknowledged before it is dead-lettered (reason delivery_limit).
	DeliveryLimit int `mapstructure:"delivery_limit"`
}

// OutboundConfig shapes the items the gateway sends.
type OutboundConfig struct {
	DefaultType  string  `mapstructure:"default_type"`
	MaxTextBytes int     `mapstructure:"max_text_bytes"`
	Rate         float64 `mapstructure:"rate"`
	// MaxStanzaBytes bounds an encoded stanza: an item that would encode
	// longer is dead-lettered before it reaches the server, whose own limit
	// would close the stream.
	MaxStanzaBytes int `mapstructure:"max_stanza_bytes"`
}

// InboundConfig routes inbound events.
type InboundConfig struct {
	// Routes maps a localpart of the component's domain to the queue
	// (routing key on the default exchange) its events go to.
	Routes map[string]string `mapstructure:"routes"`
	// BlockedWait bounds how long an inbound message waits, from its
	// arrival, for a broker that blocks publishers before its sender is
	// refused (type wait).
	BlockedWait time.Duration `mapstructure:"blocked_wait"`
}

// MUCConfig is the muc section: the group chats (XEP-0045) the gateway
// joins.
type MUCConfig struct {
	Rooms []MUCRoom `mapstructure:"rooms"`
	// SelfPing is the interval of XEP-0410 self-pings per room; 0 disables.
	SelfPing time.Duration `mapstructure:"self_ping"`
	// Events is all or mentions: which room messages become events.
	Events string `mapstructure:"events"`
}

// MUCRoom is one room of muc.rooms.
type MUCRoom struct {
	JID      string `mapstructure:"jid" yaml:"jid" json:"jid"`
	Nick     string `mapstructure:"nick" yaml:"nick" json:"nick"`
	Password string `mapstructure:"password" yaml:"password,omitempty" json:"password,omitempty"`
}

// WaitTTL is how long a parked item waits in the wait queue before the
// broker puts it back into the out queue.
const WaitTTL = 5 * time.Second

// WaitQueue is the queue where items for a room being rejoined wait:
// amqp.out_queue + ".wait".
func (c *Config) WaitQueue() string { return c.AMQP.OutQueue + ".wait" }

// RoomNick is the nick of r: its own, else xmpp.default_from (component
// mode) or the account's localpart (client mode).
func (c *Config) RoomNick(r MUCRoom) string {
	if r.Nick != "" {
		return r.Nick
	}
	if c.XMPP.Mode == stanza.ModeClient {
		local, _, _ := strings.Cut(c.XMPP.JID, "@")
		return local
	}
	return c.XMPP.DefaultFrom
}

// PresenceConfig is the presence section (the store: component mode).
type PresenceConfig struct {
	Subscriptions string `mapstructure:"subscriptions"`
	Status        string `mapstructure:"status"`
	Store         string `mapstructure:"store"`
	// LeaseTTL, when not 0, makes the gateways that share a PostgreSQL
	// store hold the component by a lease in it (gateway/leader).
	LeaseTTL time.Duration `mapstructure:"lease_ttl"`
}

// HTTPConfig is the HTTP listener for metrics, health and the status page.
type HTTPConfig struct {
	Listen string `mapstructure:"listen"`
	// WebConfig is the path of a Prometheus exporter-toolkit web
	// configuration file (TLS and basic auth of every endpoint); "" serves
	// plain HTTP without authentication.
	WebConfig string `mapstructure:"web_config"`
}

// LogConfig is the log section.
type LogConfig struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// Defaults and bounds of outbound.max_stanza_bytes and amqp.delivery_limit.
const (
	// DefaultMaxStanzaBytes (240 KiB) is below the servers' own limits:
	// Prosody closes the stream on a stanza over 512 KiB on the component
	// port and 256 KiB on c2s.
	DefaultMaxStanzaBytes = stanza.DefaultMaxStanzaBytes
	MinMaxStanzaBytes     = 4 << 10
	MaxMaxStanzaBytes     = 16 << 20
	// DefaultDeliveryLimit is RabbitMQ 4's default for quorum queues.
	DefaultDeliveryLimit = 20
	MaxDeliveryLimit     = 10000
)

// ErrConfig marks every configuration error (exit code 2): a file or value
// that is invalid, and a configuration the servers reject at the start (a
// secret or domain the XMPP server refuses on the first connection, a queue
// that exists with other arguments). Restarting does not help with these.
var ErrConfig = errors.New("gateway: invalid configuration")

// Name is how errors refer to the configuration: its file, or "the
// configuration" when it was not loaded from one.
func (c *Config) Name() string {
	if c.File == "" {
		return "the configuration"
	}
	return c.File
}

// RouteQueues returns the distinct queues of inbound.routes, sorted.
func (c *Config) RouteQueues() []string {
	out := make([]string, 0, len(c.Inbound.Routes))
	seen := map[string]bool{}
	for _, v := range c.Inbound.Routes {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

// Topology is every queue the gateway declares: the three of the amqp
// section and the route queues. It is the one list of the gateway's queues
// (declared, consumed from, polled for depth, shown on the status page).
func (c *Config) Topology() queue.Topology {
	t := queue.Topology{
		OutQueue:        c.AMQP.OutQueue,
		InQueue:         c.AMQP.InQueue,
		DeadLetterQueue: c.AMQP.DeadLetterQueue,
		WaitQueue:       c.WaitQueue(),
		WaitTTL:         WaitTTL,
		QueueType:       c.AMQP.QueueType,
	}
	seen := map[string]bool{t.OutQueue: true, t.InQueue: true, t.DeadLetterQueue: true, t.WaitQueue: true}
	for _, q := range c.RouteQueues() {
		if !seen[q] {
			seen[q] = true
			t.Extra = append(t.Extra, q)
		}
	}
	return t
}
