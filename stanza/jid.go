package stanza

import (
	"bytes"
	"errors"
	"strings"

	"mellium.im/xmpp/jid"
)

// localFast marks the bytes a localpart may hold on the fast path: printable
// ASCII that the UsernameCaseMapped profile leaves unchanged and RFC 7622
// §3.3.1 does not forbid (no upper case, none of "&'/:<>@).
var localFast = func() (t [256]bool) {
	for c := 0x21; c <= 0x7E; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = false
	}
	for _, c := range []byte(`"&'/:<>@`) {
		t[c] = false
	}
	return t
}()

// fastJID reports whether s is a plain ASCII JID that jid.Parse accepts and
// whose canonical form is s itself. A false result means "not known": the
// caller must ask jid.Parse. FuzzFastJID checks the claim against jid.Parse.
func fastJID(s []byte) bool {
	var local, domain, res []byte
	rest := s
	if i := bytes.IndexByte(rest, '/'); i >= 0 {
		res = rest[i+1:]
		rest = rest[:i]
		if len(res) == 0 || len(res) > 1023 {
			return false
		}
		for _, c := range res {
			if c < 0x21 || c > 0x7E {
				return false
			}
		}
	}
	if i := bytes.IndexByte(rest, '@'); i >= 0 {
		local, domain = rest[:i], rest[i+1:]
		if len(local) == 0 || len(local) > 1023 {
			return false
		}
		for _, c := range local {
			if !localFast[c] {
				return false
			}
		}
	} else {
		domain = rest
	}
	return fastDomain(domain)
}

// fastDomain accepts lower-case LDH host names that IDNA leaves unchanged.
func fastDomain(d []byte) bool {
	if len(d) == 0 || len(d) > 253 {
		return false
	}
	label := 0
	for i := 0; i <= len(d); i++ {
		if i == len(d) || d[i] == '.' {
			if label == 0 || label > 63 {
				return false
			}
			first, last := d[i-label], d[i-1]
			if first == '-' || last == '-' {
				return false
			}
			if label >= 4 && d[i-label+2] == '-' && d[i-label+3] == '-' {
				return false // xn-- and other reserved forms
			}
			label = 0
			continue
		}
		c := d[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
		label++
	}
	return true
}

// canonJID returns the canonical form of the JID s, using the fast path when
// it applies (the result then aliases s), or an error when s is not a valid
// JID.
func canonJID(s []byte) ([]byte, error) {
	if fastJID(s) {
		return s, nil
	}
	j, err := jid.Parse(string(s))
	if err != nil {
		return nil, err
	}
	// RFC 7622 §3.2: a final dot of the domainpart is stripped before the
	// JID is used; mellium keeps it.
	d := j.Domainpart()
	if strings.HasSuffix(d, ".") {
		d = strings.TrimSuffix(d, ".")
		if j, err = jid.New(j.Localpart(), d, j.Resourcepart()); err != nil {
			return nil, err
		}
	}
	// Labels of a domain name are never empty (RFC 5890): mellium takes
	// ".a", "a..b" and "a.." (which no server routes, and which do not
	// survive a second parse unchanged).
	if d == "" || d[0] == '.' || strings.HasSuffix(d, ".") || strings.Contains(d, "..") {
		return nil, errEmptyLabel
	}
	return []byte(j.String()), nil
}

// errEmptyLabel refuses a domainpart with an empty label.
var errEmptyLabel = errors.New("the domainpart has an empty label")

// splitJID splits a syntactically valid JID into its parts.
func splitJID(s []byte) (local, domain, res []byte) {
	if i := bytes.IndexByte(s, '/'); i >= 0 {
		res = s[i+1:]
		s = s[:i]
	}
	if i := bytes.IndexByte(s, '@'); i >= 0 {
		return s[:i], s[i+1:], res
	}
	return nil, s, res
}
