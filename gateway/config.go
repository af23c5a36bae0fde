package gateway

import (
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"mellium.im/xmpp/jid"

	"xmppgw/queue"
)

// Config is the whole configuration of the gateway, as read from the YAML
// file and XMPPGW_* environment variables. The keys are fixed by the external
// contract (shared/CONTRACT.md) and documented in README.md.
type Config struct {
	XMPP     XMPPConfig     `mapstructure:"xmpp"`
	AMQP     AMQPConfig     `mapstructure:"amqp"`
	Outbound OutboundConfig `mapstructure:"outbound"`
	Inbound  InboundConfig  `mapstructure:"inbound"`
	Presence PresenceConfig `mapstructure:"presence"`
	HTTP     HTTPConfig     `mapstructure:"http"`
	Log      LogConfig      `mapstructure:"log"`

	// File is the path the config was loaded from ("" for defaults only).
	File string `mapstructure:"-"`
}

// XMPPConfig is the xmpp section: the one connection the gateway owns.
type XMPPConfig struct {
	Mode          string        `mapstructure:"mode"`
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
}

// PresenceConfig is the presence section (component mode).
type PresenceConfig struct {
	Subscriptions string `mapstructure:"subscriptions"`
	Status        string `mapstructure:"status"`
	Store         string `mapstructure:"store"`
}

// HTTPConfig is the HTTP listener for metrics and health.
type HTTPConfig struct {
	Listen string `mapstructure:"listen"`
}

// LogConfig is the log section.
type LogConfig struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// Mode names.
const (
	ModeComponent = "component"
	ModeClient    = "client"
)

// defaults lists every key with its default value. Every key must be here:
// viper only lets environment variables reach Unmarshal for known keys.
var defaults = map[string]any{
	"xmpp.mode":                 ModeComponent,
	"xmpp.server":               "127.0.0.1:5347",
	"xmpp.domain":               "",
	"xmpp.secret":               "",
	"xmpp.jid":                  "",
	"xmpp.password":             "",
	"xmpp.tls":                  "required",
	"xmpp.tls_ca":               "",
	"xmpp.tls_server_name":      "",
	"xmpp.default_from":         "notices",
	"xmpp.keepalive":            "30s",
	"amqp.url":                  "amqp://guest:guest@127.0.0.1:5672/",
	"amqp.out_queue":            "xmpp-out",
	"amqp.in_queue":             "xmpp-in",
	"amqp.dead_letter_queue":    "xmpp-out.dead",
	"amqp.queue_type":           "classic",
	"amqp.prefetch":             1000,
	"amqp.delivery_limit":       DefaultDeliveryLimit,
	"outbound.default_type":     "chat",
	"outbound.max_text_bytes":   65536,
	"outbound.rate":             0.0,
	"outbound.max_stanza_bytes": DefaultMaxStanzaBytes,
	"inbound.routes":            map[string]string{},
	"presence.subscriptions":    "auto",
	"presence.status":           "",
	"presence.store":            "./data/xmppgw.db",
	"http.listen":               "127.0.0.1:9465",
	"log.level":                 "info",
	"log.format":                "text",
}

// Defaults and bounds of outbound.max_stanza_bytes and amqp.delivery_limit.
const (
	// DefaultMaxStanzaBytes (240 KiB) is below the servers' own limits:
	// Prosody closes the stream on a stanza over 512 KiB on the component
	// port and 256 KiB on c2s.
	DefaultMaxStanzaBytes = 240 << 10
	MinMaxStanzaBytes     = 4 << 10
	MaxMaxStanzaBytes     = 16 << 20
	// DefaultDeliveryLimit is RabbitMQ 4's default for quorum queues.
	DefaultDeliveryLimit = 20
	MaxDeliveryLimit     = 10000
)

// secretKeys hold secrets (amqp.url: its password): never printed, never
// quoted in an error.
var secretKeys = map[string]bool{"xmpp.secret": true, "xmpp.password": true, "amqp.url": true}

// ErrConfig marks every configuration error (exit code 2): a file or value
// that is invalid, and a configuration the servers reject at the start (a
// secret or domain the XMPP server refuses on the first connection, a queue
// that exists with other arguments). Restarting does not help with these.
var ErrConfig = errors.New("gateway: invalid configuration")

// LoadConfig reads the YAML file at path (if path is not empty), applies
// XMPPGW_<SECTION>_<KEY> environment overrides and defaults, and validates
// the result. Errors wrap ErrConfig, name the key and the file, and never
// contain a secret.
func LoadConfig(path string) (*Config, error) {
	v := viper.New()
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	v.SetEnvPrefix("XMPPGW")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for k := range defaults {
		_ = v.BindEnv(k)
	}
	where := "defaults"
	if path != "" {
		where = path
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("%w: %s: %s", ErrConfig, path, redactReadErr(err, path))
		}
		if err := unknownKeys(v, path); err != nil {
			return nil, err
		}
	}
	var cfg Config
	dec := func(c *mapstructure.DecoderConfig) {
		c.ErrorUnused = false
		c.WeaklyTypedInput = true
		c.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			stringToRoutes,
		)
	}
	if err := v.Unmarshal(&cfg, dec); err != nil {
		return nil, fmt.Errorf("%w: %s: %s", ErrConfig, where, redactDecodeErr(err, v))
	}
	cfg.File = path
	if err := cfg.Validate(); err != nil {
		// Validate quotes no secret; Redact is the second guard.
		return nil, fmt.Errorf("%w: %s:\n%s", ErrConfig, where, Redact(&cfg, err.Error()))
	}
	return &cfg, nil
}

// stringToRoutes lets inbound.routes come from an environment variable as
// "local=queue,local2=queue2" (XMPPGW_INBOUND_ROUTES).
func stringToRoutes(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to != reflect.TypeOf(map[string]string{}) {
		return data, nil
	}
	out := map[string]string{}
	for _, pair := range strings.Split(data.(string), ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, fmt.Errorf("inbound.routes: %q is not local=queue (XMPPGW_INBOUND_ROUTES takes local=queue,local2=queue2)", pair)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}

// unknownKeys rejects keys in the file that the gateway does not know, so
// that a typo does not silently fall back to a default.
func unknownKeys(v *viper.Viper, path string) error {
	var errs []error
	for _, k := range v.AllKeys() {
		if _, ok := defaults[k]; ok {
			continue
		}
		if strings.HasPrefix(k, "inbound.routes.") {
			continue
		}
		if sk := secretParent(k); sk != "" {
			// The sub-key may be the secret itself, mis-indented.
			errs = append(errs, fmt.Errorf("%s: must be a string, not a section", sk))
			continue
		}
		errs = append(errs, fmt.Errorf("%s: unknown key", k))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s:\n%w", ErrConfig, path, errors.Join(errs...))
	}
	return nil
}

// secretParent returns the secret key that key lies under, or "".
func secretParent(key string) string {
	for sk := range secretKeys {
		if strings.HasPrefix(key, sk+".") {
			return sk
		}
	}
	return ""
}

// redactReadErr keeps secrets out of YAML parse errors, which may quote a
// line of the file: an error that mentions a secret key, or quotes a value
// written under one, is replaced by a generic one (with its line number).
func redactReadErr(err error, path string) string {
	s := err.Error()
	generic := "cannot parse the file (the offending line is not shown because it may hold a secret)"
	if line := yamlLine.FindString(s); line != "" {
		generic = line + ": " + generic
	}
	lower := strings.ToLower(s)
	if strings.Contains(lower, "secret") || strings.Contains(lower, "password") || strings.Contains(lower, "url") {
		return generic
	}
	body, rerr := os.ReadFile(path)
	if rerr != nil {
		return generic
	}
	for _, v := range fileSecretValues(body) {
		if strings.Contains(s, v) {
			return generic
		}
	}
	return s
}

// yamlLine finds "line N" in a YAML error.
var yamlLine = regexp.MustCompile(`line \d+`)

// fileSecretValues returns, for a file that does not parse, every value
// written after a secret key ("secret:", "password:", "url:") and its
// pieces between quotes and white space: what a parse error could quote.
func fileSecretValues(body []byte) []string {
	var out []string
	for _, line := range strings.Split(string(body), "\n") {
		_, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		key := strings.ToLower(strings.Trim(strings.SplitN(line, ":", 2)[0], " \t-\"'"))
		if key != "secret" && key != "password" && key != "url" {
			continue
		}
		for _, f := range append([]string{strings.TrimSpace(val)}, strings.FieldsFunc(val, func(r rune) bool {
			return strings.ContainsRune(" \t\r\"'{}[],", r)
		})...) {
			if len(f) >= minSecretLen {
				out = append(out, f)
			}
		}
	}
	return out
}

// redactDecodeErr keeps secrets out of decoding errors, which quote the
// value that did not fit: the error of a secret key says only which key,
// and whatever else it says goes through Redact with the raw values.
func redactDecodeErr(err error, v *viper.Viper) string {
	s := err.Error()
	var keys []string
	for sk := range secretKeys {
		if strings.Contains(s, sk) || strings.Contains(s, strings.TrimPrefix(sk, "xmpp.")) && sk != "amqp.url" {
			keys = append(keys, sk)
		}
	}
	if len(keys) > 0 {
		sort.Strings(keys)
		return strings.Join(keys, ", ") + ": must be a string (the value is not shown because it may hold a secret)"
	}
	raw := &Config{}
	raw.XMPP.Secret = fmt.Sprint(v.Get("xmpp.secret"))
	raw.XMPP.Password = fmt.Sprint(v.Get("xmpp.password"))
	raw.AMQP.URL = fmt.Sprint(v.Get("amqp.url"))
	return Redact(raw, s)
}

// Validate checks every key and reports all problems at once, each naming
// its key. It never includes a secret's value.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{key}, a...)...))
	}
	x := &c.XMPP
	switch x.Mode {
	case ModeComponent:
		if x.Domain == "" {
			bad("xmpp.domain", "required in component mode")
		} else if j, err := jid.Parse(x.Domain); err != nil || j.Localpart() != "" || j.Resourcepart() != "" {
			bad("xmpp.domain", "%q is not a domain", x.Domain)
		}
		if x.Secret == "" {
			bad("xmpp.secret", "required in component mode")
		}
		if x.DefaultFrom == "" {
			bad("xmpp.default_from", "required in component mode")
		} else if j, err := jid.New(x.DefaultFrom, "example.org", ""); err != nil || j.Localpart() != x.DefaultFrom {
			bad("xmpp.default_from", "%q is not a valid localpart", x.DefaultFrom)
		}
	case ModeClient:
		if x.JID == "" {
			bad("xmpp.jid", "required in client mode")
		} else if j, err := jid.Parse(x.JID); err != nil || j.Localpart() == "" {
			bad("xmpp.jid", "%q is not an account JID (local@domain[/resource])", x.JID)
		}
		if x.Password == "" {
			bad("xmpp.password", "required in client mode")
		}
		switch x.TLS {
		case "required", "disabled":
		default:
			bad("xmpp.tls", "%q: want required or disabled", x.TLS)
		}
		if x.TLSCA != "" {
			if _, err := os.Stat(x.TLSCA); err != nil {
				bad("xmpp.tls_ca", "%v", err)
			}
		}
	default:
		bad("xmpp.mode", "%q: want component or client", x.Mode)
	}
	if _, _, err := net.SplitHostPort(x.Server); err != nil {
		bad("xmpp.server", "%q is not host:port", x.Server)
	}
	if x.Keepalive < time.Second {
		bad("xmpp.keepalive", "%s: must be at least 1s", x.Keepalive)
	}

	a := &c.AMQP
	if err := queue.CheckURL(a.URL); err != nil {
		// The error quotes no part of the URL.
		bad("amqp.url", "%s", strings.TrimPrefix(err.Error(), "queue: "))
	}
	names := map[string]string{}
	for _, q := range []struct{ key, name string }{
		{"amqp.out_queue", a.OutQueue}, {"amqp.in_queue", a.InQueue}, {"amqp.dead_letter_queue", a.DeadLetterQueue},
	} {
		if q.name == "" || len(q.name) > 255 {
			bad(q.key, "must be a queue name of 1 to 255 bytes")
			continue
		}
		if other, dup := names[q.name]; dup {
			bad(q.key, "%q is also %s", q.name, other)
		}
		names[q.name] = q.key
	}
	switch a.QueueType {
	case "classic", "quorum":
	default:
		bad("amqp.queue_type", "%q: want classic or quorum", a.QueueType)
	}
	if a.Prefetch < 1 || a.Prefetch > 65535 {
		bad("amqp.prefetch", "%d: want 1 to 65535", a.Prefetch)
	}
	if a.DeliveryLimit < 1 || a.DeliveryLimit > MaxDeliveryLimit {
		bad("amqp.delivery_limit", "%d: want 1 to %d", a.DeliveryLimit, MaxDeliveryLimit)
	}

	o := &c.Outbound
	switch o.DefaultType {
	case "chat", "normal", "headline", "groupchat":
	default:
		bad("outbound.default_type", "%q: want chat, normal, headline or groupchat", o.DefaultType)
	}
	if o.MaxTextBytes < 1 {
		bad("outbound.max_text_bytes", "%d: must be positive", o.MaxTextBytes)
	}
	if o.Rate < 0 {
		bad("outbound.rate", "%v: must be 0 (unlimited) or positive", o.Rate)
	}
	if o.MaxStanzaBytes < MinMaxStanzaBytes || o.MaxStanzaBytes > MaxMaxStanzaBytes {
		bad("outbound.max_stanza_bytes", "%d: want %d to %d", o.MaxStanzaBytes, MinMaxStanzaBytes, MaxMaxStanzaBytes)
	}

	routes := make([]string, 0, len(c.Inbound.Routes))
	for k := range c.Inbound.Routes {
		routes = append(routes, k)
	}
	sort.Strings(routes)
	for _, local := range routes {
		q := c.Inbound.Routes[local]
		if j, err := jid.New(local, "example.org", ""); err != nil || j.Localpart() != local {
			bad("inbound.routes."+local, "%q is not a valid localpart", local)
		}
		if q == "" || len(q) > 255 {
			bad("inbound.routes."+local, "must name a queue of 1 to 255 bytes")
		}
		if q == a.OutQueue || q == a.DeadLetterQueue {
			bad("inbound.routes."+local, "%q is the outbound or dead-letter queue", q)
		}
	}

	switch c.Presence.Subscriptions {
	case "auto", "forward", "deny":
	default:
		bad("presence.subscriptions", "%q: want auto, forward or deny", c.Presence.Subscriptions)
	}
	if c.XMPP.Mode == ModeComponent && c.Presence.Store == "" {
		bad("presence.store", "required in component mode")
	}
	if c.HTTP.Listen != "" {
		if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
			bad("http.listen", "%q is not host:port", c.HTTP.Listen)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q: want text or json", c.Log.Format)
	}
	return errors.Join(errs...)
}
