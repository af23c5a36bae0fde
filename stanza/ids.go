package stanza

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
)

// stanzaID returns the id to write for an item: its id member f when
// non-empty, else the AMQP message-id, else an id derived from the body and
// the properties (hashID), so that a redelivered item keeps its id. The
// spare capacity of dst is used as scratch space.
func (e *Encoder) stanzaID(dst []byte, body []byte, f jstr, m *Meta) (string, *ItemError) {
	if f.nonEmpty() {
		s, err := decodeShort(f, "id", maxIDBytes)
		if err != nil {
			return "", err
		}
		return string(s), nil
	}
	if m.MessageID != "" {
		if len(m.MessageID) > maxIDBytes || !validXMLString(m.MessageID) {
			return "", itemErr(ReasonBadField, "AMQP message-id is not usable as a stanza id: "+excerpt(m.MessageID))
		}
		return m.MessageID, nil
	}
	return hashID(dst, body, m), nil
}

// hashID derives a stanza id from the body and the AMQP properties that do
// not change on redelivery: the first 12 bytes (96 bits) of SHA-256 in
// unpadded base64url, 16 characters. The id is written twice per message
// (the id attribute and the origin-id) and parsed by the server each time:
// 96 bits keep collisions out of reach (one in 10^12 even among 10^8
// items) at half the bytes of 32 hex digits. The spare capacity of dst is
// used as scratch space.
func hashID(dst, body []byte, m *Meta) string {
	n0 := len(dst)
	b := append(dst, "xmppgw-id\x00"...)
	b = appendLV(b, body)
	b = appendLV(b, m.CorrelationID)
	b = appendLV(b, m.Type)
	b = appendLV(b, m.AppID)
	b = appendLV(b, m.UserID)
	b = appendLV(b, m.ContentType)
	if !m.Timestamp.IsZero() {
		b = binary.BigEndian.AppendUint64(b, uint64(m.Timestamp.Unix()))
	}
	sum := sha256.Sum256(b[n0:])
	var out [16]byte
	base64.RawURLEncoding.Encode(out[:], sum[:12])
	return string(out[:])
}

// appendLV appends s after its length (8 bytes, big-endian), so that no
// two different lists of fields hash the same bytes.
func appendLV[T string | []byte](b []byte, s T) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}
