package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"

	"mellium.im/xmpp/jid"

	"xmppgw/stanza"
)

// Validate checks every key and reports all problems at once, each naming
// its key. It never includes a secret's value.
func (c *Config) Validate() error {
	var errs []error
	for _, section := range []func(*Config) []error{
		validateXMPP, validateAMQP, validateOutbound, validateInbound,
		validatePresence, validateMUC, validateHTTP, validateLog,
	} {
		errs = append(errs, section(c)...)
	}
	return errors.Join(errs...)
}

// checkKeys applies the rows of keys.go to the keys of one section.
func (c *Config) checkKeys(section string) []error {
	var errs []error
	cv := reflect.ValueOf(c).Elem()
	for i := range keys {
		k := &keys[i]
		if k.section() != section || k.mode != "" && k.mode != c.XMPP.Mode {
			continue
		}
		v := k.field(cv)
		switch {
		case v.IsZero() && k.required:
			errs = append(errs, fmt.Errorf("%s: required in %s mode", k.name, k.mode))
		case v.IsZero() && k.optional:
		case k.check != nil:
			if err := k.check(v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", k.name, err))
			}
		}
	}
	return errs
}

// validateXMPP: what is required and checked depends on xmpp.mode, which
// the rows of keys.go say.
func validateXMPP(c *Config) []error { return c.checkKeys("xmpp") }

// validateAMQP also checks that the three queues are distinct.
func validateAMQP(c *Config) []error {
	errs := c.checkKeys("amqp")
	a := &c.AMQP
	names := map[string]string{}
	for _, q := range []struct{ key, name string }{
		{"amqp.out_queue", a.OutQueue}, {"amqp.in_queue", a.InQueue}, {"amqp.dead_letter_queue", a.DeadLetterQueue},
	} {
		if !validQueueName(q.name) {
			continue // reported by its check
		}
		if other, dup := names[q.name]; dup {
			errs = append(errs, fmt.Errorf("%s: %q is also %s", q.key, q.name, other))
		}
		names[q.name] = q.key
	}
	return errs
}

func validateOutbound(c *Config) []error { return c.checkKeys("outbound") }

// validateInbound checks each route: a localpart and a queue that is
// neither the outbound nor the dead-letter queue.
func validateInbound(c *Config) []error {
	errs := c.checkKeys("inbound")
	routes := make([]string, 0, len(c.Inbound.Routes))
	for k := range c.Inbound.Routes {
		routes = append(routes, k)
	}
	sort.Strings(routes)
	for _, local := range routes {
		q := c.Inbound.Routes[local]
		key := "inbound.routes." + local
		if !validLocalpart(local) {
			errs = append(errs, fmt.Errorf("%s: %q is not a valid localpart", key, local))
		}
		if !validQueueName(q) {
			errs = append(errs, fmt.Errorf("%s: must name a queue of 1 to 255 bytes", key))
		}
		if q == c.AMQP.OutQueue || q == c.AMQP.DeadLetterQueue {
			errs = append(errs, fmt.Errorf("%s: %q is the outbound or dead-letter queue", key, q))
		}
	}
	return errs
}

func validatePresence(c *Config) []error {
	errs := c.checkKeys("presence")
	if c.Presence.LeaseTTL != 0 && c.XMPP.Mode == stanza.ModeComponent && !IsStoreURL(c.Presence.Store) {
		errs = append(errs, errors.New("presence.lease_ttl: needs presence.store to be a postgres:// URL (the lease lives in that database)"))
	}
	return errs
}

// validateMUC checks each room: a bare room JID (local@service), written
// canonically, once; a nick that is a valid resourcepart.
func validateMUC(c *Config) []error {
	errs := c.checkKeys("muc")
	seen := map[string]int{}
	for i, r := range c.MUC.Rooms {
		key := fmt.Sprintf("muc.rooms[%d]", i)
		j, err := jid.Parse(r.JID)
		switch {
		case r.JID == "":
			errs = append(errs, fmt.Errorf("%s.jid: required (room@service)", key))
			continue
		case err != nil || j.Localpart() == "" || j.Resourcepart() != "":
			errs = append(errs, fmt.Errorf("%s.jid: %q is not a room JID (room@service, no nick)", key, r.JID))
			continue
		case j.String() != r.JID:
			errs = append(errs, fmt.Errorf("%s.jid: write %q as %q", key, r.JID, j.String()))
			continue
		}
		if prev, dup := seen[r.JID]; dup {
			errs = append(errs, fmt.Errorf("%s.jid: %q is also muc.rooms[%d]", key, r.JID, prev))
		}
		seen[r.JID] = i
		nick := c.RoomNick(r)
		if n, err := jid.New(j.Localpart(), j.Domainpart(), nick); nick == "" || err != nil || n.Resourcepart() != nick {
			errs = append(errs, fmt.Errorf("%s.nick: %q is not a valid nick", key, nick))
		}
	}
	return errs
}

func validateHTTP(c *Config) []error { return c.checkKeys("http") }

func validateLog(c *Config) []error { return c.checkKeys("log") }
