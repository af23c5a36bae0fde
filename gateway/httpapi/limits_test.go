package httpapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// Thousands of idle connections neither exhaust descriptors nor lock out
// /healthz and /metrics: the server holds at most maxConns, evicting the
// longest idle one for a newcomer, and closes idle ones after the timeouts.
func TestHTTPIdleConnectionsBounded(t *testing.T) {
	const idle, conns, maxConns = 400 * time.Millisecond, 2000, 64
	api := testServer(t, minimal, "", nil)
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lim := httpLimits{readHeader: idle, read: 2 * time.Second, write: 2 * time.Second, idle: idle,
		maxHeader: 8 << 10, maxConns: maxConns}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ln := newConnLimiter(tcp, maxConns)
	go func() { done <- api.serveWith(ctx, ln, lim) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveHTTP: %v", err)
		}
	}()
	addr := tcp.Addr().String()

	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	start := time.Now()
	for i := range conns {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		open = append(open, c)
	}
	t.Logf("%d idle connections opened in %s", conns, time.Since(start))

	get := func(path string) {
		t.Helper()
		cl := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := cl.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("%s with %d idle connections: %v", path, conns, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	get("/healthz")
	get("/metrics")
	if n := ln.count(); n > maxConns {
		t.Errorf("server holds %d connections, cap %d", n, maxConns)
	}
	if n := openFDs(); n > 0 && n > conns+maxConns+200 {
		t.Errorf("%d descriptors open", n) // the test's own conns plus the cap plus a margin
	}

	// a keep-alive connection that goes quiet is closed after idle
	ka, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ka.Close()
	if _, err := io.WriteString(ka, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(ka)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("keep-alive request: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	expectClosed := func(name string, c net.Conn, r io.Reader) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(idle + 3*time.Second))
		_, err := r.Read(make([]byte, 1))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("%s: still open after the idle timeout", name)
		}
	}
	expectClosed("keep-alive connection", ka, br)
	for i, c := range open {
		expectClosed(fmt.Sprint("idle connection ", i), c, c)
	}
	if n := ln.count(); n != 0 {
		t.Errorf("server still tracks %d connections", n)
	}

	// headers are bounded
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\n\r\n")
	resp, err = http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB of headers: %v %v", resp, err)
	}
}

// The defaults carry every timeout and bound.
func TestHTTPDefaultLimits(t *testing.T) {
	srv := newHTTPServer(http.NewServeMux(), defaultHTTPLimits)
	if srv.ReadHeaderTimeout == 0 || srv.ReadTimeout == 0 || srv.WriteTimeout == 0 || srv.IdleTimeout == 0 ||
		srv.MaxHeaderBytes == 0 || srv.MaxHeaderBytes > 64<<10 {
		t.Errorf("server %+v", srv)
	}
	if defaultHTTPLimits.maxConns == 0 || defaultHTTPLimits.maxConns > 1024 {
		t.Errorf("maxConns %d", defaultHTTPLimits.maxConns)
	}
}

// openFDs counts this process's descriptors (0 where /proc is missing).
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(ents)
}
