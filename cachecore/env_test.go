package cachecore

import (
	"os"
	"os/user"
	"path/filepath"
	"testing"
)

func mapEnv(m map[string]string) Env {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestCacheLocations(t *testing.T) {
	home := "/home/u"
	cases := []struct {
		name        string
		env         map[string]string
		hfHome, hub string
		assets      string
	}{
		{"default", map[string]string{}, home + "/.cache/huggingface", home + "/.cache/huggingface/hub", home + "/.cache/huggingface/assets"},
		{"HF_HOME empty counts as set", map[string]string{"HF_HOME": ""}, "", "hub", "assets"},
		{"XDG empty", map[string]string{"XDG_CACHE_HOME": ""}, "huggingface", "huggingface/hub", "huggingface/assets"},
		{"XDG and legacy", map[string]string{"XDG_CACHE_HOME": "/x", "HUGGINGFACE_HUB_CACHE": "/legacy"}, "/x/huggingface", "/legacy", "/x/huggingface/assets"},
		{"new beats legacy", map[string]string{"HF_HUB_CACHE": "/new", "HUGGINGFACE_HUB_CACHE": "/legacy"}, home + "/.cache/huggingface", "/new", home + "/.cache/huggingface/assets"},
		{"tilde", map[string]string{"HF_HOME": "~/hh"}, home + "/hh", home + "/hh/hub", home + "/hh/assets"},
		{"vars", map[string]string{"HF_HOME": "$HOME/v"}, home + "/v", home + "/v/hub", home + "/v/assets"},
		{"braced and unknown vars", map[string]string{"HF_HUB_CACHE": "${HOME}/a/$NOPE/b"}, home + "/.cache/huggingface", home + "/a/$NOPE/b", home + "/.cache/huggingface/assets"},
		{"assets env", map[string]string{"HF_ASSETS_CACHE": "~/as", "HUGGINGFACE_ASSETS_CACHE": "/old"}, home + "/.cache/huggingface", home + "/.cache/huggingface/hub", home + "/as"},
		{"legacy assets", map[string]string{"HUGGINGFACE_ASSETS_CACHE": "/old"}, home + "/.cache/huggingface", home + "/.cache/huggingface/hub", "/old"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{"HOME": home}
			for k, v := range c.env {
				env[k] = v
			}
			e := mapEnv(env)
			if got := HFHome(e); got != c.hfHome {
				t.Errorf("HF_HOME = %q, want %q", got, c.hfHome)
			}
			if got := HubCacheDir(e); got != c.hub {
				t.Errorf("HF_HUB_CACHE = %q, want %q", got, c.hub)
			}
			if got := AssetsCacheDir(e); got != c.assets {
				t.Errorf("HF_ASSETS_CACHE = %q, want %q", got, c.assets)
			}
		})
	}
}

func TestExpandUser(t *testing.T) {
	env := mapEnv(map[string]string{"HOME": "/h/"})
	if got := expandUser("~", env); got != "/h" {
		t.Errorf("~ -> %q", got)
	}
	if got := expandUser("~/x", env); got != "/h/x" {
		t.Errorf("~/x -> %q", got)
	}
	if got := expandUser("~nosuchuser-xyz/x", env); got != "~nosuchuser-xyz/x" {
		t.Errorf("unknown user kept: %q", got)
	}
	if u, err := user.Lookup("root"); err == nil {
		if got := expandUser("~root/x", env); got != filepath.Join(u.HomeDir, "x") {
			t.Errorf("~root/x -> %q", got)
		}
	}
	if got := expandUser("a/~", env); got != "a/~" {
		t.Errorf("only a leading ~ expands: %q", got)
	}
}

func TestResolveDirFollowsSymlinks(t *testing.T) {
	tmp := t.TempDir()
	real := filepath.Join(tmp, "real")
	if err := os.MkdirAll(filepath.Join(real, "hub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(tmp, "link")); err != nil {
		t.Fatal(err)
	}
	got, err := ResolveDir(filepath.Join(tmp, "link", "hub", "..", "hub"), OSEnv)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := filepath.EvalSymlinks(filepath.Join(real, "hub"))
	if got != want {
		t.Errorf("ResolveDir = %q, want %q", got, want)
	}
	// Missing components are kept, as Python's non-strict resolve does.
	got, err = ResolveDir(filepath.Join(tmp, "link", "missing", "x"), OSEnv)
	if err != nil || got != filepath.Join(filepath.Dir(want), "missing", "x") {
		t.Errorf("missing tail: %q %v", got, err)
	}
	if err := os.Symlink("loop", filepath.Join(tmp, "loop")); err != nil {
		t.Fatal(err)
	}
	if _, err := ResolveDir(filepath.Join(tmp, "loop", "x"), OSEnv); err == nil {
		t.Error("a symlink loop must be an error")
	}
}
