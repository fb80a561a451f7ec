package mounttest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestUnderCI(t *testing.T) {
	for v, want := range map[string]bool{
		"": false, "false": false, "0": false, "FALSE": false, " false ": false,
		"true": true, "1": true, "yes": true, "TRUE": true, "github": true,
	} {
		t.Setenv("CI", v)
		if got := UnderCI(); got != want {
			t.Errorf("CI=%q: UnderCI() = %v, want %v", v, got, want)
		}
	}
}

// recTB records what SkipOrFail asks of a test.
type recTB struct {
	testing.TB
	fatal, skip string
}

func (r *recTB) Helper()                   {}
func (r *recTB) Fatalf(f string, a ...any) { r.fatal = fmt.Sprintf(f, a...) }
func (r *recTB) Skip(a ...any)             { r.skip = fmt.Sprint(a...) }

func TestSkipOrFail(t *testing.T) {
	for _, ci := range []string{"", "false", "0", "true", "1"} {
		t.Setenv("CI", ci)
		r := &recTB{TB: t}
		SkipOrFail(r, "no %s", "tool")
		if UnderCI() {
			if !strings.Contains(r.fatal, "no tool") {
				t.Errorf("CI=%q: not a failure (fatal %q, skip %q)", ci, r.fatal, r.skip)
			}
		} else if r.fatal != "" || r.skip != "no tool" {
			t.Errorf("CI=%q: fatal %q, skip %q; want a skip", ci, r.fatal, r.skip)
		}
	}
}

func TestParseMountinfo(t *testing.T) {
	data := `22 1 0:21 / /proc rw,nosuid shared:5 - proc proc rw
97 29 0:52 / /tmp/a\040b/mnt rw,nosuid,nodev,relatime shared:51 master:3 - fuse.hfcachefs hfcachefs rw,user_id=0
bad line
`
	got := ParseMountinfo(data)
	if len(got) != 2 {
		t.Fatalf("got %d entries, want 2: %+v", len(got), got)
	}
	if e := got[1]; e.Dev != "0:52" || e.Mountpoint != "/tmp/a b/mnt" || e.FSType != "fuse.hfcachefs" {
		t.Errorf("entry = %+v", e)
	}
	if ok, err := Mounted("/proc"); err != nil || !ok {
		t.Errorf("Mounted(/proc) = %v, %v", ok, err)
	}
	if ok, _ := Mounted(t.TempDir()); ok {
		t.Errorf("a fresh temp dir is mounted")
	}
}

func TestRun(t *testing.T) {
	r := Run(t, Options{Env: []string{"X=y"}}, "sh", "-c", `pwd; echo "$X"; echo err >&2; exit 3`)
	if r.Stdout != "/\ny\n" || r.Stderr != "err\n" || r.Code != 3 || r.TimedOut || r.Err != nil {
		t.Errorf("Run: %s", r)
	}
	dir := t.TempDir()
	if r := Run(t, Options{Dir: dir}, "pwd"); strings.TrimSpace(r.Stdout) != dir {
		t.Errorf("pwd in %s: %s", dir, r)
	}
	if r := Run(t, Options{}, filepath.Join(dir, "missing")); r.Err == nil || r.Code != -1 {
		t.Errorf("a missing program: %s", r)
	}
	if r := Run(t, Options{Stdin: strings.NewReader("in")}, "cat"); r.Stdout != "in" {
		t.Errorf("cat of stdin: %s", r)
	}
}

func TestRunHang(t *testing.T) {
	start := time.Now()
	// The group is killed: the sleeping grandchild does not hold the run.
	r := Run(t, Options{Hang: 300 * time.Millisecond}, "sh", "-c", "sleep 60 & echo started; wait")
	if !r.TimedOut || r.Code != -1 || r.Signal == "" || !strings.Contains(r.Hang, "hung for") || r.Stdout != "started\n" {
		t.Errorf("a hung child: %s", r)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the hung child took %v to end", d)
	}
}

func TestChildLines(t *testing.T) {
	c := Start(t, Options{Hang: NoHang, Lines: Stderr}, "sh", "-c", `echo out; echo one >&2; echo two >&2; printf three >&2`)
	if l := c.WaitLine(t, "tw", 10*time.Second); l != "two" {
		t.Errorf("WaitLine = %q", l)
	}
	if l := c.WaitLine(t, "three", 10*time.Second); l != "three" {
		t.Errorf("WaitLine of the unfinished last line = %q", l)
	}
	if code := c.Wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit %d", code)
	}
	if out := c.Output(); !strings.Contains(out, "out\n") || !strings.Contains(out, "one\n") {
		t.Errorf("Output = %q", out)
	}
}

func TestModuleRoot(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(ModuleRoot(), "go.mod"))
	if err != nil || modulePath(data) != Module {
		t.Errorf("ModuleRoot() = %s: go.mod %v %q", ModuleRoot(), err, modulePath(data))
	}
}
