// Command gencache writes a synthetic Hugging Face Hub cache for benchmarks
// and tests. The layout is the one huggingface_hub writes:
//
//	<out>/CACHEDIR.TAG
//	<out>/.locks/<repo folder>/<etag>.lock
//	<out>/<type>s--<org>--<name>/
//	    blobs/<etag>                         file contents
//	    refs/main, refs/v1.0, refs/refs/pr/1 40-hex commit, no newline
//	    snapshots/<commit>/<path>            relative symlink to ../../blobs/<etag>
//	    .no_exist/<commit>/<path>            empty marker of a missing file
//
// The etag of a regular file is the git blob sha1 of its content (40 hex);
// that of an "LFS" file (weights, parquet, onnx, ...) is its sha256 (64 hex).
// Revisions of a repo share the blobs of the files that did not change.
// Contents are small: the cache is meant to exercise metadata, not bytes.
//
// The output depends only on the flags (not on -workers or scheduling).
//
//	go run ./scripts/gencache -out /tmp/hub -repos 2000 -revisions 3 -files 30
package main

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const cacheDirTag = "Signature: 8a477f597d28d172789f06886806bc55\n" +
	"# This file is a cache directory tag created by huggingface_hub.\n" +
	"# For information about cache directory tags, see:\n" +
	"#\thttps://bford.info/cachedir/\n"

var (
	orgs = []string{
		"google", "meta-llama", "mistralai", "Qwen", "microsoft", "openai",
		"sentence-transformers", "BAAI", "stabilityai", "facebook", "bigscience",
		"EleutherAI", "TheBloke", "deepseek-ai", "allenai", "nvidia",
		"HuggingFaceH4", "intfloat", "julien-c", "lysandre", "unsloth",
		"distilbert", "FacebookAI", "timm", "laion", "tiiuae",
	}
	words = []string{
		"bert", "base", "large", "small", "tiny", "uncased", "cased", "llama",
		"mini", "instruct", "chat", "v2", "v3.1", "7B", "8B", "1.5B", "GGUF",
		"AWQ", "coder", "vision", "multilingual", "e5", "MiniLM", "L6", "gpt2",
		"t5", "whisper", "clip", "vit", "patch16", "224", "distil", "roberta",
		"squad", "glue", "wiki_text", "openwebtext", "alpaca", "demo",
	}
	noExistNames = []string{
		"added_tokens.json", "chat_template.jinja", "preprocessor_config.json",
		"adapter_config.json", "model.safetensors", "pytorch_model.bin.index.json",
		"processor_config.json", "custom_generate/generate.py",
	}
	lfsExt = map[string]bool{
		".safetensors": true, ".bin": true, ".onnx": true, ".parquet": true,
		".pt": true, ".pth": true, ".h5": true, ".msgpack": true, ".gguf": true,
		".png": true, ".ckpt": true, ".arrow": true, ".model": true,
	}
)

type options struct {
	out       string
	repos     int
	revisions int
	files     int
	seed      uint64
	workers   int
}

type stats struct {
	symlinks, blobs, bytes, noExist, locks, refs atomic.Int64
	byType                                       [3]atomic.Int64
}

var repoTypes = [3]string{"models", "datasets", "spaces"}

func main() {
	var o options
	flag.StringVar(&o.out, "out", "", "directory to create (must not exist)")
	flag.IntVar(&o.repos, "repos", 2000, "number of repositories")
	flag.IntVar(&o.revisions, "revisions", 3, "revisions (snapshots) per repository")
	flag.IntVar(&o.files, "files", 30, "files per revision")
	flag.Uint64Var(&o.seed, "seed", 1, "random seed")
	flag.IntVar(&o.workers, "workers", 8, "repositories written in parallel")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "gencache:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	switch {
	case o.out == "":
		return errors.New("-out is required")
	case flag.NArg() > 0:
		return fmt.Errorf("unexpected arguments: %q", flag.Args())
	case o.repos < 0 || o.revisions < 1 || o.files < 1:
		return errors.New("-repos must be >= 0, -revisions and -files >= 1")
	}
	if o.workers < 1 {
		o.workers = 1
	}
	if _, err := os.Lstat(o.out); err == nil {
		return fmt.Errorf("%s already exists", o.out)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	start := time.Now()
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(o.out, "CACHEDIR.TAG"), []byte(cacheDirTag), 0o644); err != nil {
		return err
	}
	if err := os.Mkdir(filepath.Join(o.out, ".locks"), 0o755); err != nil {
		return err
	}

	var st stats
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range o.workers {
		wg.Go(func() {
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= o.repos {
					return
				}
				if err := writeRepo(o, i, &st); err != nil {
					errOnce.Do(func() { firstErr = err })
					failed.Store(true)
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	el := time.Since(start)
	fmt.Printf("gencache: %s: %d repos (%d models, %d datasets, %d spaces) x %d revisions x %d files\n",
		o.out, o.repos, st.byType[0].Load(), st.byType[1].Load(), st.byType[2].Load(), o.revisions, o.files)
	fmt.Printf("gencache: %d symlinks, %d blobs (%.1f MB), %d refs, %d .no_exist markers, %d locks in %.2f s\n",
		st.symlinks.Load(), st.blobs.Load(), float64(st.bytes.Load())/1e6, st.refs.Load(),
		st.noExist.Load(), st.locks.Load(), el.Seconds())
	return nil
}

// repoName returns the type index and folder name of repo i.
func repoName(r *rand.Rand, i int) (int, string) {
	t := 0
	switch p := r.IntN(100); {
	case p < 10:
		t = 1
	case p < 15:
		t = 2
	}
	n := 1 + r.IntN(3)
	parts := make([]string, 0, n+1)
	for range n {
		parts = append(parts, words[r.IntN(len(words))])
	}
	parts = append(parts, strconv.Itoa(i)) // makes the name unique
	name := strings.Join(parts, "-")
	if r.IntN(100) < 5 { // legacy repo without namespace, e.g. models--gpt2
		return t, repoTypes[t] + "--" + name
	}
	return t, repoTypes[t] + "--" + orgs[r.IntN(len(orgs))] + "--" + name
}

// fileList returns n distinct paths for a repo of type t, a few of them in
// sub-directories (one two levels deep).
func fileList(t, n int) []string {
	var fixed []string
	var shard string
	switch t {
	case 0:
		fixed = []string{
			".gitattributes", "README.md", "config.json", "tokenizer.json",
			"tokenizer_config.json", "special_tokens_map.json",
			"generation_config.json", "model.safetensors.index.json",
			"onnx/model.onnx", "1_Pooling/config.json", "onnx/quantized/model_q4.onnx",
			"vocab.txt", "merges.txt", "tokenizer.model",
		}
		shard = "model-%05d-of-%05d.safetensors"
	case 1:
		fixed = []string{
			".gitattributes", "README.md", "dataset_infos.json",
			"data/test-00000-of-00001.parquet", "data/en/validation-00000-of-00001.parquet",
			"images/sample.png",
		}
		shard = "data/train-%05d-of-%05d.parquet"
	default:
		fixed = []string{
			".gitattributes", "README.md", "app.py", "requirements.txt",
			"assets/logo.png", "src/utils/helpers.py", "packages.txt",
		}
		shard = "examples/example_%03d_of_%03d.txt"
	}
	if n <= len(fixed) {
		return fixed[:n]
	}
	out := append([]string(nil), fixed...)
	k := n - len(fixed)
	for j := 1; j <= k; j++ {
		out = append(out, fmt.Sprintf(shard, j, k))
	}
	return out
}

func randHex(r *rand.Rand, n int) string {
	b := make([]byte, (n+1)/2)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return hex.EncodeToString(b)[:n]
}

// content returns a small pseudo-random content for file p.
func content(r *rand.Rand, p string, lfs bool) []byte {
	if lfs {
		b := make([]byte, 32+r.IntN(2000))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	size := 20 + r.IntN(2000)
	var sb strings.Builder
	fmt.Fprintf(&sb, "{\"_name_or_path\": %q,\n", p)
	for sb.Len() < size {
		fmt.Fprintf(&sb, "  %q: %d,\n", words[r.IntN(len(words))], r.Uint32())
	}
	sb.WriteString("  \"end\": true\n}\n")
	return []byte(sb.String())
}

func etagOf(b []byte, lfs bool) string {
	if lfs {
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:])
	}
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(b))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func writeRepo(o options, i int, st *stats) error {
	r := rand.New(rand.NewPCG(o.seed, uint64(i)))
	t, folder := repoName(r, i)
	st.byType[t].Add(1)
	root := filepath.Join(o.out, folder)
	for _, d := range []string{"", "blobs", "refs", "snapshots"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	files := fileList(t, o.files)
	isLFS := make([]bool, len(files))
	for j, f := range files {
		isLFS[j] = lfsExt[path.Ext(f)]
	}
	newBlob := func(j int) (string, error) {
		b := content(r, files[j], isLFS[j])
		etag := etagOf(b, isLFS[j])
		if err := os.WriteFile(filepath.Join(root, "blobs", etag), b, 0o644); err != nil {
			return "", err
		}
		st.blobs.Add(1)
		st.bytes.Add(int64(len(b)))
		return etag, nil
	}

	etags := make([]string, len(files))
	commits := make([]string, o.revisions)
	for rev := range o.revisions {
		if rev == 0 {
			for j := range files {
				e, err := newBlob(j)
				if err != nil {
					return err
				}
				etags[j] = e
			}
		} else {
			// Most files are unchanged between revisions; one to three change
			// (distinct files, so that every blob is used by some snapshot).
			for _, j := range r.Perm(len(files))[:min(len(files), 1+r.IntN(3))] {
				e, err := newBlob(j)
				if err != nil {
					return err
				}
				etags[j] = e
			}
		}
		commits[rev] = randHex(r, 40)
		snap := filepath.Join(root, "snapshots", commits[rev])
		if err := os.Mkdir(snap, 0o755); err != nil {
			return err
		}
		made := map[string]bool{".": true}
		for j, f := range files {
			if dir := path.Dir(f); !made[dir] {
				if err := os.MkdirAll(filepath.Join(snap, filepath.FromSlash(dir)), 0o755); err != nil {
					return err
				}
				made[dir] = true
			}
			target := strings.Repeat("../", 2+strings.Count(f, "/")) + "blobs/" + etags[j]
			if err := os.Symlink(target, filepath.Join(snap, filepath.FromSlash(f))); err != nil {
				return err
			}
			st.symlinks.Add(1)
		}
	}

	// refs: main is the newest revision; some repos also have a tag on the
	// oldest and a PR ref on another one. Other revisions are only reachable
	// by commit hash, as after downloading with revision=<sha>.
	refs := map[string]string{"main": commits[o.revisions-1]}
	if o.revisions > 1 && r.IntN(100) < 30 {
		refs["v1.0"] = commits[0]
	}
	if o.revisions > 1 && r.IntN(100) < 15 {
		refs["refs/pr/1"] = commits[r.IntN(o.revisions-1)]
	}
	for name, c := range refs {
		p := filepath.Join(root, "refs", filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			return err
		}
		st.refs.Add(1)
	}

	// .no_exist markers for files looked up but absent from the repo.
	if r.IntN(100) < 25 {
		c := commits[r.IntN(o.revisions)]
		have := map[string]bool{}
		for _, f := range files {
			have[f] = true
		}
		for range 1 + r.IntN(3) {
			f := noExistNames[r.IntN(len(noExistNames))]
			if have[f] {
				continue
			}
			have[f] = true
			p := filepath.Join(root, ".no_exist", c, filepath.FromSlash(f))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				return err
			}
			st.noExist.Add(1)
		}
	}

	// A leftover lock file, as after an interrupted download.
	if r.IntN(100) < 10 {
		d := filepath.Join(o.out, ".locks", folder)
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(d, etags[r.IntN(len(etags))]+".lock"), nil, 0o644); err != nil {
			return err
		}
		st.locks.Add(1)
	}
	return nil
}
