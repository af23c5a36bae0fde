package queue

import (
	"errors"
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	for i, tc := range []struct{ in, want string }{
		0: {"amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:xxxxx@127.0.0.1:5672/"},
		1: {"amqps://u:s3cr%40t@rabbit.example.org/vhost", "amqps://u:xxxxx@rabbit.example.org/vhost"},
		2: {"amqp://127.0.0.1:5672/", "amqp://127.0.0.1:5672/"},
		3: {"amqp://user@host/", "amqp://user@host/"},
		4: {"amqp://u:bad%zzsecret@host:5672/", "amqp://xxxxx@host:5672/"},
		5: {"u:secret@host", "<unparseable url>"},
	} {
		got := RedactURL(tc.in)
		if got != tc.want {
			t.Errorf("%d: RedactURL(%q) = %q, want %q", i, tc.in, got, tc.want)
		}
		if strings.Contains(got, "secret") || strings.Contains(got, "s3cr") {
			t.Errorf("%d: %q leaks the password", i, got)
		}
	}
}

// redactURL is strict: whatever a password's unencoded reserved characters
// do to the parse, no part of it survives.
func TestRedactURLStrict(t *testing.T) {
	for i, tc := range []struct{ in, want string }{
		0:  {"amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:xxxxx@127.0.0.1:5672/"},
		1:  {"amqps://u:s3cr%40t@rabbit.example.org/vhost", "amqps://u:xxxxx@rabbit.example.org/vhost"},
		2:  {"amqp://127.0.0.1:5672/", "amqp://127.0.0.1:5672/"},
		3:  {"amqp://user@host/", "amqp://user@host/"},
		4:  {"amqp://u:bad%zzsecret@host:5672/", "amqp://xxxxx@host:5672/"},
		5:  {"u:secret@host", "<unparseable url>"},
		6:  {"amqp://u:sec@ret#secret@host/", "amqp://xxxxx@host/"},
		7:  {"amqp://u:12/secret@host/", "amqp://xxxxx@host/"},
		8:  {"amqp://u:sec ret@host/", "amqp://xxxxx@host/"},
		9:  {"amqp://u:secret\n@host/", "amqp://xxxxx@host/"},
		10: {"u:secret@x://host", "<unparseable url>"},
		11: {"amqp://u:sec@ret@host/v", "amqp://u:xxxxx@host/v"},
		12: {"http://u:secret@host/", "http://xxxxx@host/"},
		13: {"amqp://u:secret?x@host/", "amqp://xxxxx@host/"},
	} {
		got := redactURL(tc.in)
		if got != tc.want {
			t.Errorf("%d: redactURL(%q) = %q, want %q", i, tc.in, got, tc.want)
		}
		if strings.Contains(got, "secret") || strings.Contains(got, "s3cr") || strings.Contains(got, "ret") {
			t.Errorf("%d: %q leaks the password", i, got)
		}
	}
}

func TestCheckURL(t *testing.T) {
	for i, tc := range []struct {
		in string
		ok bool
	}{
		0:  {"amqp://guest:guest@127.0.0.1:5672/", true},
		1:  {"amqps://u:p%40ss%23w%2Fo%3Fr%25d%20x@rabbit.example.org/vhost?heartbeat=5", true},
		2:  {"amqp://rabbit", true},
		3:  {"amqp://u:p@ss@rabbit/", true}, // amqp091 splits at the last @
		4:  {"amqp://u:p%zz@rabbit/", false},
		5:  {"amqp://u:p ss@rabbit/", false},
		6:  {"amqp://u:p#ss@rabbit/", false},
		7:  {"amqp://u:p@ss#x@rabbit/", false},
		8:  {"amqp://u:12/ss@rabbit/", false},
		9:  {"amqp://u:p?ss@rabbit/", false},
		10: {"http://u:p@rabbit/", false},
		11: {"u:p@rabbit", false},
		12: {"amqp://u:p@rabbit:port/", false},
		13: {"amqp://u:p@rabbit/?heartbeat=often", false},
		14: {"amqp://", false},
		15: {"amqp://u:p@rabbit/%40vhost", true},
		16: {"", false},
	} {
		err := CheckURL(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("%d: CheckURL(%q) = %v, want ok %v", i, tc.in, err, tc.ok)
			continue
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrURL) {
			t.Errorf("%d: %v does not wrap ErrURL", i, err)
		}
		// No part of the URL, not even the host, is quoted.
		if strings.Contains(err.Error(), "rabbit") || strings.Contains(err.Error(), "p@ss") {
			t.Errorf("%d: %q quotes the URL", i, err)
		}
	}
}
