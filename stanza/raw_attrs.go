package stanza

import (
	"encoding/xml"
	"strconv"
)

// rootAttrs checks and writes the attributes of the stanza's element: its
// type checked, from checked like an item's sender (the default sender
// written in component mode when there is none), to canonicalized, the id
// kept or derived like an item's, any others written like a child's.
func (w *rawWriter) rootAttrs(attrs []xml.Attr) *ItemError {
	from, to, id, typ := stanzaAttrs(attrs)
	if typ != nil && !rawTypeOK(w.info.Kind, typ.Value) {
		return badStanza("bad type " + excerpt(typ.Value))
	}
	presence := w.info.Kind == "presence"
	if presence {
		w.info.PresenceType = "available"
		if typ != nil {
			w.info.PresenceType = typ.Value
		}
	}
	if err := w.rootFrom(from, presence); err != nil {
		return err
	}
	if err := w.rootTo(to, presence); err != nil {
		return err
	}
	if err := w.rootID(id); err != nil {
		return err
	}
	var rest []xml.Attr
	for i := range attrs {
		a := &attrs[i]
		if a == from || a == to || a == id {
			continue
		}
		rest = append(rest, *a)
	}
	var err *ItemError
	w.dst, err = appendRawAttrs(w.dst, rest, &w.scope)
	return err
}

// stanzaAttrs returns the stanza attributes (in no namespace) among attrs,
// nil for those absent.
func stanzaAttrs(attrs []xml.Attr) (from, to, id, typ *xml.Attr) {
	for i := range attrs {
		a := &attrs[i]
		if a.Name.Space != "" {
			continue
		}
		switch a.Name.Local {
		case "from":
			from = a
		case "to":
			to = a
		case "id":
			id = a
		case "type":
			typ = a
		}
	}
	return from, to, id, typ
}

// rawTypeOK reports whether typ is a type attribute a stanza of kind may
// have.
func rawTypeOK(kind, typ string) bool {
	if kind == "message" {
		switch typ {
		case "chat", "normal", "headline", "groupchat", "error":
			return true
		}
		return false
	}
	switch typ {
	case "unavailable", "subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe", "error":
		return true
	}
	return false
}

// rootFrom writes the stanza's from: the one given, checked, or in
// component mode the default sender.
func (w *rawWriter) rootFrom(from *xml.Attr, presence bool) *ItemError {
	var f []byte
	switch {
	case from != nil:
		var err *ItemError
		if f, err = w.e.checkFrom([]byte(from.Value), false); err != nil {
			return err
		}
	case w.e.o.Mode == ModeComponent:
		f = w.e.defaultFrom
	default:
		return nil
	}
	w.dst = appendAttr(w.dst, " from='", f)
	if presence {
		w.info.From = string(f)
	}
	return nil
}

// rootTo writes the stanza's to, if any, in canonical form.
func (w *rawWriter) rootTo(to *xml.Attr, presence bool) *ItemError {
	if to == nil {
		return nil
	}
	canon, err := canonJID([]byte(to.Value))
	if err != nil {
		return itemErr(ReasonBadJID, "to "+excerpt(to.Value)+": "+errExcerpt(err))
	}
	w.dst = appendAttr(w.dst, " to='", canon)
	if presence {
		w.info.To = string(canon)
	}
	return nil
}

// rootID writes the stanza's id: the one given, or one derived like an
// item's.
func (w *rawWriter) rootID(id *xml.Attr) *ItemError {
	if id != nil {
		if id.Value == "" || len(id.Value) > maxIDBytes {
			return badStanza("bad id")
		}
		w.info.ID = id.Value
	} else {
		var err *ItemError
		if w.info.ID, err = w.e.stanzaID(w.dst, w.body, jstr{}, &w.meta); err != nil {
			return err
		}
	}
	w.dst = appendAttr(w.dst, " id='", w.info.ID)
	return nil
}

// appendRawAttrs writes the attributes of a child element. Namespaced
// attributes get generated prefixes declared on the element itself.
// The attribute names of attrs are unique (checked by the caller); their
// expanded names (namespace, local name) must be too, since two prefixes
// bound to one namespace would otherwise name the same attribute twice.
func appendRawAttrs(dst []byte, attrs []xml.Attr, scope *nsScope) ([]byte, *ItemError) {
	var prefixes []string // uri of generated prefix a<i>
	for i, a := range attrs {
		if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
			continue
		}
		if !validXMLString(a.Value) {
			return nil, itemErr(ReasonInvalidChar, "stanza holds a character XML cannot carry")
		}
		switch a.Name.Space {
		case "":
			dst = append(dst, ' ')
			dst = append(dst, a.Name.Local...)
		case "xml":
			dst = append(dst, " xml:"...)
			dst = append(dst, a.Name.Local...)
		default:
			uri, ok := scope.lookup(a.Name.Space)
			if !ok || a.Name.Space == "" {
				return nil, badStanza("undeclared namespace prefix " + excerpt(a.Name.Space))
			}
			for _, b := range attrs[:i] {
				if b.Name.Local != a.Name.Local || b.Name.Space == "" || b.Name.Space == "xml" || b.Name.Space == "xmlns" {
					continue
				}
				if u, _ := scope.lookup(b.Name.Space); u == uri {
					return nil, badStanza("attribute " + excerpt(a.Name.Local) + " twice in one namespace")
				}
			}
			p := -1
			for j, u := range prefixes {
				if u == uri {
					p = j
				}
			}
			if p < 0 {
				p = len(prefixes)
				prefixes = append(prefixes, uri)
				dst = append(dst, " xmlns:a"...)
				dst = strconv.AppendInt(dst, int64(p), 10)
				dst = appendAttr(dst, "='", uri)
			}
			dst = append(dst, " a"...)
			dst = strconv.AppendInt(dst, int64(p), 10)
			dst = append(dst, ':')
			dst = append(dst, a.Name.Local...)
		}
		dst = appendAttr(dst, "='", a.Value)
	}
	return dst, nil
}
