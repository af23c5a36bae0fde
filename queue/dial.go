package queue

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
	"unicode"

	amqp "github.com/rabbitmq/amqp091-go"
)

const (
	// heartbeat is the AMQP heartbeat interval we ask for: a dead broker or
	// a cut link is noticed within about twice this.
	heartbeat = 10 * time.Second
	// handshakeTimeout bounds the TCP/TLS/AMQP handshake when ctx has no
	// deadline.
	handshakeTimeout = 30 * time.Second
)

// dial opens one AMQP connection named name (shown in the management UI)
// to the first broker of list (one URL, or several separated by commas:
// the nodes of a cluster, in order of preference) that answers, and
// returns it with the URL that answered. Every dial walks the list from
// its first URL. ctx bounds the whole walk and nothing after it; each URL
// gets an equal share of the time left, so that a node that swallows
// packets cannot use up the time of the nodes after it. Errors never
// contain a password.
func dial(ctx context.Context, list, name string) (*amqp.Connection, string, error) {
	return dialWrapped(ctx, list, name, nil)
}

// dialWrapped is dial with the socket of the connection that answered
// passed through wrap (nil: used as it is).
func dialWrapped(ctx context.Context, list, name string, wrap func(net.Conn) net.Conn) (*amqp.Connection, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("queue: dial %s: %w", redactURL(list), err)
	}
	// amqp091 quotes a URL it cannot parse in its error, password and all.
	if err := CheckURLs(list); err != nil {
		return nil, "", fmt.Errorf("queue: dial %s: %w", redactURL(list), err)
	}
	urls := SplitURLs(list)
	errs := make([]error, 0, len(urls))
	for i, u := range urls {
		actx, cancel := shareOf(ctx, len(urls)-i)
		conn, err := dialOne(actx, u, name, wrap)
		cancel()
		if err == nil {
			return conn, u, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(urls) == 1 {
		return nil, "", errs[0]
	}
	return nil, "", fmt.Errorf("queue: none of the %d brokers answered: %w", len(urls), errors.Join(errs...))
}

// shareOf is ctx bounded by an equal share of its time left among n
// attempts (ctx itself when it has no deadline or n is 1).
func shareOf(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	d, ok := ctx.Deadline()
	if !ok || n <= 1 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, time.Until(d)/time.Duration(n))
}

// dialOne opens one AMQP connection to rawURL, which CheckURL accepted,
// over its socket passed through wrap (unless nil).
func dialOne(ctx context.Context, rawURL, name string, wrap func(net.Conn) net.Conn) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	if name != "" {
		props.SetClientConnectionName(name)
	}
	var (
		d    net.Dialer
		stop func() bool
	)
	cfg := amqp.Config{
		Heartbeat:  heartbeat,
		Locale:     "en_US",
		Properties: props,
		Dial: func(network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// The handshake runs without a context: bound it by a socket
			// deadline (cleared by amqp091 once the connection is open)
			// and cut it short if ctx is cancelled meanwhile.
			deadline, ok := ctx.Deadline()
			if !ok {
				deadline = time.Now().Add(handshakeTimeout)
			}
			if err := c.SetDeadline(deadline); err != nil {
				c.Close()
				return nil, err
			}
			stop = context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
			if wrap != nil {
				return wrap(c), nil
			}
			return c, nil
		},
	}
	conn, err := amqp.DialConfig(rawURL, cfg)
	if stop != nil && !stop() && err == nil {
		// ctx ended just after the handshake: the socket may carry a
		// deadline in the past now, so the connection is unusable.
		conn.Close()
		err = ctx.Err()
	}
	if err != nil {
		cerr := ctx.Err()
		if d, ok := ctx.Deadline(); ok && cerr == nil && !time.Now().Before(d) {
			// The socket deadline (= ctx's) fired a moment before ctx's
			// own timer.
			cerr = context.DeadlineExceeded
		}
		if cerr != nil && err != cerr {
			err = fmt.Errorf("%w (%w)", cerr, err)
		}
		return nil, fmt.Errorf("queue: dial %s: %w", redactURL(rawURL), scrubError(err, rawURL))
	}
	return conn, nil
}

// ErrURL marks an amqp.url that cannot be used. Its errors never quote the
// URL: a malformed URL cannot be reliably split into its password and the
// rest.
var ErrURL = errors.New("queue: invalid AMQP URL")

// SplitURLs splits list, one AMQP URL or several separated by commas (the
// nodes of a cluster), into its URLs, in order, without the spaces around
// each. A comma in a user name or password must be percent-encoded (%2C).
func SplitURLs(list string) []string {
	urls := strings.Split(list, ",")
	for i, u := range urls {
		urls[i] = strings.Trim(u, " ")
	}
	return urls
}

// CheckURLs is CheckURL for each URL of list (see SplitURLs). Its error
// says which URL of the list is wrong and why, quoting no part of list.
func CheckURLs(list string) error {
	urls := SplitURLs(list)
	if len(urls) == 1 {
		return CheckURL(urls[0])
	}
	for i, u := range urls {
		if u == "" {
			return fmt.Errorf("%w: URL %d of %d is empty (a comma too many?)", ErrURL, i+1, len(urls))
		}
		if err := CheckURL(u); err != nil {
			return fmt.Errorf("%w: URL %d of %d: %s", ErrURL, i+1, len(urls), strings.TrimPrefix(err.Error(), ErrURL.Error()+": "))
		}
	}
	return nil
}

// CheckURL reports whether rawURL is an AMQP URL that amqp091 parses the way
// its author meant: amqp[s]://user:password@host:port/vhost with every
// reserved character of the user name and password percent-encoded. It
// rejects what amqp091 would accept but split in the wrong place (a "#", or
// an "@" after the host), so that no part of a password ends up as a host
// name in an error. The error wraps ErrURL and contains no part of rawURL.
func CheckURL(rawURL string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: %s (form: amqp[s]://user:password@host:port/vhost; percent-encode "+
			"reserved characters of the user name and password: @ %%40, # %%23, / %%2F, ? %%3F, : %%3A, %% %%25, space %%20, comma %%2C)", ErrURL, why)
	}
	if strings.IndexFunc(rawURL, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return bad("it contains white space or a control character")
	}
	if !strings.HasPrefix(rawURL, "amqp://") && !strings.HasPrefix(rawURL, "amqps://") {
		return bad("it must start with amqp:// or amqps://")
	}
	if strings.Contains(rawURL, "#") {
		return bad("it contains #")
	}
	p, err := url.Parse(rawURL)
	if err != nil {
		var esc url.EscapeError
		var host url.InvalidHostError
		switch {
		case errors.As(err, &esc):
			return bad("it contains an invalid percent-encoding")
		case errors.As(err, &host):
			return bad("its host contains an invalid character")
		}
		return bad("it cannot be parsed (an invalid port, or a reserved character in the user name or password)")
	}
	if strings.Contains(p.EscapedPath(), "@") || strings.Contains(p.RawQuery, "@") {
		return bad("it contains @ after the host (an @, / or ? in the user name or password)")
	}
	if p.Hostname() == "" {
		return bad("it names no host")
	}
	if _, err := amqp.ParseURI(rawURL); err != nil {
		// The URL parsed above: what is left are the port and the query
		// parameters, whose values may still be quoted.
		return bad("its port or a query parameter is invalid (heartbeat, connection_timeout and channel_max take integers)")
	}
	return nil
}

// redactURL returns rawURL with its password replaced by "xxxxx". A URL that
// CheckURL rejects is reduced to its scheme and what follows its last "@"
// (the host and vhost): a password's reserved characters may have split it
// anywhere before that.
//
// A list of URLs (see SplitURLs) is redacted URL by URL when every URL of
// it passes CheckURL; otherwise as one malformed URL, which hides
// everything before its last "@".
func redactURL(rawURL string) string {
	if strings.Contains(rawURL, ",") && CheckURLs(rawURL) == nil {
		urls := SplitURLs(rawURL)
		for i, u := range urls {
			urls[i] = redactURL(u)
		}
		return strings.Join(urls, ",")
	}
	if CheckURL(rawURL) == nil {
		if p, err := url.Parse(rawURL); err == nil {
			return p.Redacted()
		}
	}
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok || scheme == "" || strings.IndexFunc(scheme, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.')
	}) >= 0 {
		return "<unparseable url>"
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = "xxxxx@" + rest[i+1:]
	}
	return fmt.Sprintf("%s://%s", scheme, strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return '?'
		}
		return r
	}, rest))
}

// scrubURL replaces rawURL and its user information in s. It is the last
// guard for error texts of libraries that may quote the URL.
func scrubURL(s, rawURL string) string {
	if rawURL == "" {
		return s
	}
	s = strings.ReplaceAll(s, rawURL, redactURL(rawURL))
	_, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return s
	}
	i := strings.LastIndex(rest, "@")
	if i < 0 {
		return s
	}
	userinfo := rest[:i]
	_, pass, _ := strings.Cut(userinfo, ":")
	for _, secret := range []string{userinfo, pass} {
		if len(secret) < 4 {
			continue
		}
		s = strings.ReplaceAll(s, secret, "xxxxx")
		if dec, err := url.PathUnescape(secret); err == nil && len(dec) >= 4 {
			s = strings.ReplaceAll(s, dec, "xxxxx")
		}
	}
	return s
}

// scrubError returns err, or when its text quotes a part of rawURL's user
// information an error with that part replaced. errors.Is still finds a
// context error and amqp091's *Error through it.
func scrubError(err error, rawURL string) error {
	msg := err.Error()
	if clean := scrubURL(msg, rawURL); clean != msg {
		return &scrubbedError{msg: clean, err: err}
	}
	return err
}

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }

// Is and As look through; Unwrap is not offered, so that printing the
// unwrapped error cannot bring the quoted password back.
func (e *scrubbedError) Is(target error) bool { return errors.Is(e.err, target) }
func (e *scrubbedError) As(target any) bool   { return errors.As(e.err, target) }
