package xmlstrict

import (
	"sort"
	"strconv"
)

// namespaces applies Namespaces in XML to a start tag whose attributes are
// scanned: it brings the tag's declarations into scope, resolves the
// element's and the attributes' names, records the element and opens it.
func (c *checker) namespaces(off int, qname string, attrs []rawAttr) {
	mark := len(c.scope)
	// declarations first: they apply to the element's own names
	if c.declare(attrs); c.err != nil {
		return
	}
	space, local := c.elementName(off, qname)
	if c.err != nil {
		return
	}
	expanded := c.expandAttrs(attrs)
	if c.err != nil {
		return
	}
	if len(c.stack) == 0 {
		c.root = Root{Space: space, Local: local, Attrs: expanded}
	}
	if c.rec {
		c.recordStart(space, local, expanded)
	}
	c.stack = append(c.stack, open{qname, mark})
}

// declare checks every attribute name of a start tag and brings its
// namespace declarations into scope.
func (c *checker) declare(attrs []rawAttr) {
	for _, a := range attrs {
		p, l, ok := splitQName(a.qname)
		if !ok {
			c.failAt(a.off, "attribute name %s is not a QName", a.qname)
			return
		}
		switch {
		case p == "" && l == "xmlns":
			if a.value == XMLNamespace || a.value == XMLNSNamespace {
				c.failAt(a.off, "default namespace bound to a reserved namespace")
				return
			}
			c.scope = append(c.scope, decl{"", a.value})
		case p == "xmlns":
			switch {
			case l == "xmlns":
				c.failAt(a.off, "the xmlns prefix declared")
				return
			case l == "xml" && a.value != XMLNamespace:
				c.failAt(a.off, "the xml prefix bound to another namespace")
				return
			case l != "xml" && (a.value == XMLNamespace || a.value == XMLNSNamespace):
				c.failAt(a.off, "prefix %s bound to a reserved namespace", l)
				return
			case a.value == "":
				c.failAt(a.off, "prefix %s un-declared (empty namespace name)", l)
				return
			}
			c.scope = append(c.scope, decl{l, a.value})
		}
	}
}

// elementName resolves the element's qualified name, written at off.
func (c *checker) elementName(off int, qname string) (space, local string) {
	ep, el, ok := splitQName(qname)
	if !ok {
		c.failAt(off, "element name %s is not a QName", qname)
		return "", ""
	}
	if ep == "xmlns" {
		c.failAt(off, "element with the xmlns prefix")
		return "", ""
	}
	space, bound := c.lookup(ep)
	if !bound {
		c.failAt(off, "unbound prefix %s", ep)
		return "", ""
	}
	return space, el
}

// expandAttrs resolves the attributes other than declarations to expanded
// names, which must be unique. An attribute without a prefix is in no
// namespace.
func (c *checker) expandAttrs(attrs []rawAttr) []Attr {
	var expanded []Attr
	for _, a := range attrs {
		p, l, _ := splitQName(a.qname)
		if p == "xmlns" || p == "" && l == "xmlns" {
			continue
		}
		ns := ""
		if p != "" {
			var bound bool
			if ns, bound = c.lookup(p); !bound || ns == "" {
				c.failAt(a.off, "unbound prefix %s", p)
				return nil
			}
		}
		for _, x := range expanded {
			if x.Space == ns && x.Local == l {
				c.failAt(a.off, "attribute {%s}%s twice", ns, l)
				return nil
			}
		}
		expanded = append(expanded, Attr{ns, l, a.value})
	}
	return expanded
}

// recordStart writes the canonical line of a start element.
func (c *checker) recordStart(space, local string, attrs []Attr) {
	c.flush()
	sorted := append([]Attr(nil), attrs...)
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].Space != sorted[j].Space {
			return sorted[i].Space < sorted[j].Space
		}
		return sorted[i].Local < sorted[j].Local
	})
	c.out.WriteString("S {" + space + "}" + local)
	for _, a := range sorted {
		c.out.WriteString(" {" + a.Space + "}" + a.Local + "=" + strconv.Quote(a.Value))
	}
	c.out.WriteString("\n")
}

// lookup returns the namespace prefix is bound to.
func (c *checker) lookup(prefix string) (string, bool) {
	for i := len(c.scope) - 1; i >= 0; i-- {
		if c.scope[i].prefix == prefix {
			return c.scope[i].uri, true
		}
	}
	return "", false
}

// pop closes the open element, ending the scope of its declarations.
func (c *checker) pop() {
	top := c.stack[len(c.stack)-1]
	c.stack = c.stack[:len(c.stack)-1]
	c.scope = c.scope[:top.mark]
}

// splitQName splits a QName; ok is false for names with a stray colon.
func splitQName(q string) (prefix, local string, ok bool) {
	colon := -1
	for i := 0; i < len(q); i++ {
		if q[i] == ':' {
			if colon >= 0 {
				return "", "", false
			}
			colon = i
		}
	}
	if colon < 0 {
		return "", q, true
	}
	prefix, local = q[:colon], q[colon+1:]
	if prefix == "" || local == "" || !nameStart(local[0]) {
		return "", "", false
	}
	return prefix, local, true
}

func nameStart(ch byte) bool {
	return ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch == '_'
}
