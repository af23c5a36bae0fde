package stanza

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestWriteSeedCorpus regenerates testdata/fuzz from the seed lists when
// STANZA_WRITE_CORPUS=1; otherwise it is skipped.
func TestWriteSeedCorpus(t *testing.T) {
	if os.Getenv("STANZA_WRITE_CORPUS") != "1" {
		t.Skip("set STANZA_WRITE_CORPUS=1 to regenerate testdata/fuzz")
	}
	write := func(fuzz string, i int, vals ...any) {
		dir := filepath.Join("testdata", "fuzz", fuzz)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		s := "go test fuzz v1\n"
		for _, v := range vals {
			switch v := v.(type) {
			case []byte:
				s += "[]byte(" + strconv.Quote(string(v)) + ")\n"
			case string:
				s += "string(" + strconv.Quote(v) + ")\n"
			default:
				s += fmt.Sprintf("%T(%v)\n", v, v)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, s := range fuzzSeeds {
		for _, m := range metaSeeds {
			for _, client := range []bool{false, true} {
				write("FuzzAppend", n, []byte(s), client, m.id, m.typ, m.ts)
				n++
			}
		}
	}
	for i, s := range rawSeeds {
		write("FuzzRawStanza", 2*i, s, false)
		write("FuzzRawStanza", 2*i+1, s, true)
	}
	for i, s := range decodeSeeds {
		write("FuzzDecodeMessage", i, s)
	}
	for i, s := range bytesSeeds {
		write("FuzzDecodeMessageBytes", 2*i, s.in, uint8(0))
		write("FuzzDecodeMessageBytes", 2*i+1, s.in, uint8(1))
	}
	for i, s := range presenceSeeds {
		write("FuzzDecodePresence", i, s)
	}
	for i, s := range jidSeeds {
		write("FuzzFastJID", i, s)
	}
	for i, s := range detailSeeds {
		write("FuzzDetail", i, s.vals()...)
	}
	for i, s := range eventSeeds {
		write("FuzzEventJSON", i, s.vals()...)
	}
	for i, s := range builderSeeds {
		write("FuzzBuilders", i, s.vals()...)
	}
}
