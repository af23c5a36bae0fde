package gateway

import "xmppgw/gateway/config"

// The configuration lives in package config; these names keep the
// gateway's API whole for its callers.

// Config is the gateway's configuration.
type Config = config.Config

// ErrConfig marks every configuration error (see config.ErrConfig).
var ErrConfig = config.ErrConfig

// LoadConfig reads and validates a configuration (see config.Load).
func LoadConfig(path string) (*Config, error) { return config.Load(path) }
