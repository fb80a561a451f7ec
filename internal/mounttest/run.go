package mounttest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// NoHang as Options.Hang: the child runs until it exits or the test ends.
const NoHang time.Duration = -1

// Stream names a child's output stream (Options.Lines).
type Stream int

const (
	NoLines Stream = iota // no Lines channel
	Stdout
	Stderr
)

// Options says how to run a child process.
type Options struct {
	Dir   string        // working directory; "/" when empty (never a mount)
	Env   []string      // added to the test's environment and the C locale
	Stdin io.Reader     // nil: /dev/null
	Hang  time.Duration // from its start; ChildTimeout when 0, none when NoHang
	Lines Stream        // the stream whose lines Child.WaitLine reads
}

// Result is what a child process did.
type Result struct {
	Stdout, Stderr string
	Code           int    // exit status; -1 when it did not exit by itself
	Signal         string // the signal that ended it, if one did
	Err            error  // it could not start, or waiting failed
	TimedOut       bool   // still running after its hang timeout: killed
	Hang           string // then: where it was stuck, which FUSE connections were aborted
}

func (r Result) String() string {
	s := fmt.Sprintf("exit %d", r.Code)
	if r.Signal != "" {
		s += " (" + r.Signal + ")"
	}
	if r.Err != nil {
		s += fmt.Sprintf(" (error: %v)", r.Err)
	}
	if r.TimedOut {
		s += " (TIMED OUT, killed)"
	}
	s += fmt.Sprintf("\nstdout: %q\nstderr: %q", Clip(r.Stdout, 4000), Clip(r.Stderr, 4000))
	if r.Hang != "" {
		s += "\n" + r.Hang
	}
	return s
}

// Child is a child process started by Start.
type Child struct {
	Cmd  *exec.Cmd
	hang time.Duration

	mu             sync.Mutex
	stdout, stderr bytes.Buffer
	all            bytes.Buffer // both, as written
	partial        []byte       // the Lines stream's unfinished line
	lines          chan string

	done     chan struct{} // closed when Cmd.Wait returned
	err      error         // Cmd.Start's or Cmd.Wait's
	timer    *time.Timer
	hung     string        // set when the hang timeout fired
	abandon  chan struct{} // closed when a hung child outlived its kill
	abandonO sync.Once
}

// Start starts a child as Options say (see the package doc); the test
// fails on nothing here: a child that cannot start has Result().Err. A
// child still running when the test ends is killed (its process group:
// it is ours).
func Start(t testing.TB, o Options, name string, args ...string) *Child {
	t.Helper()
	c := &Child{hang: o.Hang, done: make(chan struct{}), abandon: make(chan struct{})}
	if c.hang == 0 {
		c.hang = ChildTimeout
	}
	c.Cmd = exec.Command(name, args...)
	c.Cmd.Dir = o.Dir
	if c.Cmd.Dir == "" {
		c.Cmd.Dir = "/"
	}
	c.Cmd.Env = append(append(os.Environ(), "LC_ALL=C.UTF-8", "LANG=C.UTF-8", "LANGUAGE="), o.Env...)
	c.Cmd.Stdin = o.Stdin
	c.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A grandchild keeping an output open does not hold Wait up.
	c.Cmd.WaitDelay = 10 * time.Second
	if o.Lines != NoLines {
		c.lines = make(chan string, 1024)
	}
	c.Cmd.Stdout = &childWriter{c: c, buf: &c.stdout, lines: o.Lines == Stdout}
	c.Cmd.Stderr = &childWriter{c: c, buf: &c.stderr, lines: o.Lines == Stderr}
	if c.err = c.Cmd.Start(); c.err != nil {
		c.finish()
		return c
	}
	if c.hang > 0 {
		c.timer = time.AfterFunc(c.hang, c.onHang)
	}
	go func() {
		err := c.Cmd.Wait()
		c.mu.Lock()
		c.err = err
		c.mu.Unlock()
		c.finish()
	}()
	pid := c.Cmd.Process.Pid
	t.Cleanup(func() {
		if c.exited() {
			return
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL) // our own child's group, by pid
		select {
		case <-c.done:
			return
		case <-time.After(30 * time.Second):
		}
		diag := StuckDiag(pid)
		t.Errorf("%q does not die after SIGKILL (stuck in the kernel); aborted FUSE connections %v\n%s", c.Cmd.Args, AbortOurMounts(t), diag)
		select {
		case <-c.done:
		case <-time.After(30 * time.Second):
			t.Errorf("%q still runs after the FUSE connections were aborted", c.Cmd.Args)
		}
	})
	return c
}

// finish ends the Lines channel and marks the child done.
func (c *Child) finish() {
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Lock()
	if c.lines != nil {
		if len(c.partial) > 0 {
			c.sendLine(string(c.partial))
			c.partial = nil
		}
		close(c.lines)
	}
	c.mu.Unlock()
	close(c.done)
}

func (c *Child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// onHang runs when the hang timeout passes: it records where the child
// and our FUSE servers are stuck, aborts our FUSE connections to free
// it, kills its process group and gives it 30 s to go.
func (c *Child) onHang() {
	if c.exited() {
		return
	}
	pid := c.Cmd.Process.Pid
	diag := StuckDiag(pid)
	aborted, failures := abortOurMounts()
	note := fmt.Sprintf("%q hung for %v (a deadlocked mount?); aborted the FUSE connections of %v to free it", c.Cmd.Args, c.hang, aborted)
	if len(failures) > 0 {
		note += "; could not abort: " + strings.Join(failures, "; ")
	}
	note += "\n" + diag
	c.mu.Lock()
	c.hung = note
	c.mu.Unlock()
	_ = syscall.Kill(-pid, syscall.SIGKILL) // our own child's group, by pid
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.mu.Lock()
		c.hung += "\n(the child still runs after SIGKILL: its output is what it wrote so far)"
		c.mu.Unlock()
		c.abandonO.Do(func() { close(c.abandon) })
	}
}

// childWriter keeps one output stream of a child, and its lines when it
// is the Lines stream.
type childWriter struct {
	c     *Child
	buf   *bytes.Buffer
	lines bool
}

func (w *childWriter) Write(p []byte) (int, error) {
	c := w.c
	c.mu.Lock()
	defer c.mu.Unlock()
	w.buf.Write(p)
	c.all.Write(p)
	if w.lines {
		c.partial = append(c.partial, p...)
		for {
			i := bytes.IndexByte(c.partial, '\n')
			if i < 0 {
				break
			}
			c.sendLine(string(c.partial[:i]))
			c.partial = c.partial[i+1:]
		}
	}
	return len(p), nil
}

// sendLine queues a line for WaitLine; one that does not fit is dropped
// (it stays in Output).
func (c *Child) sendLine(l string) {
	select {
	case c.lines <- l:
	default:
	}
}

// Pid is the child's process id (0 if it did not start).
func (c *Child) Pid() int {
	if c.Cmd.Process == nil {
		return 0
	}
	return c.Cmd.Process.Pid
}

// Done is closed once the child has exited (and its output is complete).
func (c *Child) Done() <-chan struct{} { return c.done }

// Output is everything the child wrote so far, both streams.
func (c *Child) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.all.String()
}

// Result waits for the child's end (its hang timeout still applies: a
// hung child is killed, and given up on 30 s later) and says what it did.
func (c *Child) Result() Result {
	select {
	case <-c.done:
	case <-c.abandon:
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	r := Result{Stdout: c.stdout.String(), Stderr: c.stderr.String(), TimedOut: c.hung != "", Hang: c.hung}
	if !c.exited() {
		r.Code = -1
		return r
	}
	var ee *exec.ExitError
	switch {
	case c.err == nil:
	case errors.As(c.err, &ee):
		r.Code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.Signal = ws.Signal().String()
		}
	default:
		r.Code = -1
		r.Err = c.err
	}
	return r
}

// Wait waits at most timeout for the child to exit and returns its exit
// code (-1 if a signal ended it). A child still running then is stuck:
// the test fails, after aborting our FUSE connections to free it; so
// does a child that could not be run.
func (c *Child) Wait(t testing.TB, timeout time.Duration) int {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		diag := StuckDiag(c.Pid())
		t.Fatalf("child %q still runs after %v (aborted FUSE connections %v):\n%s\n%s", c.Cmd.Args, timeout, AbortOurMounts(t), diag, Clip(c.Output(), 8000))
	}
	r := c.Result()
	if r.Err != nil {
		t.Fatalf("child %q: %v", c.Cmd.Args, r.Err)
	}
	return r.Code
}

// WaitLine waits at most timeout for a line of the Lines stream that
// contains substr and returns it; the lines before it are consumed.
func (c *Child) WaitLine(t testing.TB, substr string, timeout time.Duration) string {
	t.Helper()
	if c.lines == nil {
		t.Fatalf("WaitLine on %q, started without Options.Lines", c.Cmd.Args)
	}
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				c.mu.Lock()
				err := c.err
				c.mu.Unlock()
				t.Fatalf("%q exited (%v) before printing %q:\n%s", c.Cmd.Args, err, substr, Clip(c.Output(), 8000))
			}
			if strings.Contains(l, substr) {
				return l
			}
		case <-deadline:
			t.Fatalf("%q printed no line with %q in %v:\n%s", c.Cmd.Args, substr, timeout, Clip(c.Output(), 8000))
		}
	}
}

// Run runs a child to its end or its hang timeout (see Start) and says
// what it did; the caller decides what is a failure.
func Run(t testing.TB, o Options, name string, args ...string) Result {
	t.Helper()
	return Start(t, o, name, args...).Result()
}

// Must runs a child (in "/", with the hang timeout given) that must exit
// 0, and returns its stdout.
func Must(t testing.TB, hang time.Duration, name string, args ...string) string {
	t.Helper()
	r := Run(t, Options{Hang: hang}, name, args...)
	if r.Code != 0 || r.TimedOut || r.Err != nil {
		t.Fatalf("%s %s: %s", name, Clip(fmt.Sprintf("%q", args), 1000), r)
	}
	return r.Stdout
}
