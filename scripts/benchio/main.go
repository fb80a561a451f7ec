// Command benchio is the I/O helper of scripts/bench-mount.sh: it makes a
// big blob in a small Hugging Face cache and times reads, page cache
// drops and ref changes with more precision than shell tools give.
//
//	benchio mkblob -cache DIR [-repo models--bench--big] [-file model.safetensors] [-size 1GiB] [-seed 1]
//	    writes DIR/<repo>/blobs/<sha256>, snapshots/<commit>/<file> -> blob,
//	    refs/main; prints the blob path and the snapshot file path
//	benchio seq [-bs 1MiB] FILE           reads FILE; prints "bytes seconds"
//	benchio rand [-n 2000] [-bs 4096] [-seed 1] FILE
//	    n preads of bs bytes at bs-aligned offsets from a fixed-seed PRNG;
//	    prints "reads seconds"
//	benchio drop FILE...                  posix_fadvise(DONTNEED) on each file
//	benchio resident FILE                 prints the % of FILE in the page cache (mincore)
//	benchio refswap -ref REFFILE -commit HASH -watch FILE -want FILE [-interval 20ms] [-timeout 30s]
//	    writes HASH to REFFILE (temp file + rename), then reads -watch every
//	    interval until its bytes equal those of -want; prints the seconds
//	    from the rename to the first matching read
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchio mkblob|seq|rand|drop|resident|refswap ...")
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{
		"mkblob": mkblob, "seq": seqRead, "rand": randRead, "drop": drop,
		"resident": resident, "refswap": refswap,
	}
	f, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "benchio: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := f(os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchio "+os.Args[1]+":", err)
		os.Exit(1)
	}
}

// parseSize reads 4096, 1MiB, 1GiB, 1G (binary units).
func parseSize(s string) (int64, error) {
	mult := int64(1)
	u := strings.ToUpper(s)
	for _, suf := range []struct {
		s string
		m int64
	}{{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}} {
		if strings.HasSuffix(u, suf.s) {
			mult, u = suf.m, strings.TrimSuffix(u, suf.s)
			break
		}
	}
	v, err := strconv.ParseInt(u, 10, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return v * mult, nil
}

type sizeFlag struct{ v int64 }

func (s *sizeFlag) String() string { return strconv.FormatInt(s.v, 10) }
func (s *sizeFlag) Set(v string) (err error) {
	s.v, err = parseSize(v)
	return err
}

func mkblob(args []string) error {
	fs := flag.NewFlagSet("mkblob", flag.ExitOnError)
	cache := fs.String("cache", "", "cache directory (created)")
	repo := fs.String("repo", "models--bench--big", "repo folder")
	file := fs.String("file", "model.safetensors", "file name in the snapshot")
	seed := fs.Uint64("seed", 1, "PRNG seed")
	size := sizeFlag{1 << 30}
	fs.Var(&size, "size", "blob size")
	fs.Parse(args)
	if *cache == "" {
		return errors.New("-cache is required")
	}
	root := filepath.Join(*cache, *repo)
	for _, d := range []string{"blobs", "refs", "snapshots"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	tmp, err := os.CreateTemp(filepath.Join(root, "blobs"), ".incomplete-")
	if err != nil {
		return err
	}
	// Random-looking, incompressible, fast: a 16 MiB ChaCha8 block, each
	// 1 MiB chunk of the output xored with a per-chunk 64-bit word so that
	// no two chunks are equal.
	const chunk = 1 << 20
	src := rand.NewChaCha8([32]byte{byte(*seed), byte(*seed >> 8), byte(*seed >> 16), byte(*seed >> 24)})
	pool := make([]byte, 16*chunk)
	src.Read(pool)
	h := sha256.New()
	w := io.MultiWriter(tmp, h)
	buf := make([]byte, chunk)
	for off, i := int64(0), 0; off < size.v; off, i = off+chunk, i+1 {
		n := int(min(chunk, size.v-off))
		base := pool[(i%16)*chunk:]
		k := src.Uint64()
		for j := 0; j+8 <= n; j += 8 {
			*(*uint64)(unsafe.Pointer(&buf[j])) = *(*uint64)(unsafe.Pointer(&base[j])) ^ k
		}
		for j := n &^ 7; j < n; j++ {
			buf[j] = base[j] ^ byte(k)
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	etag := hex.EncodeToString(h.Sum(nil))
	blob := filepath.Join(root, "blobs", etag)
	if err := os.Rename(tmp.Name(), blob); err != nil {
		return err
	}
	commit := fmt.Sprintf("%040x", *seed*0x9e3779b97f4a7c15)
	snap := filepath.Join(root, "snapshots", commit)
	if err := os.MkdirAll(snap, 0o755); err != nil {
		return err
	}
	link := filepath.Join(snap, *file)
	if err := os.Symlink("../../blobs/"+etag, link); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "refs", "main"), []byte(commit), 0o644); err != nil {
		return err
	}
	fmt.Println(blob)
	fmt.Println(link)
	return nil
}

func seqRead(args []string) error {
	fs := flag.NewFlagSet("seq", flag.ExitOnError)
	bs := sizeFlag{1 << 20}
	fs.Var(&bs, "bs", "read size")
	fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("expected one FILE")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, bs.v)
	var total int64
	start := time.Now()
	for {
		n, err := f.Read(buf)
		total += int64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	el := time.Since(start)
	fmt.Printf("%d %.6f\n", total, el.Seconds())
	return nil
}

func randRead(args []string) error {
	fs := flag.NewFlagSet("rand", flag.ExitOnError)
	n := fs.Int("n", 2000, "number of reads")
	seed := fs.Uint64("seed", 1, "PRNG seed")
	bs := sizeFlag{4096}
	fs.Var(&bs, "bs", "read size (and offset alignment)")
	fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New("expected one FILE")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	slots := fi.Size() / bs.v
	if slots < 1 {
		return fmt.Errorf("%s is smaller than %d bytes", fs.Arg(0), bs.v)
	}
	r := rand.New(rand.NewPCG(*seed, 0x5eed))
	offs := make([]int64, *n)
	for i := range offs {
		offs[i] = r.Int64N(slots) * bs.v
	}
	buf := make([]byte, bs.v)
	start := time.Now()
	for _, off := range offs {
		if m, err := f.ReadAt(buf, off); err != nil || int64(m) != bs.v {
			return fmt.Errorf("pread at %d: %d bytes, %v", off, m, err)
		}
	}
	el := time.Since(start)
	fmt.Printf("%d %.6f\n", *n, el.Seconds())
	return nil
}

func drop(args []string) error {
	for _, p := range args {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		// posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); amd64/arm64 signature.
		_, _, e := syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, 4, 0, 0)
		f.Close()
		if e != 0 {
			return fmt.Errorf("fadvise %s: %v", p, e)
		}
	}
	return nil
}

func resident(args []string) error {
	if len(args) != 1 {
		return errors.New("expected one FILE")
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() == 0 {
		fmt.Println("100.0")
		return nil
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, int(fi.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return err
	}
	defer syscall.Munmap(mem)
	page := int64(os.Getpagesize())
	vec := make([]byte, (fi.Size()+page-1)/page)
	_, _, e := syscall.Syscall(syscall.SYS_MINCORE, uintptr(unsafe.Pointer(&mem[0])), uintptr(len(mem)), uintptr(unsafe.Pointer(&vec[0])))
	if e != 0 {
		return fmt.Errorf("mincore: %v", e)
	}
	in := 0
	for _, v := range vec {
		in += int(v & 1)
	}
	fmt.Printf("%.1f\n", 100*float64(in)/float64(len(vec)))
	return nil
}

func refswap(args []string) error {
	fs := flag.NewFlagSet("refswap", flag.ExitOnError)
	ref := fs.String("ref", "", "ref file to rewrite")
	commit := fs.String("commit", "", "commit hash to write")
	watch := fs.String("watch", "", "file to read until it shows -want's bytes")
	wantPath := fs.String("want", "", "file with the expected bytes")
	interval := fs.Duration("interval", 20*time.Millisecond, "poll interval")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after")
	fs.Parse(args)
	if *ref == "" || *commit == "" || *watch == "" || *wantPath == "" {
		return errors.New("-ref, -commit, -watch and -want are required")
	}
	want, err := os.ReadFile(*wantPath)
	if err != nil {
		return err
	}
	if got, err := os.ReadFile(*watch); err == nil && bytes.Equal(got, want) {
		return fmt.Errorf("%s already shows the new content", *watch)
	}
	tmp := *ref + ".benchio.tmp"
	if err := os.WriteFile(tmp, []byte(*commit), 0o644); err != nil {
		return err
	}
	start := time.Now()
	if err := os.Rename(tmp, *ref); err != nil {
		return err
	}
	for {
		if got, err := os.ReadFile(*watch); err == nil && bytes.Equal(got, want) {
			fmt.Printf("%.6f\n", time.Since(start).Seconds())
			return nil
		}
		if time.Since(start) > *timeout {
			return fmt.Errorf("%s did not change within %v", *watch, *timeout)
		}
		time.Sleep(*interval)
	}
}
