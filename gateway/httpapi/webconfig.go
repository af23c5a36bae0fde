package httpapi

import (
	"errors"
	"fmt"
	"net"
	"os"

	"go.yaml.in/yaml/v3"
)

// Who may ask /v1/presence. It tells whether a contact is online and in
// which state, which the people behind the JIDs would not want told to
// anyone who can reach the port. So it answers only where the operator has
// either kept the listener to this host or made clients authenticate:
//
//   - http.listen is a loopback address (127.0.0.0/8, ::1; the default is
//     127.0.0.1:9465): only local processes reach it;
//   - or http.web_config authenticates every request: basic_auth_users is
//     not empty, or tls_server_config.client_auth_type is
//     RequireAndVerifyClientCert.
//
// Anywhere else (say 0.0.0.0:9465 for a remote Prometheus, with no web
// config or one with TLS only) it answers 403 and the other endpoints are
// served as usual. Exporter-toolkit re-reads the web configuration on every
// request, and so does the gate: a file that gains or loses its users
// opens or closes the endpoint at once.

// errPresenceClosed is why /v1/presence refuses on a listener that is
// neither loopback nor authenticated.
var errPresenceClosed = errors.New("http.listen is not a loopback address and http.web_config sets no authentication (basic_auth_users, or client_auth_type RequireAndVerifyClientCert)")

// presenceGate returns the check that /v1/presence makes before each
// answer: nil if it may answer.
func (srv *Server) presenceGate(loopback bool) func() error {
	if loopback {
		return func() error { return nil }
	}
	return func() error {
		path := srv.opt.Config().HTTP.WebConfig
		if path == "" {
			return errPresenceClosed
		}
		auth, err := webConfigAuthenticates(path)
		if err != nil {
			return err
		}
		if !auth {
			return errPresenceClosed
		}
		return nil
	}
}

// webConfigAuthenticates reads the exporter-toolkit web configuration at
// path and says whether it makes every client authenticate. The toolkit
// has validated the file (it refuses to serve otherwise); only the two
// fields that matter here are read.
func webConfigAuthenticates(path string) (bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("http.web_config: %w", err)
	}
	var c struct {
		TLS struct {
			ClientAuth string `yaml:"client_auth_type"`
		} `yaml:"tls_server_config"`
		Users map[string]string `yaml:"basic_auth_users"`
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		return false, fmt.Errorf("http.web_config %s: cannot be read: %w", path, err)
	}
	return len(c.Users) > 0 || c.TLS.ClientAuth == "RequireAndVerifyClientCert", nil
}

// isLoopback says whether a listener's address is reachable only from
// this host.
func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
