package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A dump part as callgrind_control -d writes it with instrumentation off
// (valgrind 3.19): the summary line says 0, the totals line has the costs
// of the part.
const dumpPart = `version: 1
creator: callgrind-3.19.0
pid: 27757
cmd:  lua5.4 /usr/bin/prosody --config prosody.cfg.lua -F
part: 2


desc: I1 cache: 
desc: D1 cache: 
desc: LL cache: 

desc: Timerange: Basic block 2924485 - 6599292
desc: Trigger: dump

positions: line
events: Ir
summary: 0


ob=(1) /usr/lib/x86_64-linux-gnu/liblua5.4.so.5.4.4
fl=(1) ???
fn=(1) luaV_execute
0 28169000
cfn=(2) luaH_get
calls=3 0
0 392

totals: 28169392
`

func TestParseCallgrindIr(t *testing.T) {
	for _, tc := range []struct {
		name, dump string
		want       uint64
		err        bool
	}{
		{"totals over a zero summary", dumpPart, 28169392, false},
		{"summary alone", "events: Ir\nsummary: 1234\n", 1234, false},
		{"Ir second", "events: Dr Ir Dw\nsummary: 5 7 9\ntotals: 50 70 90\n", 70, false},
		{"no events line: Ir first", "totals: 42 1\n", 42, false},
		{"trailing zero costs left out", "events: Dr Ir\ntotals: 50\n", 0, false},
		{"a cost line with a colon in a name is not a key", "events: Ir\nfn=(3) a:b\ntotals: 8\n", 8, false},
		{"incomplete", "events: Ir\nfn=(1) f\n0 5\n", 0, true},
		{"no Ir", "events: Dr\ntotals: 5\n", 0, true},
		{"garbage", "events: Ir\ntotals: x\n", 0, true},
	} {
		got, err := parseCallgrindIr(strings.NewReader(tc.dump))
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%s: %d, %v; want %d, error %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

func TestNewestPart(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := newestPart(dir, 77); err == nil {
		t.Error("no parts: no error")
	}
	// The file of the final dump has no part number; another pid's parts
	// do not count; part 10 is newer than part 9.
	for _, f := range []string{"callgrind.out.77", "callgrind.out.77.1", "callgrind.out.77.9", "callgrind.out.77.10", "callgrind.out.78.11", "callgrind.out.77.x"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	file, part, err := newestPart(dir, 77)
	if err != nil || part != 10 || filepath.Base(file) != "callgrind.out.77.10" {
		t.Errorf("newestPart: %s %d %v; want callgrind.out.77.10, 10", file, part, err)
	}
}
