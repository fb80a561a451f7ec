package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"

	"github.com/hfcachefs/hfcachefs/cachecore"
)

var verifyCommand = &command{
	name:    "verify",
	summary: "re-hash blobs offline and compare with their etags",
	usage:   "[TARGET...] [--cache-dir DIR] [--format human|json] [--workers N]",
	help: `
Checks the cache without the network: every blob the selected repos link to
is hashed once and compared with its name, the etag huggingface_hub stored it
under (sha256 for 64-hex names, git blob sha1 for 40-hex ones). Names that are
neither (Xet hashes, files copied into a snapshot) are reported as not
verifiable, which is not a problem. Also reported: dangling snapshot links,
unreadable blobs, blobs that are not regular files (never opened), and links
resolving outside the cache directory (never read).

TARGETs are as for rm (type/id, hf:// repo URI, full commit hash); none means
the whole cache. A progress bar shows on a terminal.

Exit status: 0 when nothing is wrong, 1 when any problem was found or on error.`,
}

func init() {
	verifyCommand.run = runVerify
	register(verifyCommand)
}

func runVerify(env *cliEnv, args []string) error {
	fs := newFlags(env, verifyCommand)
	var cache cacheDirOption
	cache.AddFlags(fs)
	format := fs.String("format", "human", "human or json")
	workers := fs.Int("workers", 2, "blobs hashed in parallel")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *format != "human" && *format != "json" {
		return usageErrorf("Invalid value for '--format': '%s' is not one of 'human', 'json'.", *format)
	}
	o := newOut(env, modeHuman, true)
	opts := cachecore.VerifyOptions{Workers: *workers}
	info, err := cache.scan(env)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		sel, missing, err := resolveTargets(info, fs.Args())
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			o.warning("Could not find in cache:\n  - " + strings.Join(missing, "\n  - "))
		}
		opts.Repos = selectedRepos(sel)
	}
	if isTerminal(env.stderr) && *format == "human" {
		bar := progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(env.stderr),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription("hashing"),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionThrottle(100e6))
		opts.Progress = func(done, total int64) {
			if bar.GetMax64() != total {
				bar.ChangeMax64(total)
			}
			_ = bar.Set64(done)
		}
		defer bar.Finish()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := cachecore.Verify(ctx, info.CacheDir, opts)
	if err != nil {
		return err
	}
	if *format == "json" {
		enc := json.NewEncoder(env.stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		for _, r := range rep.Results {
			if !r.Status.Problem() {
				continue
			}
			line := fmt.Sprintf("%s %s/%s %s", strings.ToUpper(string(r.Status)), r.RepoType, r.RepoID, r.BlobPath)
			if r.Status == cachecore.VerifyMismatch {
				line += fmt.Sprintf(": expected %s (%s), got %s", r.Expected, r.Algorithm, r.Actual)
			} else if r.Detail != "" {
				line += ": " + r.Detail
			}
			fmt.Fprintln(env.stdout, paint(o.color, ansiRed, line))
			for _, p := range r.FilePaths {
				fmt.Fprintf(env.stdout, "    linked from %s\n", p)
			}
		}
		ok := rep.Checked - rep.Problems - rep.Unverifiable
		fmt.Fprintf(env.stdout, "Checked %d blob(s) (%s hashed): %d ok, %d not verifiable offline, %d problem(s).\n",
			rep.Checked, humanize.IBytes(uint64(rep.BytesHashed)), ok, rep.Unverifiable, rep.Problems)
	}
	if !rep.OK() {
		return &exitError{code: 1}
	}
	return nil
}

// selectedRepos narrows each repo to its selected revisions.
func selectedRepos(sel []cachecore.Selection) []*cachecore.RepoInfo {
	repos := []*cachecore.RepoInfo{}
	for _, s := range sel {
		r := *s.Repo
		r.Revisions = s.Revisions
		repos = append(repos, &r)
	}
	return repos
}
