package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"xmppgw/queue"
)

// The secrets of a configuration are the keys with a secret kind in keys.go:
// xmpp.secret, xmpp.password, the password of amqp.url and that of
// presence.store when it is a postgres:// URL. They are
// redacted in three layers:
//
//   - printing: Config, XMPPConfig and AMQPConfig format themselves (fmt's
//     %v, %+v, %s and %#v, slog, JSON, a panic) and Redacted with every
//     secret replaced, so that no code path can print one by accident;
//   - errors: LoadConfig and Validate never quote a secret, and amqp.url is
//     checked with queue.CheckURL, whose errors quote no part of the URL;
//   - text from elsewhere: Redact replaces every form of every secret of a
//     config in any string (an error of a library, a log line) before it is
//     printed.

// redactedMark replaces a secret that is set.
const redactedMark = "<redacted>"

// minSecretLen is the length below which Redact does not replace a secret in
// free text: replacing every "ab" of a message would mangle it, and a secret
// that short is no secret. Printing a config redacts secrets of any length.
const minSecretLen = 4

// Redact returns s with every secret of cfg replaced by "xxxxx": the
// component secret, the account password and the password of amqp.url, each
// as written and in its escaped forms (percent-encoded, quoted as by %q or
// JSON), and amqp.url itself by its redacted form. Use it on any text that
// may quote a secret before logging or returning it, e.g.
//
//	log.Warn("connect failed", "err", config.Redact(cfg, err.Error()))
//
// A nil cfg returns s unchanged.
func Redact(cfg *Config, s string) string {
	if cfg == nil || s == "" {
		return s
	}
	cv := reflect.ValueOf(cfg).Elem()
	for _, sk := range secretKeys() {
		if u := sk.field(cv).String(); sk.isURL(u) {
			// amqp.url: the whole list first, then each of its URLs (an
			// error may quote the one it dialled).
			vs := []string{u}
			if sk.secret == secretURLPassword {
				vs = append(vs, queue.SplitURLs(u)...)
			}
			for _, v := range vs {
				if len(v) < minSecretLen {
					continue
				}
				r := sk.redactedURL(v)
				s = strings.ReplaceAll(s, v, r)
				if q := quoteInner(v); q != v {
					s = strings.ReplaceAll(s, q, r)
				}
			}
		}
	}
	for _, secret := range cfg.secretForms() {
		s = strings.ReplaceAll(s, secret, "xxxxx")
	}
	return s
}

// secretForms lists every secret of c in every form it may take in a text,
// longest first (so that a longer form is replaced before a part of it).
func (c *Config) secretForms() []string {
	seen := map[string]bool{}
	add := func(s string) {
		if len(s) < minSecretLen {
			return
		}
		forms := []string{s, url.PathEscape(s), url.QueryEscape(s), quoteInner(s), jsonInner(s),
			strings.TrimPrefix(url.UserPassword("", s).String(), ":")}
		if dec, err := url.PathUnescape(s); err == nil {
			forms = append(forms, dec)
		}
		for _, f := range forms {
			if len(f) >= minSecretLen {
				seen[f] = true
			}
		}
	}
	cv := reflect.ValueOf(c).Elem()
	for _, sk := range secretKeys() {
		v := sk.field(cv).String()
		switch sk.secret {
		case secretValue:
			add(v)
		case secretURLPassword, secretStoreURL:
			if !sk.isURL(v) {
				continue
			}
			for _, s := range urlSecrets(v) {
				add(s)
			}
		}
	}
	for _, r := range c.MUC.Rooms {
		add(r.Password)
	}
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if len(out[i]) != len(out[j]) {
			return len(out[i]) > len(out[j])
		}
		return out[i] < out[j]
	})
	return out
}

// urlSecrets returns the passwords of u, one URL or a list of URLs
// separated by commas (amqp.url): each URL's when every URL of the list is
// one the gateway accepts, else also those of the whole text taken as one
// malformed URL (a comma in a password splits the list anywhere).
func urlSecrets(u string) []string {
	urls := queue.SplitURLs(u)
	if len(urls) == 1 {
		return oneURLSecrets(u)
	}
	var out []string
	for _, v := range urls {
		out = append(out, oneURLSecrets(v)...)
	}
	if queue.CheckURLs(u) != nil {
		out = append(out, oneURLSecrets(u)...)
	}
	return out
}

// oneURLSecrets returns the password of u as url.Parse sees it, and, since a
// password with unencoded reserved characters splits a URL anywhere, what
// lies between the first ":" after "://" and the last "@", and its pieces
// between reserved characters.
func oneURLSecrets(u string) []string {
	var out []string
	if p, err := url.Parse(u); err == nil && p.User != nil {
		if pw, ok := p.User.Password(); ok {
			out = append(out, pw)
		}
	}
	_, rest, ok := strings.Cut(u, "://")
	if !ok {
		rest = u
	}
	i := strings.LastIndex(rest, "@")
	if i < 0 {
		return out
	}
	_, pass, ok := strings.Cut(rest[:i], ":")
	if !ok {
		return out
	}
	out = append(out, pass)
	out = append(out, strings.FieldsFunc(pass, func(r rune) bool {
		return strings.ContainsRune(":/?#[]@!$&'()*+,;=% \t\r\n\"\\", r)
	})...)
	return out
}

// isURL reports whether v, the value of sk, is a URL whose password is
// secret.
func (sk *key) isURL(v string) bool {
	switch sk.secret {
	case secretURLPassword:
		return v != ""
	case secretStoreURL:
		return IsStoreURL(v)
	}
	return false
}

// redactedURL is v, sk's URL, fit for printing.
func (sk *key) redactedURL(v string) string {
	if sk.secret == secretStoreURL {
		p, err := url.Parse(v)
		if err != nil || storeLocation(reflect.ValueOf(v)) != nil {
			return redactedMark
		}
		return p.Redacted()
	}
	return redactedURL(v)
}

// redactedURL is amqp.url fit for printing: its password replaced, or all of
// it when it is not a URL the gateway accepts (a password with unencoded
// reserved characters may have split it anywhere).
//
// A list of URLs is redacted URL by URL (joined by ","), or as a whole
// when one of them is not accepted.
func redactedURL(u string) string {
	if u == "" {
		return ""
	}
	if urls := queue.SplitURLs(u); len(urls) > 1 {
		if queue.CheckURLs(u) != nil {
			return redactedMark
		}
		for i, v := range urls {
			urls[i] = redactedURL(v)
		}
		return strings.Join(urls, ",")
	}
	if queue.CheckURL(u) != nil {
		return redactedMark
	}
	p, err := url.Parse(u)
	if err != nil {
		return redactedMark
	}
	return p.Redacted()
}

// quoteInner is s as %q prints it, without the quotes.
func quoteInner(s string) string {
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}

// jsonInner is s as a JSON string, without the quotes.
func jsonInner(s string) string {
	b, err := json.Marshal(s)
	if err != nil || len(b) < 2 {
		return s
	}
	return string(b[1 : len(b)-1])
}

// redactField replaces the secret in f, the settable field of sk.
func redactField(sk *key, f reflect.Value) {
	switch {
	case sk.secret == secretStoreURL:
		if sk.isURL(f.String()) {
			f.SetString(sk.redactedURL(f.String()))
		}
	case sk.secret == secretURLPassword:
		f.SetString(redactedURL(f.String()))
	case f.String() != "":
		f.SetString(redactedMark)
	}
}

// redactSection replaces the secrets among the fields of sv, the settable
// value of the section named section.
func redactSection(section string, sv reflect.Value) {
	for _, sk := range secretKeys() {
		if sk.section() == section {
			redactField(sk, sv.Field(sk.index[1]))
		}
	}
}

// redacted returns a copy of x with its secrets replaced.
func (x XMPPConfig) redacted() XMPPConfig {
	redactSection("xmpp", reflect.ValueOf(&x).Elem())
	return x
}

// redacted returns a copy of a with the password of its URL replaced.
func (a AMQPConfig) redacted() AMQPConfig {
	redactSection("amqp", reflect.ValueOf(&a).Elem())
	return a
}

// redacted returns a copy of c with every secret replaced.
func (c Config) redacted() Config {
	cv := reflect.ValueOf(&c).Elem()
	for _, sk := range secretKeys() {
		redactField(sk, sk.field(cv))
	}
	// Room passwords, in a copy of the list.
	if len(c.MUC.Rooms) > 0 {
		rooms := make([]MUCRoom, len(c.MUC.Rooms))
		for i, r := range c.MUC.Rooms {
			if r.Password != "" {
				r.Password = "<redacted>"
			}
			rooms[i] = r
		}
		c.MUC.Rooms = rooms
	}
	return c
}

// sectionMap returns the fields of a section struct by their config key,
// durations as strings.
func sectionMap(sv reflect.Value) map[string]any {
	m := map[string]any{}
	for j := 0; j < sv.NumField(); j++ {
		key := sv.Type().Field(j).Tag.Get("mapstructure")
		if key == "" || key == "-" {
			continue
		}
		val := sv.Field(j).Interface()
		if d, ok := val.(time.Duration); ok {
			val = d.String()
		}
		m[key] = val
	}
	return m
}

// sectionAttrs is sectionMap as slog attributes, in field order.
func sectionAttrs(sv reflect.Value) []slog.Attr {
	var attrs []slog.Attr
	for j := 0; j < sv.NumField(); j++ {
		key := sv.Type().Field(j).Tag.Get("mapstructure")
		if key == "" || key == "-" {
			continue
		}
		val := sv.Field(j).Interface()
		if d, ok := val.(time.Duration); ok {
			val = d.String()
		}
		attrs = append(attrs, slog.Any(key, val))
	}
	return attrs
}

// Redacted returns the effective configuration as nested maps with every
// secret replaced by "<redacted>" (or "" when unset) and amqp.url's password
// by "xxxxx", for check-config.
func (c *Config) Redacted() map[string]any {
	out := map[string]any{}
	rv := reflect.ValueOf(c.redacted())
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		sec := rt.Field(i).Tag.Get("mapstructure")
		if sec == "-" || sec == "" {
			continue
		}
		out[sec] = sectionMap(rv.Field(i))
	}
	return out
}

// The printing methods below make fmt, slog, encoding/json and a panic show
// a config with its secrets redacted.

type (
	plainConfig     Config
	plainXMPPConfig XMPPConfig
	plainAMQPConfig AMQPConfig
)

// String formats c with its secrets redacted (fmt's %v, %+v and %s).
func (c Config) String() string { return fmt.Sprintf("%+v", plainConfig(c.redacted())) }

// GoString formats c with its secrets redacted (fmt's %#v).
func (c Config) GoString() string {
	return strings.Replace(fmt.Sprintf("%#v", plainConfig(c.redacted())), "config.plainConfig", "config.Config", 1)
}

// LogValue makes slog log c with its secrets redacted.
func (c Config) LogValue() slog.Value {
	rv := reflect.ValueOf(c.redacted())
	rt := rv.Type()
	var attrs []slog.Attr
	for i := 0; i < rt.NumField(); i++ {
		sec := rt.Field(i).Tag.Get("mapstructure")
		if sec == "-" || sec == "" {
			continue
		}
		attrs = append(attrs, slog.Attr{Key: sec, Value: slog.GroupValue(sectionAttrs(rv.Field(i))...)})
	}
	return slog.GroupValue(attrs...)
}

// MarshalJSON encodes c as check-config prints it, secrets redacted.
func (c Config) MarshalJSON() ([]byte, error) { return json.Marshal(c.Redacted()) }

// String formats x with its secrets redacted.
func (x XMPPConfig) String() string { return fmt.Sprintf("%+v", plainXMPPConfig(x.redacted())) }

// GoString formats x with its secrets redacted.
func (x XMPPConfig) GoString() string {
	return strings.Replace(fmt.Sprintf("%#v", plainXMPPConfig(x.redacted())), "config.plainXMPPConfig", "config.XMPPConfig", 1)
}

// LogValue makes slog log x with its secrets redacted.
func (x XMPPConfig) LogValue() slog.Value {
	return slog.GroupValue(sectionAttrs(reflect.ValueOf(x.redacted()))...)
}

// MarshalJSON encodes x by its config keys, secrets redacted.
func (x XMPPConfig) MarshalJSON() ([]byte, error) {
	return json.Marshal(sectionMap(reflect.ValueOf(x.redacted())))
}

// String formats a with the password of its URL redacted.
func (a AMQPConfig) String() string { return fmt.Sprintf("%+v", plainAMQPConfig(a.redacted())) }

// GoString formats a with the password of its URL redacted.
func (a AMQPConfig) GoString() string {
	return strings.Replace(fmt.Sprintf("%#v", plainAMQPConfig(a.redacted())), "config.plainAMQPConfig", "config.AMQPConfig", 1)
}

// LogValue makes slog log a with the password of its URL redacted.
func (a AMQPConfig) LogValue() slog.Value {
	return slog.GroupValue(sectionAttrs(reflect.ValueOf(a.redacted()))...)
}

// MarshalJSON encodes a by its config keys, the URL's password redacted.
func (a AMQPConfig) MarshalJSON() ([]byte, error) {
	return json.Marshal(sectionMap(reflect.ValueOf(a.redacted())))
}
