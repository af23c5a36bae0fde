package config

import (
	"log/slog"
	"reflect"
	"strings"
)

// ParseLevel maps log.level to a slog level (validated keys only).
func ParseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Merge is what a reload makes of the configuration in force (cur) and a
// new, validated one (next): the keys that are live (keys.go) take next's
// values; every other key keeps cur's until a restart. applied and restart
// name the changed keys of each kind.
func Merge(cur, next *Config) (merged *Config, applied, restart []string) {
	m := *cur
	mv, nv := reflect.ValueOf(&m).Elem(), reflect.ValueOf(next).Elem()
	for _, name := range Diff(cur, next) {
		k := keyByName[name]
		if !k.live {
			restart = append(restart, name)
			continue
		}
		applied = append(applied, name)
		k.field(mv).Set(k.field(nv))
	}
	return &m, applied, restart
}

// Diff lists the keys whose values differ, in the order of keys.go.
func Diff(a, b *Config) []string {
	var out []string
	av, bv := reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem()
	for i := range keys {
		k := &keys[i]
		if !reflect.DeepEqual(k.field(av).Interface(), k.field(bv).Interface()) {
			out = append(out, k.name)
		}
	}
	return out
}
