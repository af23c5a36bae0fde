package httpapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"xmppgw/gateway/presence"
)

const (
	tUser     = "prometheus"
	tPassword = "correct horse battery staple"
)

// testCert writes a self-signed certificate for 127.0.0.1 and its key into
// dir; the certificate is its own CA and serves as server and client
// certificate alike.
func testCert(t *testing.T, dir string) (certFile, keyFile string, pair tls.Certificate, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "xmppgw test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if pair, err = tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return certFile, keyFile, pair, pool
}

// webFile is what a web configuration file may hold in these tests.
type webFile struct {
	tls, basicAuth, clientCert bool
}

// write writes the web configuration into dir (with a certificate when TLS
// is on) and returns its path, and the client's TLS config ("" and nil
// without TLS).
func (wf webFile) write(t *testing.T, dir string) (string, *tls.Config) {
	t.Helper()
	var b strings.Builder
	var clientTLS *tls.Config
	if wf.tls {
		// Relative paths: the toolkit reads them from the file's directory.
		_, _, pair, pool := testCert(t, dir)
		fmt.Fprintf(&b, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
		clientTLS = &tls.Config{RootCAs: pool}
		if wf.clientCert {
			fmt.Fprintf(&b, "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: server.crt\n")
			clientTLS.Certificates = []tls.Certificate{pair}
		}
	}
	if wf.basicAuth {
		hash, err := bcrypt.GenerateFromPassword([]byte(tPassword), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "basic_auth_users:\n  %s: %s\n", tUser, hash)
	}
	p := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, clientTLS
}

// fakeAddr makes a loopback listener look like one on another address, so
// that the presence default of a public listener is tested without opening
// a port to the network.
type fakeAddr struct {
	net.Listener
	addr net.Addr
}

func (l fakeAddr) Addr() net.Addr { return l.addr }

var publicAddr = &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 9465} // TEST-NET-1

// serveTest serves api with its http.web_config on a fresh loopback port
// (shown as publicAddr when public) until the test ends, and returns the
// address to dial.
func serveTest(t *testing.T, api *Server, public bool) string {
	t.Helper()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener = tcp
	if public {
		ln = fakeAddr{tcp, publicAddr}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- api.serveWith(ctx, newConnLimiter(ln, 16), defaultHTTPLimits) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return tcp.Addr().String()
}

// client makes requests to one server and closes its connections when the
// test ends.
type client struct {
	t    *testing.T
	base string
	http *http.Client
}

func newClient(t *testing.T, scheme, addr string, tc *tls.Config) *client {
	tr := &http.Transport{TLSClientConfig: tc}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{t: t, base: scheme + "://" + addr, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// get fetches path with basic auth user:password (none if user is "").
func (c *client) get(path, user, password string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

func (c *client) mustGet(path, user, password string) (int, string) {
	c.t.Helper()
	code, body, err := c.get(path, user, password)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	return code, body
}

// webServer is a server of a gateway whose links are down, with the web
// configuration wf, and alice online.
func webServer(t *testing.T, wf webFile) (*Server, string, *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	path, tc := wf.write(t, dir)
	api := testServer(t, minimal+"http:\n  web_config: "+path+"\n", "v-test", fakePresence{tAlice: {JID: tAlice, Online: true,
		Resources: []presence.Resource{{Resource: "phone"}}}})
	return api, path, tc
}

// Every endpoint is behind TLS and basic auth when the web configuration
// says so: the right password gets the answer, a wrong one or none 401, a
// client that speaks plain HTTP or does not trust the certificate nothing.
func TestWebConfigTLSAndBasicAuth(t *testing.T) {
	api, _, tc := webServer(t, webFile{tls: true, basicAuth: true})
	addr := serveTest(t, api, false)
	c := newClient(t, "https", addr, tc)
	for i, ep := range []struct {
		path string
		code int    // with the right password (the links are down: /readyz 503)
		want string // in the body
	}{
		{"/metrics", 200, "xmppgw_connected{link=\"xmpp\"} 0"},
		{"/healthz", 200, "ok"},
		{"/readyz", 503, "xmpp down"},
		{"/", 200, "v-test"},
		{"/api/status", 200, "\"version\""},
		{"/v1/presence/" + tAlice, 200, "\"online\":true"},
	} {
		code, body := c.mustGet(ep.path, tUser, tPassword)
		if code != ep.code || !strings.Contains(body, ep.want) {
			t.Errorf("%d: %s with the right password: %d %.200q", i, ep.path, code, body)
		}
		for _, cred := range [][2]string{{tUser, "wrong"}, {tUser, ""}, {"nobody", tPassword}, {"", ""}} {
			code, body := c.mustGet(ep.path, cred[0], cred[1])
			if code != http.StatusUnauthorized || strings.Contains(body, ep.want) {
				t.Errorf("%d: %s as %q/%q: %d %.200q", i, ep.path, cred[0], cred[1], code, body)
			}
		}
	}

	// Plain HTTP on the TLS port: Go's TLS server answers 400 and nothing
	// else.
	plain := newClient(t, "http", addr, nil)
	code, body, err := plain.get("/metrics", tUser, tPassword)
	if err == nil && (code == http.StatusOK || strings.Contains(body, "xmppgw_")) {
		t.Errorf("plain HTTP to the TLS listener: %d %.200q", code, body)
	}
	// A client that does not trust the certificate fails the handshake.
	untrusting := newClient(t, "https", addr, &tls.Config{})
	if code, _, err := untrusting.get("/healthz", tUser, tPassword); err == nil {
		t.Errorf("a client without the CA got %d", code)
	}
}

// The file is re-read by the toolkit on each request: a new password
// applies without a restart.
func TestWebConfigPasswordChangeApplies(t *testing.T) {
	api, path, tc := webServer(t, webFile{tls: true, basicAuth: true})
	c := newClient(t, "https", serveTest(t, api, false), tc)
	if code, _ := c.mustGet("/healthz", tUser, tPassword); code != 200 {
		t.Fatalf("before: %d", code)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("new password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	head, _, _ := strings.Cut(string(b), "basic_auth_users:")
	if err := os.WriteFile(path, []byte(head+"basic_auth_users:\n  "+tUser+": "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _ := c.mustGet("/healthz", tUser, tPassword); code != 401 {
		t.Errorf("old password after the change: %d", code)
	}
	if code, _ := c.mustGet("/healthz", tUser, "new password"); code != 200 {
		t.Errorf("new password after the change: %d", code)
	}
}

// /v1/presence answers on a loopback listener, or where the web
// configuration authenticates every client; on any other listener it
// answers 403, and the other endpoints are served as usual.
func TestPresenceDefault(t *testing.T) {
	for i, tc := range []struct {
		public   bool
		wf       *webFile // nil: no http.web_config
		presence int      // code of /v1/presence with the right credentials, if any
	}{
		0: {public: false, wf: nil, presence: 200},
		1: {public: true, wf: nil, presence: 403},
		2: {public: true, wf: &webFile{tls: true}, presence: 403},
		3: {public: true, wf: &webFile{tls: true, basicAuth: true}, presence: 200},
		4: {public: true, wf: &webFile{basicAuth: true}, presence: 200},
		5: {public: true, wf: &webFile{tls: true, clientCert: true}, presence: 200},
		6: {public: false, wf: &webFile{tls: true}, presence: 200},
	} {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			body := minimal
			var clientTLS *tls.Config
			scheme := "http"
			if tc.wf != nil {
				var path string
				path, clientTLS = tc.wf.write(t, t.TempDir())
				body += "http:\n  web_config: " + path + "\n"
				if tc.wf.tls {
					scheme = "https"
				}
			}
			api := testServer(t, body, "", fakePresence{tAlice: {JID: tAlice, Online: true, Resources: []presence.Resource{}}})
			c := newClient(t, scheme, serveTest(t, api, tc.public), clientTLS)
			user, pw := "", ""
			if tc.wf != nil && tc.wf.basicAuth {
				user, pw = tUser, tPassword
			}
			code, resp := c.mustGet("/v1/presence/"+tAlice, user, pw)
			if code != tc.presence {
				t.Fatalf("/v1/presence: %d %q", code, resp)
			}
			if code == 200 && !strings.Contains(resp, `"online":true`) || code == 403 && strings.Contains(resp, tAlice) {
				t.Fatalf("/v1/presence: %d %q", code, resp)
			}
			if code, _ := c.mustGet("/metrics", user, pw); code != 200 {
				t.Fatalf("/metrics: %d", code)
			}
			if user != "" {
				if code, _ := c.mustGet("/v1/presence/"+tAlice, user, "wrong"); code != 401 {
					t.Fatalf("/v1/presence with a wrong password: %d", code)
				}
			}
		})
	}
}

// Handler alone (no listener known) is as strict as a public listener.
func TestHandlerPresenceStrict(t *testing.T) {
	api := testServer(t, minimal, "", fakePresence{})
	rec := httptest.NewRecorder()
	api.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/presence/"+tAlice, nil))
	if rec.Code != http.StatusForbidden {
		t.Fatalf("%d %q", rec.Code, rec.Body.String())
	}
}
