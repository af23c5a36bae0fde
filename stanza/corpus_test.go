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
	write := func(fuzz string, i int, lines ...string) {
		dir := filepath.Join("testdata", "fuzz", fuzz)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		s := "go test fuzz v1\n"
		for _, l := range lines {
			s += l + "\n"
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range fuzzSeeds {
		write("FuzzAppend", i, "[]byte("+strconv.Quote(s)+")", "bool(false)")
		write("FuzzAppend", 100+i, "[]byte("+strconv.Quote(s)+")", "bool(true)")
	}
	for i, s := range decodeSeeds {
		write("FuzzDecodeMessage", i, "string("+strconv.Quote(s)+")")
	}
	for i, s := range jidSeeds {
		write("FuzzFastJID", i, "string("+strconv.Quote(s)+")")
	}
}
