package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat (USER_HZ,
// `getconf CLK_TCK`), 100 on every Linux this runs on.
const clockTick = 10 * time.Millisecond

// ProcCPU returns the CPU time (user + system, all threads, including
// exited ones) of process pid from /proc/<pid>/stat. pid 0 means the
// calling process (measured with getrusage, to the microsecond).
func ProcCPU(pid int) (time.Duration, error) {
	if pid == 0 {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return 0, err
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may contain spaces: fields after it
	// start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return time.Duration(ut+st) * clockTick, nil
}

// FindProcess returns the pid of a process whose /proc/<pid>/comm is name
// (the first one found), or 0.
func FindProcess(name string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err == nil && string(bytes.TrimSpace(b)) == name {
			return pid
		}
	}
	return 0
}

// ListenerPID returns the pid of the process listening on the TCP port of
// the loopback or any address (from /proc/net/tcp{,6} and the sockets in
// /proc/<pid>/fd), or 0. It tells the machine's RabbitMQ from the other
// Erlang VMs that may run beside it (ejabberd, test clusters).
func ListenerPID(port int) int {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range bytes.Split(b, []byte("\n"))[1:] {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fs := bytes.Fields(line)
			if len(fs) < 10 || string(fs[3]) != "0A" { // LISTEN
				continue
			}
			_, hexPort, ok := bytes.Cut(fs[1], []byte(":"))
			if p, err := strconv.ParseUint(string(hexPort), 16, 32); ok && err == nil && int(p) == port {
				inodes["socket:["+string(fs[9])+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fds, _ := os.ReadDir("/proc/" + e.Name() + "/fd")
		for _, fd := range fds {
			if l, err := os.Readlink("/proc/" + e.Name() + "/fd/" + fd.Name()); err == nil && inodes[l] {
				return pid
			}
		}
	}
	return 0
}

// cpuSet samples the CPU time of several processes at once.
type cpuSet struct {
	names []string
	pids  []int
}

type cpuSample struct {
	at  time.Time
	cpu []time.Duration
	// syscr, syscw of the first process (the bridge) from /proc/<pid>/io.
	syscr, syscw int64
}

// procIO returns the read and write syscall counts of pid.
func procIO(pid int) (r, w int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return -1, -1
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(": "))
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(string(v), 10, 64)
		switch string(k) {
		case "syscr":
			r = n
		case "syscw":
			w = n
		}
	}
	return r, w
}

func (c *cpuSet) add(name string, pid int) {
	c.names = append(c.names, name)
	c.pids = append(c.pids, pid)
}

func (c *cpuSet) sample() cpuSample {
	s := cpuSample{at: time.Now(), cpu: make([]time.Duration, len(c.pids))}
	for i, pid := range c.pids {
		if pid < 0 {
			continue
		}
		d, err := ProcCPU(pid)
		if err != nil {
			d = -1
		}
		s.cpu[i] = d
	}
	if len(c.pids) > 0 && c.pids[0] > 0 {
		s.syscr, s.syscw = procIO(c.pids[0])
	}
	return s
}

// perItem returns the CPU µs per item of process name between a and b.
func (c *cpuSet) perItem(name string, a, b cpuSample, items int) float64 {
	for i, n := range c.names {
		if n == name {
			if a.cpu[i] < 0 || b.cpu[i] < 0 || items == 0 {
				return -1
			}
			return float64(b.cpu[i]-a.cpu[i]) / float64(time.Microsecond) / float64(items)
		}
	}
	return -1
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func mkdirTemp(dir, pattern string) (string, error) { return os.MkdirTemp(dir, pattern) }
