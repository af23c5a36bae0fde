package e2e

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// peakRSS returns the peak resident set size of process pid in MiB
// (VmHWM of /proc/<pid>/status), or -1 if it cannot be read. Read it just
// before the process is stopped: the kernel keeps the high-water mark for
// the life of the process.
func peakRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		v, ok := bytes.CutPrefix(line, []byte("VmHWM:"))
		if !ok {
			continue
		}
		f := bytes.Fields(v) // "12345 kB"
		if len(f) != 2 || string(f[1]) != "kB" {
			return -1
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return -1
		}
		return float64(kb) / 1024
	}
	return -1
}
