package cachecore

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzParseRepoFolderName(f *testing.F) {
	for _, seed := range []string{"models--acme--tiny-model", "models--gpt2", "datasets--a--b--c", "models--", "kernels--o--k",
		"Models--x", "randomdir", "models---x", "spaces--u--s", "not-models--t5", "--", "s--a", "ⓜodels--x", "models--a----b"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, name string) {
		typ, id, problem := ParseRepoFolderName(name)
		sep := strings.Index(name, "--")
		switch problem {
		case FolderNoSeparator:
			if sep >= 0 {
				t.Fatalf("%q has a separator", name)
			}
		case FolderBadType:
			if typ == "model" || typ == "dataset" || typ == "space" {
				t.Fatalf("%q: %q is a good type", name, typ)
			}
		case FolderOK:
			if typ != "model" && typ != "dataset" && typ != "space" {
				t.Fatalf("%q: type %q", name, typ)
			}
			// The id maps back to the folder name's tail.
			if !strings.Contains(name, "/") && strings.ReplaceAll(id, "/", "--") != name[sep+2:] {
				t.Fatalf("%q: id %q does not map back", name, id)
			}
			if strings.HasPrefix(name, typ+"s--") && RepoFolderName(id, typ) != name && !strings.Contains(name, "/") {
				t.Fatalf("%q: RepoFolderName(%q, %q) = %q", name, id, typ, RepoFolderName(id, typ))
			}
		default:
			t.Fatalf("unknown problem %q", problem)
		}
	})
}

func FuzzRefContent(f *testing.F) {
	for _, seed := range []string{"eba90b51402874116c4cda2ae669ce32cc85e1c6", "abc\n", "a\r\nb\rc", "\xff\xfe", "", "\r"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := RefContent(data)
		if !utf8.Valid(data) {
			if err == nil {
				t.Fatalf("%q: invalid UTF-8 accepted", data)
			}
			return
		}
		if err != nil {
			t.Fatalf("%q: %v", data, err)
		}
		if strings.ContainsRune(got, '\r') {
			t.Fatalf("%q: a carriage return survived: %q", data, got)
		}
		if !strings.ContainsRune(string(data), '\r') && got != string(data) {
			t.Fatalf("%q changed to %q", data, got)
		}
	})
}
