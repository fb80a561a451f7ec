package cachecore

import (
	"os"
	"os/user"
	"regexp"
	"strings"
)

// Env looks a variable up; the boolean says whether it is set (an empty
// variable counts as set, as in Python).
type Env func(key string) (string, bool)

// OSEnv reads the process environment.
func OSEnv(key string) (string, bool) { return os.LookupEnv(key) }

func getenv(env Env, key, def string) string {
	if v, ok := env(key); ok {
		return v
	}
	return def
}

// HFHome is constants.HF_HOME.
func HFHome(env Env) string {
	defaultHome := pyJoin(expandUser("~", env), ".cache")
	home := getenv(env, "HF_HOME", pyJoin(getenv(env, "XDG_CACHE_HOME", defaultHome), "huggingface"))
	return expandVars(expandUser(home, env), env)
}

// HubCacheDir is constants.HF_HUB_CACHE: HF_HUB_CACHE, else the legacy
// HUGGINGFACE_HUB_CACHE, else HF_HOME/hub; expanded, not resolved.
func HubCacheDir(env Env) string {
	legacy := getenv(env, "HUGGINGFACE_HUB_CACHE", pyJoin(HFHome(env), "hub"))
	return expandVars(expandUser(getenv(env, "HF_HUB_CACHE", legacy), env), env)
}

// AssetsCacheDir is constants.HF_ASSETS_CACHE.
func AssetsCacheDir(env Env) string {
	legacy := getenv(env, "HUGGINGFACE_ASSETS_CACHE", pyJoin(HFHome(env), "assets"))
	return expandVars(expandUser(getenv(env, "HF_ASSETS_CACHE", legacy), env), env)
}

// expandUser is posixpath.expanduser.
func expandUser(p string, env Env) string {
	if !strings.HasPrefix(p, "~") {
		return p
	}
	i := strings.IndexByte(p[1:], '/') + 1
	if i == 0 {
		i = len(p)
	}
	var home string
	if i == 1 {
		if h, ok := env("HOME"); ok {
			home = h
		} else if u, err := user.Current(); err == nil {
			home = u.HomeDir
		} else {
			return p
		}
	} else {
		u, err := user.Lookup(p[1:i])
		if err != nil {
			return p
		}
		home = u.HomeDir
	}
	home = strings.TrimRight(home, "/")
	if out := home + p[i:]; out != "" {
		return out
	}
	return "/"
}

var varPattern = regexp.MustCompile(`\$([A-Za-z0-9_]+|\{[^}]*\})`)

// expandVars is posixpath.expandvars: unknown variables stay as written.
func expandVars(p string, env Env) string {
	if !strings.Contains(p, "$") {
		return p
	}
	return varPattern.ReplaceAllStringFunc(p, func(m string) string {
		name := m[1:]
		if strings.HasPrefix(name, "{") && strings.HasSuffix(name, "}") {
			name = name[1 : len(name)-1]
		}
		if v, ok := env(name); ok {
			return v
		}
		return m
	})
}
