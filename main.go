// Command hfcachefs shows, uses, shares and trims the Hugging Face Hub
// cache: exact huggingface_hub cache semantics on the command line, and the
// cache as a FUSE filesystem of virtual views.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/hfcachefs/hfcachefs/cachecore"
)

// cliEnv is what a command may touch of the process, so tests can run
// commands in-process.
type cliEnv struct {
	stdout, stderr io.Writer
	stdin          io.Reader
	lookupEnv      func(string) (string, bool)
}

func (e *cliEnv) getenv(k string) string {
	v, _ := e.lookupEnv(k)
	return v
}

// command is one subcommand.
type command struct {
	name    string
	aliases []string
	summary string
	usage   string // after "hfcachefs NAME "
	help    string // long description, printed by --help
	run     func(env *cliEnv, args []string) error
}

var commands []*command

func register(c *command) { commands = append(commands, c) }

// usageError is a bad invocation: exit status 2, as click's UsageError.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// exitError carries an exit status with an optional message.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func main() {
	env := &cliEnv{stdout: os.Stdout, stderr: os.Stderr, stdin: os.Stdin, lookupEnv: os.LookupEnv}
	os.Exit(run(env, os.Args[1:]))
}

func run(env *cliEnv, args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		if len(args) > 1 && args[0] == "help" {
			return run(env, []string{args[1], "--help"})
		}
		printUsage(env.stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "version" {
		fmt.Fprintln(env.stdout, "hfcachefs "+version)
		return 0
	}
	cmd := findCommand(args[0])
	if cmd == nil {
		fmt.Fprintf(env.stderr, "Error: unknown command %q\n\n", args[0])
		printUsage(env.stderr)
		return 2
	}
	return reportError(env, cmd, runCommand(env, cmd, args[1:]))
}

// runCommand runs a command; a panic becomes an error message, not a
// trace (HFCACHEFS_DEBUG=1 keeps the trace for bug reports).
func runCommand(env *cliEnv, cmd *command, args []string) (err error) {
	if env.getenv("HFCACHEFS_DEBUG") == "" {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("internal error: %v (set HFCACHEFS_DEBUG=1 for the trace, and please report it)", r)
			}
		}()
	}
	return cmd.run(env, args)
}

const version = "0.1.0"

func findCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
		for _, a := range c.aliases {
			if a == name {
				return c
			}
		}
	}
	return nil
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "hfcachefs: the Hugging Face Hub cache, exactly as huggingface_hub sees it, and as a filesystem.")
	fmt.Fprintln(w, "\nUsage: hfcachefs COMMAND [ARGS]...   (hfcachefs COMMAND --help for details)")
	fmt.Fprintln(w, "\nCommands:")
	sorted := append([]*command(nil), commands...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nThe cache is --cache-dir, else HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub,")
	fmt.Fprintln(w, "$XDG_CACHE_HOME/huggingface/hub or ~/.cache/huggingface/hub, as huggingface_hub picks it.")
}

func reportError(env *cliEnv, cmd *command, err error) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(env.stderr, "Error: "+ee.msg)
		}
		return ee.code
	}
	if errors.Is(err, pflag.ErrHelp) {
		return 0
	}
	if errors.Is(err, errAborted) {
		fmt.Fprintln(env.stderr, "Aborted!")
		return 1
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(env.stderr, "Usage: hfcachefs %s %s\nTry 'hfcachefs %s --help' for help.\n\nError: %s\n", cmd.name, cmd.usage, cmd.name, ue.msg)
		return 2
	}
	fmt.Fprintln(env.stderr, "Error: "+err.Error())
	return 1
}

// newFlags makes a command's flag set with --help wired to its usage.
func newFlags(env *cliEnv, cmd *command) *pflag.FlagSet {
	fs := pflag.NewFlagSet(cmd.name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(env.stdout, "Usage: hfcachefs %s %s\n\n%s\n\nOptions:\n", cmd.name, cmd.usage, strings.TrimSpace(cmd.help))
		fs.SetOutput(env.stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parseFlags parses args, printing help on --help and turning flag errors
// into usage errors.
func parseFlags(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err // pflag has printed the usage
		}
		return usageErrorf("%s", err.Error())
	}
	return nil
}

// cacheDirOption is --cache-dir, shared by every cache command.
type cacheDirOption struct {
	dir  string
	held held // what .trash holds keep, as housekeeping found it
}

func (o *cacheDirOption) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.dir, "cache-dir", "", "the hub cache directory (default: from HF_HUB_CACHE, HF_HOME, ... as huggingface_hub)")
}

// path is the cache dir the user meant, not yet resolved.
func (o *cacheDirOption) path(env *cliEnv) string {
	if o.dir != "" {
		return o.dir
	}
	return cachecore.HubCacheDir(env.lookupEnv)
}

// scan runs the scan, with the CLI's wording for a missing cache.
func (o *cacheDirOption) scan(env *cliEnv) (*cachecore.CacheInfo, error) {
	o.held = housekeeping(env, o.path(env))
	info, err := cachecore.Scan(o.path(env))
	var nd *cachecore.NotADirectoryError
	if errors.As(err, &nd) {
		return nil, fmt.Errorf("Invalid value. %s", err.Error())
	}
	var nf *cachecore.CacheNotFoundError
	if errors.As(err, &nf) {
		return nil, fmt.Errorf("Cache directory not found: %s", nf.CacheDir)
	}
	return info, err
}
