package queue

import (
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
