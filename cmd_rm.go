package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/hfcachefs/hfcachefs/cachecore"
)

var rmCommand = &command{
	name:    "rm",
	summary: "delete repos or revisions (hf cache rm), safely",
	usage:   "TARGET... [--cache-dir DIR] [--dry-run] [-y] [--format human|json]",
	help: `
Deletes what the targets name, with huggingface_hub's delete strategy:
  model/ORG/NAME, dataset/NAME, space/USER/NAME   a whole repo (case-insensitive)
  hf://ORG/NAME, hf://datasets/ORG/NAME, ...      a whole repo (repo-level URIs only)
  a full 40-hex commit hash                        one revision
A revision that is the last of its repo takes the repo with it. A hash held
by two repos is refused, naming both (say which with the repo's type/id).

Prints what will go and the size freed, asks before deleting unless -y; with
no terminal and no -y it refuses. --dry-run prints the plan only.
--format json prints the plan: blobs, refs, repos, snapshots (absolute paths),
expected_freed_size, not_found; and, when it ran, what was deleted.

Deletion order is refs, then snapshots, then blobs (a whole repo: its refs,
its revisions, then the folder in one rename), so an interrupted deletion
never leaves a ref to a missing commit; nothing outside the cache directory
is deleted or followed; each blob goes under huggingface_hub's download lock.`,
}

var pruneCommand = &command{
	name:    "prune",
	summary: "delete detached revisions and leftover .incomplete downloads",
	usage:   "[--cache-dir DIR] [--dry-run] [-y] [--format human|json]",
	help: `
Deletes every revision no ref points to (a repo made only of such revisions
goes whole) and every leftover blobs/*.incomplete file, as 'hf cache prune'.
Revisions are chosen per repo, so a commit hash shared by two repos is no
obstacle. Asks before deleting unless -y; refuses without a terminal.`,
}

func init() {
	rmCommand.run = runRm
	pruneCommand.run = runPrune
	register(rmCommand)
	register(pruneCommand)
}

var fullHash = regexp.MustCompile(`^[0-9a-fA-F]{40}$`)

type deleteFlags struct {
	cache   cacheDirOption
	output  outputOptions
	dryRun  bool
	yes     bool
	targets []string
}

func (d *deleteFlags) parse(env *cliEnv, cmd *command, args []string) error {
	fs := newFlags(env, cmd)
	d.cache.AddFlags(fs)
	fs.BoolVar(&d.dryRun, "dry-run", false, "show what would be deleted, delete nothing")
	fs.BoolVarP(&d.yes, "yes", "y", false, "do not ask for confirmation")
	d.output.AddFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if cmd == pruneCommand && fs.NArg() > 0 {
		return usageErrorf("unexpected argument %q", fs.Arg(0))
	}
	if cmd == rmCommand && fs.NArg() == 0 {
		return usageErrorf("Missing argument 'TARGETS...'.")
	}
	d.targets = fs.Args()
	return nil
}

// resolveTargets maps rm's targets to selections, as hf cache rm does,
// but refusing a bare hash that several repos hold.
func resolveTargets(info *cachecore.CacheInfo, targets []string) ([]cachecore.Selection, []string, error) {
	byID := map[string]*cachecore.RepoInfo{}
	byHash := map[string][]*cachecore.RepoInfo{}
	for _, repo := range info.Repos {
		byID[strings.ToLower(repo.CacheID())] = repo
		for _, rev := range repo.Revisions {
			h := strings.ToLower(rev.CommitHash)
			byHash[h] = append(byHash[h], repo)
		}
	}
	selected := map[*cachecore.RepoInfo]map[*cachecore.RevisionInfo]bool{}
	add := func(repo *cachecore.RepoInfo, revs ...*cachecore.RevisionInfo) {
		if selected[repo] == nil {
			selected[repo] = map[*cachecore.RevisionInfo]bool{}
		}
		for _, r := range revs {
			selected[repo][r] = true
		}
	}
	var missing []string
	for _, raw := range targets {
		t := strings.TrimSpace(raw)
		if t == "" {
			continue
		}
		if fullHash.MatchString(t) {
			repos := byHash[strings.ToLower(t)]
			switch len(repos) {
			case 0:
				missing = append(missing, raw)
			case 1:
				for _, rev := range repos[0].Revisions {
					if strings.EqualFold(rev.CommitHash, t) {
						add(repos[0], rev)
					}
				}
			default:
				var ids []string
				for _, r := range repos {
					ids = append(ids, r.CacheID())
				}
				return nil, nil, fmt.Errorf("revision %s is held by %d repos (%s): name the repo to delete it from, or delete the repos by id", t, len(repos), strings.Join(ids, ", "))
			}
			continue
		}
		id := t
		if strings.HasPrefix(t, "hf://") {
			var err error
			if id, err = repoIDFromURI(t); err != nil {
				return nil, nil, err
			}
		}
		repo := byID[strings.ToLower(id)]
		if repo == nil {
			missing = append(missing, raw)
			continue
		}
		add(repo, repo.Revisions...)
	}
	var sel []cachecore.Selection
	for repo, revs := range selected {
		s := cachecore.Selection{Repo: repo}
		for _, rev := range repo.Revisions {
			if revs[rev] {
				s.Revisions = append(s.Revisions, rev)
			}
		}
		sel = append(sel, s)
	}
	sort.Slice(sel, func(i, j int) bool { return sel[i].Repo.RepoPath < sel[j].Repo.RepoPath })
	return sel, missing, nil
}

// repoIDFromURI turns a repo-level hf:// URI into "type/id".
func repoIDFromURI(uri string) (string, error) {
	rest := strings.TrimPrefix(uri, "hf://")
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	repoType := "model"
	switch parts[0] {
	case "models", "datasets", "spaces":
		repoType = strings.TrimSuffix(parts[0], "s")
		parts = parts[1:]
	case "buckets":
		return "", errors.New("Only repository hf:// URIs are supported by `hfcachefs rm`.")
	}
	if len(parts) == 0 || parts[0] == "" || len(parts) > 2 || strings.Contains(rest, "@") {
		return "", errors.New("Only repo-level hf:// URIs are supported by `hfcachefs rm` for now.")
	}
	return repoType + "/" + strings.Join(parts, "/"), nil
}

// printSelection is print_cache_selected_revisions: repos by (type, id
// lower), revisions by hash.
func printSelection(o *out, sel []cachecore.Selection) {
	sorted := append([]cachecore.Selection(nil), sel...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i].Repo, sorted[j].Repo
		if a.RepoType != b.RepoType {
			return a.RepoType < b.RepoType
		}
		return strings.ToLower(a.RepoID) < strings.ToLower(b.RepoID)
	})
	for _, s := range sorted {
		if len(s.Revisions) == len(s.Repo.Revisions) {
			o.text(fmt.Sprintf("  - %s (entire repo)", s.Repo.CacheID()))
			continue
		}
		o.text(fmt.Sprintf("  - %s:", s.Repo.CacheID()))
		for _, rev := range s.Revisions {
			refs := "(detached)"
			if len(rev.Refs) > 0 {
				refs = strings.Join(rev.Refs, " ")
			}
			o.text(fmt.Sprintf("      %s [%s] %s", rev.CommitHash, refs, formatSize(rev.SizeOnDisk)))
		}
	}
}

// countSelection is summarize_deletions: whole repos, revisions of the
// others, all revisions.
func countSelection(sel []cachecore.Selection) (repos, partial, total int) {
	for _, s := range sel {
		total += len(s.Revisions)
		if len(s.Revisions) == len(s.Repo.Revisions) {
			repos++
		} else {
			partial += len(s.Revisions)
		}
	}
	return
}

func runRm(env *cliEnv, args []string) error {
	var d deleteFlags
	if err := d.parse(env, rmCommand, args); err != nil {
		return err
	}
	mode, err := d.output.mode()
	if err != nil {
		return err
	}
	o := newOut(env, mode, d.output.noTruncate)
	info, err := d.cache.scan(env)
	if err != nil {
		return err
	}
	sel, missing, err := resolveTargets(info, d.targets)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		o.warning("Could not find in cache:\n  - " + strings.Join(missing, "\n  - "))
	}
	plan := info.PlanDeletion(sel)
	plan.NotFound = missing
	if len(sel) == 0 {
		if mode == modeJSON {
			return printPlanJSON(env, plan, nil, d.dryRun)
		}
		o.text("Nothing to delete.")
		return nil
	}
	repos, partial, total := countSelection(sel)
	var what []string
	if repos > 0 {
		what = append(what, fmt.Sprintf("%d repo(s)", repos))
	}
	if partial > 0 {
		what = append(what, fmt.Sprintf("%d revision(s)", partial))
	}
	if len(what) == 0 {
		what = append(what, fmt.Sprintf("%d revision(s)", total))
	}
	size := plan.ExpectedFreedSizeStr()
	o.text(fmt.Sprintf("About to delete %s totalling %s.", strings.Join(what, " and "), size))
	printSelection(o, sel)
	if d.dryRun {
		if mode == modeJSON {
			return printPlanJSON(env, plan, nil, true)
		}
		o.result("Dry run: no files were deleted.", kv{"dry_run", true}, kv{"repos", repos}, kv{"revisions", total}, kv{"size", size})
		return nil
	}
	if err := o.confirm("Proceed with deletion?", d.yes); err != nil {
		return err
	}
	rep, err := executePlan(env, o, plan)
	if err != nil {
		return err
	}
	if mode == modeJSON {
		return printPlanJSON(env, plan, rep, false)
	}
	o.result(fmt.Sprintf("Deleted %d repo(s) and %d revision(s); freed %s.", repos, total, size),
		kv{"repos_deleted", repos}, kv{"revisions_deleted", total}, kv{"freed", size})
	return nil
}

// executePlan runs a strategy, telling what upstream logs (and what we
// refused) on stderr.
func executePlan(env *cliEnv, o *out, plan *cachecore.DeleteStrategy) (*cachecore.ExecuteReport, error) {
	rep, err := plan.Execute(cachecore.ExecuteOptions{
		Log:        func(msg string) { o.warning(msg) },
		BeforeStep: stepDelayHook(env),
	})
	if err != nil {
		return rep, err
	}
	fmt.Fprintf(env.stderr, "Cache deletion done. Saved %s.\n", plan.ExpectedFreedSizeStr())
	return rep, nil
}

func printPlanJSON(env *cliEnv, plan *cachecore.DeleteStrategy, rep *cachecore.ExecuteReport, dryRun bool) error {
	doc := struct {
		cachecore.PlanDoc
		DryRun  bool                `json:"dry_run"`
		Deleted []string            `json:"deleted,omitempty"`
		Missing []string            `json:"missing,omitempty"`
		Skipped []cachecore.Skipped `json:"skipped,omitempty"`
	}{PlanDoc: plan.Document(), DryRun: dryRun}
	if rep != nil {
		doc.Deleted, doc.Missing, doc.Skipped = rep.Deleted, rep.Missing, rep.Skipped
	}
	enc := json.NewEncoder(env.stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

func runPrune(env *cliEnv, args []string) error {
	var d deleteFlags
	if err := d.parse(env, pruneCommand, args); err != nil {
		return err
	}
	mode, err := d.output.mode()
	if err != nil {
		return err
	}
	o := newOut(env, mode, d.output.noTruncate)
	info, err := d.cache.scan(env)
	if err != nil {
		return err
	}
	var sel []cachecore.Selection
	revisions := 0
	for _, repo := range info.Repos {
		var detached []*cachecore.RevisionInfo
		for _, rev := range repo.Revisions {
			if len(rev.Refs) == 0 {
				detached = append(detached, rev)
			}
		}
		if len(detached) > 0 {
			sel = append(sel, cachecore.Selection{Repo: repo, Revisions: detached})
			revisions += len(detached)
		}
	}
	incomplete := info.IncompleteFiles
	if len(sel) == 0 && len(incomplete) == 0 {
		if mode == modeJSON {
			return printPlanJSON(env, info.PlanDeletion(nil), nil, d.dryRun)
		}
		o.text("No unreferenced revisions or incomplete downloads found. Nothing to prune.")
		return nil
	}
	plan := info.PlanDeletion(sel)
	totalFreed := plan.ExpectedFreedSize + info.IncompleteSizeOnDisk()
	var what []string
	if revisions > 0 {
		what = append(what, fmt.Sprintf("%d unreferenced revision(s)", revisions))
	}
	if len(incomplete) > 0 {
		what = append(what, fmt.Sprintf("%d incomplete download(s)", len(incomplete)))
	}
	summary := strings.Join(what, " and ")
	size := formatSize(totalFreed)
	o.text(fmt.Sprintf("About to delete %s (%s total).", summary, size))
	printSelection(o, sel)
	if d.dryRun {
		if mode == modeJSON {
			return printPlanJSON(env, plan, nil, true)
		}
		o.result("Dry run: no files were deleted.", kv{"dry_run", true}, kv{"revisions", revisions}, kv{"incomplete", len(incomplete)}, kv{"size", size})
		return nil
	}
	if err := o.confirm("Proceed?", d.yes); err != nil {
		return err
	}
	var rep *cachecore.ExecuteReport
	if len(sel) > 0 {
		if rep, err = executePlan(env, o, plan); err != nil {
			return err
		}
	}
	for _, f := range incomplete {
		if err := cachecore.RemoveIncomplete(info.CacheDir, f.FilePath); err != nil && !errors.Is(err, os.ErrNotExist) {
			o.warning(fmt.Sprintf("Could not delete incomplete file %s: %v", f.FilePath, err))
		}
	}
	if mode == modeJSON {
		return printPlanJSON(env, plan, rep, false)
	}
	o.result(fmt.Sprintf("Deleted %s; freed %s.", summary, size),
		kv{"revisions_deleted", revisions}, kv{"incomplete_deleted", len(incomplete)}, kv{"freed", size})
	return nil
}

// stepDelayHook lets crash tests kill a deletion between two steps: with
// HFCACHEFS_TEST_DELETE_STEP_DELAY=200ms each step waits that long first.
func stepDelayHook(env *cliEnv) func(kind, path string) error {
	d, err := time.ParseDuration(env.getenv("HFCACHEFS_TEST_DELETE_STEP_DELAY"))
	if err != nil || d <= 0 {
		return nil
	}
	return func(kind, path string) error {
		fmt.Fprintf(env.stderr, "step: %s %s\n", kind, path)
		time.Sleep(d)
		return nil
	}
}
