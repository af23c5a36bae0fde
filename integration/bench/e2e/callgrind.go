package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Prosody under valgrind's callgrind: the instructions it executes in a
// window are exact and repeatable whatever else loads the machine, unlike
// its CPU time. Instrumentation is off from the start (the process runs at
// about nulgrind's speed while off) and switched on for each measured
// window only; the counts of the window are dumped into a file of their
// own, callgrind.out.<pid>.<part>, whose totals line is the window's Ir.
//
// --instr-atstart=no, not --collect-atstart=no: with collection off,
// switching instrumentation on counts nothing (every dump says 0).

// callgrindCommand is the command that runs Prosody (a Lua script) under
// callgrind, writing its dumps into dir.
func callgrindCommand(dir string) []string {
	return []string{"valgrind", "--tool=callgrind", "--instr-atstart=no",
		"--callgrind-out-file=" + filepath.Join(dir, "callgrind.out.%p"), "lua5.4", "/usr/bin/prosody"}
}

// callgrind controls the callgrind of one process.
type callgrind struct {
	dir string // where its dumps go
	pid int
}

// control runs callgrind_control with args on the process.
func (c *callgrind) control(args ...string) error {
	args = append(args, strconv.Itoa(c.pid))
	out, err := exec.Command("callgrind_control", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("callgrind_control %s: %v: %s", strings.Join(args, " "), err, out)
	}
	if !bytes.Contains(out, []byte("OK")) {
		return fmt.Errorf("callgrind_control %s: %s", strings.Join(args, " "), out)
	}
	return nil
}

// on zeroes the counters and switches instrumentation on: the start of a
// window.
func (c *callgrind) on() error {
	if err := c.control("-z"); err != nil {
		return err
	}
	return c.control("-i", "on")
}

// off switches instrumentation off, dumps, and returns the instructions
// (Ir) of the dump: the end of a window.
func (c *callgrind) off() (float64, error) {
	_, before, _ := newestPart(c.dir, c.pid)
	if err := c.control("-i", "off"); err != nil {
		return 0, err
	}
	if err := c.control("-d"); err != nil {
		return 0, err
	}
	// The dump is written by the time callgrind_control returns; allow
	// for a slow file system all the same.
	deadline := time.Now().Add(10 * time.Second)
	for {
		file, part, err := newestPart(c.dir, c.pid)
		if err == nil && part > before {
			f, err := os.Open(file)
			if err != nil {
				return 0, err
			}
			ir, err := parseCallgrindIr(f)
			f.Close()
			if err == nil {
				return float64(ir), nil
			}
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("%s: %w", file, err)
			}
		} else if time.Now().After(deadline) {
			return 0, fmt.Errorf("no new callgrind dump of pid %d in %s", c.pid, c.dir)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// newestPart returns the dump part of pid with the highest number in dir
// (callgrind.out.<pid>.<part>) and that number; 0 and an error if none.
func newestPart(dir string, pid int) (string, int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", 0, err
	}
	prefix := fmt.Sprintf("callgrind.out.%d.", pid)
	best, file := 0, ""
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(rest); err == nil && n > best {
			best, file = n, filepath.Join(dir, e.Name())
		}
	}
	if best == 0 {
		return "", 0, fmt.Errorf("no dump part of pid %d in %s", pid, dir)
	}
	return file, best, nil
}

// parseCallgrindIr returns the total Ir of a callgrind dump: its
// "totals:" line (the costs of this part), or the "summary:" line when
// it has no totals; the position of Ir among the values is taken from the
// "events:" line (Ir first when there is none).
func parseCallgrindIr(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	col := 0
	var totals, summary []string
	for sc.Scan() {
		line := sc.Text()
		key, val, ok := strings.Cut(line, ":")
		if !ok || strings.ContainsAny(key, " \t=") {
			continue
		}
		switch key {
		case "events":
			col = -1
			for i, ev := range strings.Fields(val) {
				if ev == "Ir" {
					col = i
				}
			}
			if col < 0 {
				return 0, errors.New("callgrind dump: no Ir among the events")
			}
		case "totals":
			totals = strings.Fields(val)
		case "summary":
			summary = strings.Fields(val)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	v, what := totals, "totals"
	if v == nil {
		v, what = summary, "summary"
	}
	if v == nil {
		return 0, errors.New("callgrind dump: no totals or summary line (incomplete?)")
	}
	if col >= len(v) {
		// Trailing zero costs may be left out.
		return 0, nil
	}
	n, err := strconv.ParseUint(v[col], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("callgrind dump: %s: %w", what, err)
	}
	return n, nil
}
