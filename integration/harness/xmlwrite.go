package harness

import (
	"encoding/xml"
	"strings"
)

// XML writing helpers: a Client re-serialises what it reads (Msg.Raw) and
// escapes what it sends.

const nsXML = "http://www.w3.org/XML/1998/namespace"

// writeStart writes the start tag s, declaring its namespace only where it
// differs from parentNS, attributes in double quotes.
func writeStart(b *strings.Builder, s xml.StartElement, parentNS string) {
	b.WriteByte('<')
	b.WriteString(s.Name.Local)
	if s.Name.Space != parentNS {
		b.WriteString(` xmlns="`)
		_ = xml.EscapeText(b, []byte(s.Name.Space))
		b.WriteByte('"')
	}
	for _, a := range s.Attr {
		switch a.Name.Space {
		case "":
			if a.Name.Local == "xmlns" {
				continue
			}
		case nsXML, "xml":
			b.WriteString(" xml:")
			b.WriteString(a.Name.Local)
			writeAttrValue(b, a.Value)
			continue
		case "xmlns":
			b.WriteString(" xmlns:")
			b.WriteString(a.Name.Local)
			writeAttrValue(b, a.Value)
			continue
		}
		b.WriteByte(' ')
		b.WriteString(a.Name.Local)
		writeAttrValue(b, a.Value)
	}
	b.WriteByte('>')
}

func writeAttrValue(b *strings.Builder, v string) {
	b.WriteString(`="`)
	_ = xml.EscapeText(b, []byte(v))
	b.WriteByte('"')
}

var escaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "'", "&apos;", `"`, "&quot;")

// escape escapes s for XML text or an attribute value in either quotes.
func escape(s string) string { return escaper.Replace(s) }
