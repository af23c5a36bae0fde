package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// Load reads the YAML file at path (if path is not empty), applies
// XMPPGW_<SECTION>_<KEY> environment overrides and defaults, and validates
// the result. Errors wrap ErrConfig, name the key and the file, and never
// contain a secret.
func Load(path string) (*Config, error) {
	v := viper.New()
	// viper lets an environment variable reach Unmarshal only for a key
	// that has a default or is bound: every key has both.
	for _, k := range keys {
		v.SetDefault(k.name, k.def)
	}
	v.SetEnvPrefix("XMPPGW")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for _, k := range keys {
		_ = v.BindEnv(k.name)
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
			stringToRooms,
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

// stringToRooms lets muc.rooms come from an environment variable as
// "room@service/nick,room2@service" (XMPPGW_MUC_ROOMS; the nick is
// optional; passwords only from the file).
func stringToRooms(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to != reflect.TypeOf([]MUCRoom{}) {
		return data, nil
	}
	var out []MUCRoom
	for _, r := range strings.Split(data.(string), ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		j, nick, _ := strings.Cut(r, "/")
		out = append(out, MUCRoom{JID: j, Nick: nick})
	}
	return out, nil
}

// unknownKeys rejects keys in the file that the gateway does not know, so
// that a typo does not silently fall back to a default.
func unknownKeys(v *viper.Viper, path string) error {
	var errs []error
	for _, k := range v.AllKeys() {
		if _, ok := keyByName[k]; ok {
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
	// Lists are not walked by AllKeys: the rooms' members are checked here.
	if rooms, ok := v.Get("muc.rooms").([]any); ok {
		for i, r := range rooms {
			m, ok := r.(map[string]any)
			if !ok {
				errs = append(errs, fmt.Errorf("muc.rooms[%d]: must be a map (jid, nick, password)", i))
				continue
			}
			for k := range m {
				switch k {
				case "jid", "nick", "password":
				default:
					errs = append(errs, fmt.Errorf("muc.rooms[%d].%s: unknown key", i, k))
				}
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s:\n%w", ErrConfig, path, errors.Join(errs...))
	}
	return nil
}

// secretParent returns the secret key that key lies under, or "".
func secretParent(key string) string {
	for _, sk := range secretKeys() {
		if strings.HasPrefix(key, sk.name+".") {
			return sk.name
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
	for _, sk := range secretKeys() {
		if strings.Contains(lower, sk.leaf()) {
			return generic
		}
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
// written after the name of a secret key ("secret:", "password:", "url:")
// and its pieces between quotes and white space: what a parse error could
// quote.
func fileSecretValues(body []byte) []string {
	leaves := map[string]bool{}
	for _, sk := range secretKeys() {
		leaves[sk.leaf()] = true
	}
	var out []string
	for _, line := range strings.Split(string(body), "\n") {
		name, val, ok := strings.Cut(line, ":")
		if !ok || !leaves[strings.ToLower(strings.Trim(name, " \t-\"'"))] {
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
	var names []string
	raw := &Config{}
	rv := reflect.ValueOf(raw).Elem()
	for _, sk := range secretKeys() {
		// A value secret may be named by its leaf alone ("secret"); the
		// leaf "url" is too common a word to go by.
		if strings.Contains(s, sk.name) || sk.secret == secretValue && strings.Contains(s, sk.leaf()) {
			names = append(names, sk.name)
		}
		sk.field(rv).SetString(fmt.Sprint(v.Get(sk.name)))
	}
	if len(names) > 0 {
		sort.Strings(names)
		return strings.Join(names, ", ") + ": must be a string (the value is not shown because it may hold a secret)"
	}
	return Redact(raw, s)
}
