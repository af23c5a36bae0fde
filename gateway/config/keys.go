package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"mellium.im/xmpp/jid"

	"xmppgw/queue"
	"xmppgw/stanza"
)

// A key is defined once, here: its type is its field's in Config (found by
// the mapstructure tag), and its row in keys holds everything else. The
// defaults, the environment variables, the live set of a reload, the
// secrets that redaction hides and the per-key validation are all derived
// from this table. A key without a row (or a row without a field) panics at
// start.
type key struct {
	name   string // section.key, as in the YAML file
	def    any    // default value
	live   bool   // Reload applies it without a restart
	secret secretKind
	// mode, if set, limits the key to one xmpp.mode: it is checked only in
	// that mode, and required there when required is set (every required
	// key belongs to a mode).
	mode     stanza.Mode
	required bool
	// optional lets the zero value (usually "": off) pass check.
	optional bool
	// check validates the value; its message never quotes a secret.
	// Checks that involve several keys are in validate.go.
	check func(v reflect.Value) error

	index []int // the field in Config (filled in by init)
}

// secretKind says how a key holds a secret.
type secretKind int

const (
	notSecret secretKind = iota
	secretValue
	secretURLPassword // a URL whose password is secret; the rest may be shown
	// secretStoreURL is presence.store: a file path (nothing secret), or a
	// postgres:// URL whose password is secret.
	secretStoreURL
)

// keys lists every key in the order of the Config fields.
var keys = []key{
	{name: "xmpp.mode", def: stanza.ModeComponent, check: oneOf(string(stanza.ModeComponent), string(stanza.ModeClient))},
	// One host:port, or several separated by commas, dialled in order.
	{name: "xmpp.server", def: "127.0.0.1:5347", check: hostPortList},
	{name: "xmpp.domain", def: "", mode: stanza.ModeComponent, required: true, check: domainJID},
	{name: "xmpp.secret", def: "", secret: secretValue, mode: stanza.ModeComponent, required: true},
	{name: "xmpp.jid", def: "", mode: stanza.ModeClient, required: true, check: accountJID},
	{name: "xmpp.password", def: "", secret: secretValue, mode: stanza.ModeClient, required: true},
	{name: "xmpp.tls", def: "required", mode: stanza.ModeClient, check: oneOf("required", "disabled")},
	{name: "xmpp.tls_ca", def: "", mode: stanza.ModeClient, optional: true, check: fileExists},
	{name: "xmpp.tls_server_name", def: ""},
	{name: "xmpp.default_from", def: "notices", mode: stanza.ModeComponent, required: true, check: localpart},
	{name: "xmpp.keepalive", def: "30s", check: atLeast(time.Second)},

	// One URL, or several separated by commas (the nodes of a cluster).
	{name: "amqp.url", def: "amqp://guest:guest@127.0.0.1:5672/", secret: secretURLPassword, check: amqpURL},
	{name: "amqp.out_queue", def: "xmpp-out", check: queueName},
	{name: "amqp.in_queue", def: "xmpp-in", check: queueName},
	{name: "amqp.dead_letter_queue", def: "xmpp-out.dead", check: queueName},
	{name: "amqp.queue_type", def: "classic", check: oneOf("classic", "quorum")},
	{name: "amqp.prefetch", def: 1000, check: intRange(1, 65535)},
	// The delivery limit is read per item.
	{name: "amqp.delivery_limit", def: DefaultDeliveryLimit, live: true, check: intRange(1, MaxDeliveryLimit)},

	{name: "outbound.default_type", def: "chat", live: true, check: oneOf("chat", "normal", "headline", "groupchat")},
	{name: "outbound.max_text_bytes", def: 65536, live: true, check: positive},
	{name: "outbound.rate", def: 0.0, live: true, check: notNegative},
	// The stanza bound is read per item.
	{name: "outbound.max_stanza_bytes", def: DefaultMaxStanzaBytes, live: true, check: intRange(MinMaxStanzaBytes, MaxMaxStanzaBytes)},

	// Each route is checked in validate.go (its key names the localpart).
	{name: "inbound.routes", def: map[string]string{}, live: true},
	// How long an inbound message may wait for a broker that blocks
	// publishers (memory or disk alarm), counted from its arrival; 0
	// refuses at once while blocked.
	{name: "inbound.blocked_wait", def: "5s", live: true, check: durationRange(0, 10*time.Minute)},

	{name: "presence.subscriptions", def: "auto", live: true, check: oneOf("auto", "forward", "deny")},
	{name: "presence.status", def: "", live: true},
	// A file path (bbolt) or a postgres:// URL (shared by the gateways of
	// one component).
	{name: "presence.store", def: "./data/xmppgw.db", secret: secretStoreURL, mode: stanza.ModeComponent, required: true, check: storeLocation},
	// 0: the XMPP server's component conflict decides who is active; else
	// a lease in the PostgreSQL store (checked in validate.go).
	{name: "presence.lease_ttl", def: "0s", mode: stanza.ModeComponent, optional: true, check: durationRange(3*time.Second, 10*time.Minute)},

	// Each room is checked in validate.go.
	{name: "muc.rooms", def: []map[string]any{}, live: true},
	{name: "muc.self_ping", def: "60s", live: true, check: selfPingRange},
	{name: "muc.events", def: "all", live: true, check: oneOf("all", "mentions")},

	{name: "http.listen", def: "127.0.0.1:9465", optional: true, check: hostPort}, // "" disables
	// Which file is read at start only (the listener is made then); the
	// exporter-toolkit re-reads the file itself on every request and TLS
	// handshake, so a changed password or certificate applies at once.
	{name: "http.web_config", def: "", optional: true, check: webConfigFile}, // "" is plain HTTP, no auth

	{name: "log.level", def: "info", live: true, check: oneOf("debug", "info", "warn", "error")},
	{name: "log.format", def: "text", check: oneOf("text", "json")},
}

// keyByName indexes keys.
var keyByName = map[string]*key{}

func init() {
	t := reflect.TypeFor[Config]()
	fields := map[string][]int{}
	for i := range t.NumField() {
		sec := t.Field(i).Tag.Get("mapstructure")
		if sec == "" || sec == "-" {
			continue
		}
		st := t.Field(i).Type
		for j := range st.NumField() {
			fields[sec+"."+st.Field(j).Tag.Get("mapstructure")] = []int{i, j}
		}
	}
	for i := range keys {
		k := &keys[i]
		idx, ok := fields[k.name]
		if !ok {
			panic("config: key " + k.name + " has no field in Config")
		}
		k.index = idx
		keyByName[k.name] = k
		delete(fields, k.name)
	}
	for name := range fields {
		panic("config: field " + name + " has no row in keys")
	}
}

// section is the part of a key's name before the dot.
func (k *key) section() string {
	sec, _, _ := strings.Cut(k.name, ".")
	return sec
}

// leaf is the part of a key's name after the dot.
func (k *key) leaf() string {
	_, leaf, _ := strings.Cut(k.name, ".")
	return leaf
}

// field returns k's field of c (settable when c is addressable).
func (k *key) field(c reflect.Value) reflect.Value { return c.FieldByIndex(k.index) }

// secretKeys are the names of the keys that hold secrets.
func secretKeys() []*key {
	var out []*key
	for i := range keys {
		if keys[i].secret != notSecret {
			out = append(out, &keys[i])
		}
	}
	return out
}

// LiveKeys are the keys that Reload applies without a restart.
func LiveKeys() []string {
	var out []string
	for _, k := range keys {
		if k.live {
			out = append(out, k.name)
		}
	}
	return out
}

// The checks of single values. Each returns an error whose message follows
// the key's name; none quotes a secret.

func str(v reflect.Value) string { return v.String() }

func oneOf(vals ...string) func(reflect.Value) error {
	want := vals[0]
	if n := len(vals); n > 1 {
		want = strings.Join(vals[:n-1], ", ") + " or " + vals[n-1]
	}
	return func(v reflect.Value) error {
		for _, ok := range vals {
			if str(v) == ok {
				return nil
			}
		}
		return fmt.Errorf("%q: want %s", str(v), want)
	}
}

func intRange(lo, hi int) func(reflect.Value) error {
	return func(v reflect.Value) error {
		if n := int(v.Int()); n < lo || n > hi {
			return fmt.Errorf("%d: want %d to %d", n, lo, hi)
		}
		return nil
	}
}

func positive(v reflect.Value) error {
	if v.Int() < 1 {
		return fmt.Errorf("%d: must be positive", v.Int())
	}
	return nil
}

func notNegative(v reflect.Value) error {
	if v.Float() < 0 {
		return fmt.Errorf("%v: must be 0 (unlimited) or positive", v.Float())
	}
	return nil
}

func selfPingRange(v reflect.Value) error {
	if d := time.Duration(v.Int()); d != 0 && (d < 5*time.Second || d > 24*time.Hour) {
		return fmt.Errorf("%s: must be 0 (off) or between 5s and 24h", d)
	}
	return nil
}

func durationRange(min, max time.Duration) func(reflect.Value) error {
	return func(v reflect.Value) error {
		if d := time.Duration(v.Int()); d < min || d > max {
			return fmt.Errorf("%s: must be between %s and %s", d, min, max)
		}
		return nil
	}
}

func atLeast(min time.Duration) func(reflect.Value) error {
	return func(v reflect.Value) error {
		if d := time.Duration(v.Int()); d < min {
			return fmt.Errorf("%s: must be at least %s", d, min)
		}
		return nil
	}
}

func hostPort(v reflect.Value) error {
	if _, _, err := net.SplitHostPort(str(v)); err != nil {
		return fmt.Errorf("%q is not host:port", str(v))
	}
	return nil
}

// hostPortList checks xmpp.server: one host:port or several separated by
// commas (SplitServers), each with a port.
func hostPortList(v reflect.Value) error {
	list := SplitServers(str(v))
	for i, a := range list {
		_, port, err := net.SplitHostPort(a)
		if err == nil && port == "" {
			err = errors.New("no port")
		}
		if err != nil {
			if len(list) == 1 {
				return fmt.Errorf("%q is not host:port", a)
			}
			return fmt.Errorf("server %d of %d: %q is not host:port", i+1, len(list), a)
		}
	}
	return nil
}

// SplitServers splits xmpp.server into its addresses, in order, without
// the spaces around each.
func SplitServers(list string) []string {
	out := strings.Split(list, ",")
	for i, a := range out {
		out[i] = strings.TrimSpace(a)
	}
	return out
}

func domainJID(v reflect.Value) error {
	if j, err := jid.Parse(str(v)); err != nil || j.Localpart() != "" || j.Resourcepart() != "" {
		return fmt.Errorf("%q is not a domain", str(v))
	}
	return nil
}

func accountJID(v reflect.Value) error {
	if j, err := jid.Parse(str(v)); err != nil || j.Localpart() == "" {
		return fmt.Errorf("%q is not an account JID (local@domain[/resource])", str(v))
	}
	return nil
}

func localpart(v reflect.Value) error {
	if !validLocalpart(str(v)) {
		return fmt.Errorf("%q is not a valid localpart", str(v))
	}
	return nil
}

func validLocalpart(s string) bool {
	j, err := jid.New(s, "example.org", "")
	return err == nil && j.Localpart() == s
}

func fileExists(v reflect.Value) error {
	if _, err := os.Stat(str(v)); err != nil {
		return err
	}
	return nil
}

// webConfigFile checks http.web_config as exporter-toolkit reads it when it
// serves: the YAML (strictly: an unknown field is an error), the bcrypt
// hashes of basic_auth_users, and the certificate and key files of
// tls_server_config. The toolkit's messages quote at most a few characters
// of a value, never a password (the file holds only hashes).
func webConfigFile(v reflect.Value) error {
	path := str(v)
	err := web.Validate(path)
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == path {
		err = pe.Err // the path is said once, below
	}
	hint := ""
	if strings.HasPrefix(err.Error(), "crypto/bcrypt") {
		hint = " (basic_auth_users holds bcrypt hashes of the passwords, not the passwords)"
	}
	return fmt.Errorf("web configuration file %s: %w%s", path, err, hint)
}

// amqpURL checks amqp.url, one URL or several separated by commas, with
// queue.CheckURLs, whose errors quote no part of the URLs.
func amqpURL(v reflect.Value) error {
	if err := queue.CheckURLs(str(v)); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "queue: "))
	}
	return nil
}

// IsStoreURL reports whether presence.store s names a PostgreSQL database
// (a postgres:// or postgresql:// URL) rather than a file.
func IsStoreURL(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	return ok && (strings.EqualFold(scheme, "postgres") || strings.EqualFold(scheme, "postgresql"))
}

// storeLocation checks presence.store: a file path, or a PostgreSQL URL
// that parses. Its messages quote no part of a URL (it may hold a
// password).
func storeLocation(v reflect.Value) error {
	s := str(v)
	if !IsStoreURL(s) {
		if strings.Contains(s, "://") {
			return errors.New("must be a file path or a postgres:// URL (the value is not shown because it may hold a password)")
		}
		return nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a valid postgres:// URL (the value is not shown because it may hold a password; percent-encode reserved characters in the password)")
	}
	if u.Opaque != "" || u.Fragment != "" {
		return errors.New("not a valid postgres:// URL (the value is not shown because it may hold a password)")
	}
	return nil
}

func queueName(v reflect.Value) error {
	if !validQueueName(str(v)) {
		return errors.New("must be a queue name of 1 to 255 bytes")
	}
	return nil
}

func validQueueName(s string) bool { return s != "" && len(s) <= 255 }
