// Package trash turns the cache's delete strategy into receipts: what went
// (repo, revisions, refs, blobs, bytes), kept outside the cache folder, and
// with a hold, the deleted paths themselves, moved aside on the same file
// system so they can be restored until the hold expires.
package trash

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hfcachefs/hfcachefs/cachecore"
)

// Receipt states.
const (
	StateDeleted  = "deleted"  // gone for good
	StateHeld     = "held"     // moved aside until HoldUntil; restorable
	StateRestored = "restored" // put back
	StatePurged   = "purged"   // the hold expired: gone for good
	StatePending  = "pending"  // written before anything moved
	StateDeleting = "deleting" // out of the cache; blobs still going
)

// ReceiptRevision is one revision a receipt covers.
type ReceiptRevision struct {
	Commit string   `json:"commit"`
	Refs   []string `json:"refs"`
}

// Receipt is what a deletion through .trash did.
type Receipt struct {
	Name              string              `json:"name"`
	RepoID            string              `json:"repo_id"`
	RepoType          string              `json:"repo_type"`
	RepoFolder        string              `json:"repo_folder"`
	WholeRepo         bool                `json:"whole_repo"`
	Revisions         []ReceiptRevision   `json:"revisions"`
	Refs              []string            `json:"refs"`
	Snapshots         []string            `json:"snapshots"`
	Blobs             []string            `json:"blobs"`
	Repos             []string            `json:"repos"`
	BytesFreed        int64               `json:"bytes_freed"`
	BytesFreedStr     string              `json:"bytes_freed_str"`
	When              time.Time           `json:"when"`
	State             string              `json:"state"`
	HoldUntil         *time.Time          `json:"hold_until,omitempty"`
	HeldIn            string              `json:"held_in,omitempty"`
	Note              string              `json:"note,omitempty"`
	Skipped           []cachecore.Skipped `json:"skipped,omitempty"`
	RestoreNotes      []string            `json:"restore_notes,omitempty"`
	CacheDir          string              `json:"cache_dir"`
	ExpectedFreedNote string              `json:"-"`
}

// Store keeps the receipts of one cache (outside it, under
// $XDG_STATE_HOME) and, with a hold, the held paths (beside the cache
// folder, on its file system, where huggingface_hub never looks).
type Store struct {
	CacheDir string
	StateDir string
	HoldRoot string        // "" without a hold
	Hold     time.Duration // 0: delete at once

	mu      sync.Mutex      // protects the following and the receipt files
	dropped map[string]bool // receipts whose receipt.json was removed; the folder stays listed until rmdir
}

// ErrNoHold is returned by Restore for a receipt with nothing held.
var ErrNoHold = cachecore.ErrNoHold

// Open prepares the store of a cache (cacheDir resolved). With hold > 0
// the hold area must be on the cache's file system outside the hub
// folder: a hub folder that is a mount root, or whose parent is not
// writable, is refused.
func Open(cacheDir string, hold time.Duration, env cachecore.Env) (*Store, error) {
	s := &Store{CacheDir: cacheDir, StateDir: stateDir(cacheDir, env), Hold: hold, dropped: map[string]bool{}}
	id := filepath.Base(s.StateDir)
	if isWithin(s.StateDir, cacheDir) {
		return nil, fmt.Errorf("the trash state folder %s would be inside the cache %s: set XDG_STATE_HOME elsewhere", s.StateDir, cacheDir)
	}
	if err := os.MkdirAll(filepath.Join(s.StateDir, "receipts"), 0o700); err != nil {
		return nil, fmt.Errorf("trash state folder: %w", err)
	}
	if hold > 0 {
		parent := filepath.Dir(cacheDir)
		var cst, pst syscall.Stat_t
		if err := syscall.Stat(cacheDir, &cst); err != nil {
			return nil, err
		}
		if err := syscall.Stat(parent, &pst); err != nil {
			return nil, err
		}
		if cst.Dev != pst.Dev || parent == cacheDir {
			return nil, fmt.Errorf("--trash-hold needs room beside the cache on its file system, but %s is a mount root: held files could not be moved aside without copying", cacheDir)
		}
		if err := syscall.Access(parent, 2|1); err != nil {
			return nil, fmt.Errorf("--trash-hold needs to write beside the cache, in %s: %v", parent, err)
		}
		s.HoldRoot = filepath.Join(parent, ".hfcachefs-hold-"+filepath.Base(cacheDir), id)
		if err := os.MkdirAll(s.HoldRoot, 0o700); err != nil {
			return nil, fmt.Errorf("--trash-hold: %w", err)
		}
		// The parent may be writable by others (a shared cache's folder):
		// a hold folder someone else made, or a symlink planted there,
		// would receive the deleted files.
		for _, p := range []string{filepath.Dir(s.HoldRoot), s.HoldRoot} {
			if err := ownFolder(p); err != nil {
				return nil, fmt.Errorf("--trash-hold: %w", err)
			}
		}
	}
	return s, nil
}

// ownFolder checks that p is a real folder of this user that nobody else
// may write.
func ownFolder(p string) error {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return err
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFDIR || st.Uid != uint32(os.Geteuid()) || st.Mode&0o022 != 0 {
		return fmt.Errorf("%s is not a folder of this user that only it may write (owner %d, mode %o): refusing to hold deleted files there", p, st.Uid, st.Mode&0o7777)
	}
	return nil
}

// OpenExisting opens the store of a cache only if it has one already (a
// read command must not create state for a cache it merely looks at).
func OpenExisting(cacheDir string, env cachecore.Env) (*Store, bool) {
	dir := stateDir(cacheDir, env)
	if fi, err := os.Stat(filepath.Join(dir, "receipts")); err != nil || !fi.IsDir() {
		return nil, false
	}
	return &Store{CacheDir: cacheDir, StateDir: dir, dropped: map[string]bool{}}, true
}

// stateDir is where a cache's receipts are kept.
func stateDir(cacheDir string, env cachecore.Env) string {
	sum := sha256.Sum256([]byte(cacheDir))
	id := hex.EncodeToString(sum[:8])
	stateHome, ok := env("XDG_STATE_HOME")
	if !ok || stateHome == "" {
		home, _ := env("HOME")
		if home == "" {
			home, _ = os.UserHomeDir()
		}
		stateHome = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(stateHome, "hfcachefs", id)
}

func isWithin(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// ReceiptsDir is the folder of the receipt files.
func (s *Store) ReceiptsDir() string { return filepath.Join(s.StateDir, "receipts") }

func (s *Store) receiptFile(name string) string {
	sum := sha256.Sum256([]byte(name))
	return filepath.Join(s.StateDir, "receipts", hex.EncodeToString(sum[:12])+".json")
}

// ReceiptFile is where the receipt of a name is kept ("" if none).
func (s *Store) ReceiptFile(name string) string {
	p := s.receiptFile(name)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// Names lists the receipts (and the dropped ones not yet removed), with
// their receipt files ("" for a dropped one).
func (s *Store) Names() map[string]string {
	out := map[string]string{}
	files, _ := filepath.Glob(filepath.Join(s.StateDir, "receipts", "*.json"))
	for _, f := range files {
		if r, err := readReceipt(f); err == nil {
			out[r.Name] = f
		}
	}
	s.mu.Lock()
	for n := range s.dropped {
		if _, ok := out[n]; !ok {
			out[n] = ""
		}
	}
	s.mu.Unlock()
	return out
}

func readReceipt(path string) (*Receipt, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Receipt
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// Get reads a receipt.
func (s *Store) Get(name string) (*Receipt, error) {
	return readReceipt(s.receiptFile(name))
}

func (s *Store) write(r *Receipt) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	path := s.receiptFile(r.Name)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		_ = os.Remove(tmp) // a full disk leaves no half receipt behind
		return err
	}
	return os.Rename(tmp, path)
}

// Exists reports whether a name is taken in .trash.
func (s *Store) Exists(name string) bool {
	_, ok := s.Names()[name]
	return ok
}

// nameMax is NAME_MAX: a receipt is a folder of the mount.
const nameMax = 255

// Trash starts deleting (or, with a hold, moving aside) one selection of
// one repo under name: the receipt is written first (state pending: if
// it cannot be, nothing is touched), then the selection is staged out of
// the cache (refs re-read now, snapshots moved in one rename each). The
// caller finishes the rest with Complete, in the background if it likes.
func (s *Store) Trash(plan *cachecore.DeleteStrategy, name string, opts cachecore.ExecuteOptions) (*Receipt, *cachecore.Staged, error) {
	if len(name) > nameMax {
		return nil, nil, fmt.Errorf("%q: %w", name, cachecore.ErrNameTooLong)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := os.Stat(s.receiptFile(name)); err == nil || s.dropped[name] {
		return nil, nil, fmt.Errorf("%q: %w", name, cachecore.ErrReceiptExists)
	}
	sels := plan.Selections()
	if len(sels) != 1 {
		return nil, nil, fmt.Errorf("a receipt covers one repo, the plan has %d", len(sels))
	}
	sel := sels[0]
	now := time.Now().UTC()
	r := &Receipt{
		Name: name, RepoID: sel.Repo.RepoID, RepoType: sel.Repo.RepoType, RepoFolder: sel.Repo.FolderName(),
		WholeRepo: len(plan.Repos) > 0, Refs: nonNil(plan.Refs), Snapshots: nonNil(plan.Snapshots),
		// The blobs are listed once they are gone (the journal in the
		// cache has the plan's): a 40,000-blob receipt written twice
		// while mv waits is time the rename lock is held.
		Blobs: []string{}, Repos: nonNil(plan.Repos), BytesFreed: plan.ExpectedFreedSize,
		BytesFreedStr: plan.ExpectedFreedSizeStr(), When: now, State: StatePending, CacheDir: s.CacheDir,
		Note: "staging: nothing is deleted until the snapshot has left the cache",
	}
	for _, rev := range sel.Revisions {
		r.Revisions = append(r.Revisions, ReceiptRevision{Commit: rev.CommitHash, Refs: append([]string{}, rev.Refs...)})
	}
	if s.Hold > 0 {
		until := now.Add(s.Hold)
		r.HoldUntil = &until
		r.HeldIn = filepath.Join(s.HoldRoot, fmt.Sprintf("%d-%s", now.UnixNano(), hex.EncodeToString([]byte(name))[:min(16, 2*len(name))]))
		opts.MoveTo = r.HeldIn
	}
	// Written before anything moves: a full state file system refuses
	// the deletion with the cache untouched.
	if err := s.write(r); err != nil {
		return nil, nil, fmt.Errorf("writing the receipt: %w", err)
	}
	opts.Receipt = name
	staged, err := plan.Stage(opts)
	if staged == nil || len(staged.Report().Deleted) == 0 {
		if staged != nil {
			if err == nil {
				staged.Discard() // nothing moved: no journal stays
			} else {
				staged.Close()
			}
		}
		_ = os.Remove(s.receiptFile(name))
		if err == nil {
			err = fmt.Errorf("nothing to delete: %w", os.ErrNotExist)
		}
		return nil, nil, err
	}
	r.State = StateDeleting
	r.Note = "deleting in the background: bytes_freed is the plan's until it is done"
	s.staged(r, staged.Report())
	_ = s.write(r) // pending says the same to a later start
	return r, staged, err
}

// staged narrows the receipt to what staging really moved.
func (s *Store) staged(r *Receipt, rep *cachecore.ExecuteReport) {
	went := map[string]bool{}
	for _, p := range rep.Deleted {
		went[p] = true
	}
	keep := func(l []string) []string {
		out := []string{}
		for _, p := range l {
			if went[p] {
				out = append(out, p)
			}
		}
		return out
	}
	r.Refs, r.Snapshots, r.Repos = keep(r.Refs), keep(r.Snapshots), keep(r.Repos)
	r.Skipped = append(r.Skipped[:0], rep.Skipped...)
}

// Complete finishes a staged deletion and writes the receipt as it ended:
// the blobs that went, the bytes really freed (or held), what was skipped.
func (s *Store) Complete(r *Receipt, staged *cachecore.Staged) (*Receipt, error) {
	rep, err := staged.Finish()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, statErr := os.Stat(s.receiptFile(r.Name)); s.dropped[r.Name] || statErr != nil {
		// Dropped (rm .trash/NAME) while it ran: what it holds goes too,
		// and no receipt comes back.
		if r.HeldIn != "" {
			_ = os.RemoveAll(r.HeldIn)
		}
		return r, err
	}
	s.finished(r, rep, err)
	if werr := s.write(r); werr != nil && err == nil {
		err = werr
	}
	return r, err
}

func (s *Store) finished(r *Receipt, rep *cachecore.ExecuteReport, err error) {
	s.staged(r, rep)
	r.Blobs = append([]string{}, rep.Blobs...)
	r.BytesFreed = rep.BytesFreed
	r.BytesFreedStr = cachecore.FormatSize(rep.BytesFreed)
	r.State, r.Note = StateDeleted, ""
	if r.HeldIn != "" {
		r.State = StateHeld
		r.Note = "held until " + r.HoldUntil.Format(time.RFC3339) + ": the space is freed only when the hold expires (or this receipt is removed)"
	}
	if len(rep.Skipped) > 0 {
		r.Note = strings.TrimSpace(r.Note + " " + fmt.Sprintf("%d path(s) skipped: see skipped", len(rep.Skipped)))
	}
	if err != nil {
		r.Note = strings.TrimSpace(r.Note + " stopped: " + err.Error())
	}
}

// Recover finishes the deletions an earlier run was stopped in the middle
// of (cachecore.FinishStaged) and brings their receipts up to date: one
// rolled back (no revision had gone) loses its receipt.
func (s *Store) Recover(log func(string)) ([]cachecore.Recovered, error) {
	recs, err := cachecore.FinishStaged(s.CacheDir, log)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rec := range recs {
		if rec.Receipt == "" {
			continue
		}
		r, rerr := readReceipt(s.receiptFile(rec.Receipt))
		if rerr != nil || (r.State != StatePending && r.State != StateDeleting) {
			continue
		}
		if rec.RolledBack {
			_ = os.Remove(s.receiptFile(rec.Receipt))
			continue
		}
		// The receipt already says what went before the restart (refs,
		// snapshots, a whole repo); the recovery adds the blobs.
		rep := rec.Report
		r.Blobs = append([]string{}, rep.Blobs...)
		if !r.WholeRepo {
			r.BytesFreed = rep.BytesFreed
			r.BytesFreedStr = cachecore.FormatSize(r.BytesFreed)
		}
		r.Skipped = append(r.Skipped, rep.Skipped...)
		r.State, r.Note = StateDeleted, ""
		if r.HeldIn != "" {
			r.State = StateHeld
		}
		if rec.Err != nil {
			r.Note = "stopped: " + rec.Err.Error()
		}
		r.Note = strings.TrimSpace(r.Note + " (finished after a restart)")
		_ = s.write(r)
	}
	// A receipt still pending with no journal left was never staged.
	files, _ := filepath.Glob(filepath.Join(s.StateDir, "receipts", "*.json"))
	var journalled map[string]bool
	for _, f := range files {
		r, err := readReceipt(f)
		if err != nil || r.State != StatePending || time.Since(r.When) <= time.Minute {
			continue
		}
		if journalled == nil {
			if journalled, err = cachecore.StagedReceipts(s.CacheDir); err != nil {
				break
			}
		}
		if !journalled[r.Name] {
			_ = os.Remove(f)
		}
	}
	return recs, err
}

// Held sums what holds keep: their bytes and receipts.
func (s *Store) Held() (bytes int64, receipts int) {
	files, _ := filepath.Glob(filepath.Join(s.StateDir, "receipts", "*.json"))
	for _, f := range files {
		if r, err := readReceipt(f); err == nil && r.State == StateHeld {
			bytes += r.BytesFreed
			receipts++
		}
	}
	return bytes, receipts
}

func nonNil(l []string) []string { return append([]string{}, l...) }

// Drop removes a receipt (rm .trash/NAME/receipt.json), purging what it
// holds. The name stays listed, as an empty folder, until Forget.
func (s *Store) Drop(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	path := s.receiptFile(name)
	r, err := readReceipt(path)
	if err != nil {
		return err
	}
	if r.HeldIn != "" && r.State == StateHeld {
		if err := os.RemoveAll(r.HeldIn); err != nil {
			return err
		}
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	s.dropped[name] = true
	return nil
}

// Forget removes a dropped name (rmdir .trash/NAME). A name whose receipt
// is still there is not empty.
func (s *Store) Forget(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := os.Stat(s.receiptFile(name)); err == nil {
		return syscall.ENOTEMPTY
	}
	if !s.dropped[name] {
		return os.ErrNotExist
	}
	delete(s.dropped, name)
	return nil
}

// Restore puts a held receipt's revision (or repo) back, and removes the
// receipt.
func (s *Store) Restore(name string) (*Receipt, *cachecore.RestoreReport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	path := s.receiptFile(name)
	r, err := readReceipt(path)
	if err != nil {
		return nil, nil, err
	}
	if r.State != StateHeld || r.HeldIn == "" {
		return r, nil, ErrNoHold
	}
	var whole []string
	if r.WholeRepo {
		whole = []string{r.RepoFolder}
	}
	rep, err := cachecore.Restore(s.CacheDir, r.HeldIn, whole)
	if err != nil {
		return r, rep, err
	}
	r.RestoreNotes = rep.Notes
	r.State = StateRestored
	_ = os.RemoveAll(r.HeldIn)
	if err := os.Remove(path); err != nil {
		return r, rep, err
	}
	return r, rep, nil
}

// PurgeExpired deletes what expired holds keep, and marks their receipts
// purged. It returns the receipt names purged.
func (s *Store) PurgeExpired(now time.Time) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	files, _ := filepath.Glob(filepath.Join(s.StateDir, "receipts", "*.json"))
	var purged []string
	var firstErr error
	for _, f := range files {
		r, err := readReceipt(f)
		if err != nil || r.State != StateHeld || r.HoldUntil == nil || now.Before(*r.HoldUntil) {
			continue
		}
		if err := os.RemoveAll(r.HeldIn); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		r.State = StatePurged
		r.Note = "the hold expired at " + r.HoldUntil.Format(time.RFC3339) + ": the space is freed"
		if err := s.write(r); err != nil && firstErr == nil {
			firstErr = err
		}
		purged = append(purged, r.Name)
	}
	sort.Strings(purged)
	return purged, firstErr
}

// NextExpiry is the earliest hold expiry, if any.
func (s *Store) NextExpiry() (time.Time, bool) {
	files, _ := filepath.Glob(filepath.Join(s.StateDir, "receipts", "*.json"))
	var next time.Time
	found := false
	for _, f := range files {
		if r, err := readReceipt(f); err == nil && r.State == StateHeld && r.HoldUntil != nil {
			if !found || r.HoldUntil.Before(next) {
				next, found = *r.HoldUntil, true
			}
		}
	}
	return next, found
}
