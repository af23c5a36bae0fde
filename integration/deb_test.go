package integration

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestDebPackage builds the Debian package with `make deb`, installs it on
// this machine with dpkg (as root), checks what it put where (files,
// modes, owners, the system user, the conffile), runs the installed binary,
// reinstalls it over a changed config (an upgrade keeps the
// administrator's config and the data), removes it (config, data and user
// stay) and purges it (config and data go; the user stays, as Debian's own
// services leave theirs). The service is never started: the package does
// not start it on install, and this machine has no systemd running anyway.
// Whatever happens, the cleanup purges the package and deletes the user if
// the test created it.
func TestDebPackage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("installs a package with dpkg: needs root")
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("not a Debian system: no dpkg")
	}
	const (
		bin    = "/usr/bin/xmppgw"
		conf   = "/etc/xmppgw/xmppgw.yaml"
		data   = "/var/lib/xmppgw"
		unit   = "/lib/systemd/system/xmppgw.service"
		mask   = "/etc/systemd/system/xmppgw.service"
		docDir = "/usr/share/doc/xmppgw"
	)
	// Never touch an xmppgw this machine has for real.
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "xmppgw").CombinedOutput(); err == nil && !strings.Contains(string(out), "not-installed") {
		t.Fatalf("the package xmppgw is on this machine (%s): refusing to touch it; dpkg --purge xmppgw first", out)
	}
	for _, p := range []string{bin, "/etc/xmppgw", data, unit, mask} {
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s exists (an xmppgw installed by hand?): refusing to touch it", p)
		}
	}
	_, userErr := user.Lookup("xmppgw")
	_, groupErr := user.LookupGroup("xmppgw")
	userExisted, groupExisted := userErr == nil, groupErr == nil

	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	outDir, buildDir := t.TempDir(), t.TempDir()
	mustRun(t, "make", "-C", root, "--no-print-directory", "deb", "DEB_OUT="+outDir, "DEB_BUILD="+buildDir)
	debs, _ := filepath.Glob(filepath.Join(outDir, "xmppgw_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %v in %s, want one package", debs, outDir)
	}
	deb := debs[0]
	if f := mustRun(t, "dpkg-deb", "-f", deb, "Package", "Depends"); !strings.Contains(f, "Package: xmppgw") || !strings.Contains(f, "adduser") {
		t.Fatalf("control fields:\n%s", f)
	}

	t.Cleanup(func() {
		if out, err := exec.Command("dpkg", "--purge", "xmppgw").CombinedOutput(); err != nil {
			t.Errorf("cleanup: dpkg --purge: %v\n%s", err, out)
		}
		for _, p := range []string{"/etc/xmppgw", data} {
			_ = os.RemoveAll(p) // did not exist before the test
		}
		if dst, err := os.Readlink(mask); err == nil && dst == "/dev/null" {
			_ = os.Remove(mask)
		}
		if !userExisted {
			if out, err := exec.Command("userdel", "xmppgw").CombinedOutput(); err != nil {
				if _, lerr := user.Lookup("xmppgw"); lerr == nil {
					t.Errorf("cleanup: userdel xmppgw: %v\n%s", err, out)
				}
			}
		}
		if !groupExisted {
			if _, err := user.LookupGroup("xmppgw"); err == nil {
				if out, err := exec.Command("groupdel", "xmppgw").CombinedOutput(); err != nil {
					t.Errorf("cleanup: groupdel xmppgw: %v\n%s", err, out)
				}
			}
		}
	})

	// Install.
	out := mustRun(t, "dpkg", "-i", deb)
	if !strings.Contains(out, "systemctl enable --now xmppgw") {
		t.Errorf("dpkg -i says nothing of how to start the service:\n%s", out)
	}
	u, err := user.Lookup("xmppgw")
	if err != nil {
		t.Fatalf("no user xmppgw after install: %v", err)
	}
	g, err := user.LookupGroup("xmppgw")
	if err != nil {
		t.Fatalf("no group xmppgw after install: %v", err)
	}
	if uid, _ := strconv.Atoi(u.Uid); uid >= 1000 || uid == 0 || u.Gid != g.Gid || u.HomeDir != data {
		t.Errorf("user xmppgw: uid %s gid %s home %s; want a system uid, group xmppgw (%s), home %s", u.Uid, u.Gid, u.HomeDir, g.Gid, data)
	}
	if pw := mustRun(t, "getent", "passwd", "xmppgw"); !strings.HasSuffix(strings.TrimSpace(pw), ":/usr/sbin/nologin") {
		t.Errorf("user xmppgw can log in: %s", pw)
	}
	gid, _ := strconv.Atoi(g.Gid)
	uid, _ := strconv.Atoi(u.Uid)
	checkFile(t, bin, 0o755, 0, 0, false)
	checkFile(t, unit, 0o644, 0, 0, false)
	checkFile(t, "/etc/xmppgw", 0o755, 0, 0, true)
	checkFile(t, conf, 0o640, 0, gid, false)
	checkFile(t, data, 0o750, uid, gid, true)
	checkFile(t, docDir+"/README.md", 0o644, 0, 0, false)
	checkFile(t, docDir+"/examples/client.example.yaml", 0o644, 0, 0, false)
	if cf := mustRun(t, "dpkg-query", "-W", "-f=${Conffiles}", "xmppgw"); !strings.Contains(cf, conf) {
		t.Errorf("%s is not a conffile: %q", conf, cf)
	}
	unitText, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nUser=xmppgw\n", "\nGroup=xmppgw\n", "\nExecStart=/usr/bin/xmppgw run -c /etc/xmppgw/xmppgw.yaml\n",
		"\nExecStartPre=/usr/bin/xmppgw check-config -q -c /etc/xmppgw/xmppgw.yaml\n", "\nStateDirectory=xmppgw\n"} {
		if !strings.Contains(string(unitText), want) {
			t.Errorf("the installed unit lacks %q", strings.TrimSpace(want))
		}
	}
	if strings.Contains(string(unitText), "DynamicUser") || strings.Contains(string(unitText), "/usr/local/") {
		t.Errorf("the installed unit keeps the hand-install settings:\n%s", unitText)
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		mustRun(t, "systemd-analyze", "verify", unit)
	}
	// Not enabled, not started.
	if _, err := os.Lstat("/etc/systemd/system/multi-user.target.wants/xmppgw.service"); err == nil {
		t.Errorf("the service was enabled on install")
	}
	if pids := running(bin); len(pids) > 0 {
		t.Errorf("%s runs after install (pids %v)", bin, pids)
	}

	// The installed binary: the config is valid, its secret never printed;
	// the service user can read the config, others cannot.
	out = mustRun(t, bin, "check-config", "-c", conf)
	if !strings.Contains(out, conf+": valid") || strings.Contains(out, "change-me") {
		t.Errorf("check-config:\n%s", out)
	}
	mustRun(t, "runuser", "-u", "xmppgw", "--", bin, "check-config", "-q", "-c", conf)
	if out, err := exec.Command("runuser", "-u", "nobody", "--", bin, "check-config", "-q", "-c", conf).CombinedOutput(); err == nil {
		t.Errorf("user nobody can read %s:\n%s", conf, out)
	}
	if out := mustRun(t, bin, "version"); !strings.HasPrefix(out, "xmppgw ") || !strings.Contains(out, "go1.") {
		t.Errorf("version:\n%s", out)
	}

	// Reinstall (dpkg runs the upgrade path): the administrator's config
	// and the data stay, with their owners.
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "# changed by the administrator")
	f.Close()
	store := filepath.Join(data, "xmppgw.db")
	if err := os.WriteFile(store, []byte("store"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "dpkg", "-i", deb)
	if b, _ := os.ReadFile(conf); !strings.Contains(string(b), "# changed by the administrator") {
		t.Errorf("the upgrade replaced the administrator's %s", conf)
	}
	checkFile(t, conf, 0o640, 0, gid, false)
	checkFile(t, data, 0o750, uid, gid, true)
	if _, err := os.Stat(store); err != nil {
		t.Errorf("the upgrade lost the data: %v", err)
	}

	// Remove: the binary and the unit go; config, data and user stay.
	mustRun(t, "dpkg", "-r", "xmppgw")
	for _, p := range []string{bin, unit} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s is still there after dpkg -r", p)
		}
	}
	for _, p := range []string{conf, store} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("dpkg -r removed %s: %v", p, err)
		}
	}

	// Purge: config and data go too; the user stays.
	mustRun(t, "dpkg", "--purge", "xmppgw")
	for _, p := range []string{"/etc/xmppgw", data, mask} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s is still there after dpkg --purge", p)
		}
	}
	if out, _ := exec.Command("dpkg-query", "-W", "-f=${Status}", "xmppgw").CombinedOutput(); !strings.Contains(string(out), "no packages found") &&
		!strings.Contains(string(out), "not-installed") && !strings.Contains(string(out), "no information") {
		t.Errorf("dpkg still knows xmppgw after the purge: %s", out)
	}
	for _, dir := range []string{"/var/lib/systemd/deb-systemd-helper-enabled", "/var/lib/systemd/deb-systemd-helper-masked"} {
		if left, _ := filepath.Glob(filepath.Join(dir, "xmppgw*")); len(left) > 0 {
			t.Errorf("deb-systemd-helper state left after the purge: %v", left)
		}
	}
	if _, err := user.Lookup("xmppgw"); err != nil {
		t.Errorf("the purge deleted the system user: %v", err)
	}
}

// mustRun runs a command and returns its combined output; it fails the
// test if the command fails.
func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// checkFile checks the type, mode and owner of path.
func checkFile(t *testing.T, path string, mode os.FileMode, uid, gid int, dir bool) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Errorf("%s: %v", path, err)
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.IsDir() != dir || fi.Mode().Perm() != mode || int(st.Uid) != uid || int(st.Gid) != gid {
		t.Errorf("%s: %v owner %d:%d; want %v%v owner %d:%d", path, fi.Mode(), st.Uid, st.Gid,
			map[bool]string{true: "d", false: "-"}[dir], mode, uid, gid)
	}
}

// running returns the pids of the processes whose executable is exe.
func running(exe string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if dst, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil &&
			(dst == exe || dst == exe+" (deleted)") {
			pids = append(pids, pid)
		}
	}
	return pids
}
