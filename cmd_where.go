package main

import (
	"fmt"
	"os"

	"github.com/hfcachefs/hfcachefs/cachecore"
)

var whereCommand = &command{
	name:    "where",
	summary: "print the hub cache and assets folders huggingface_hub would use here",
	usage:   "[--format text|json]",
	help: `
Prints the folders huggingface_hub picks from the environment (HF_HUB_CACHE,
HUGGINGFACE_HUB_CACHE, HF_HOME, XDG_CACHE_HOME, HF_ASSETS_CACHE, ...), with ~
and $VARS expanded as it does, and whether the hub cache exists.
Exit status: 0 when the hub cache exists, 3 when it does not.`,
}

func init() {
	whereCommand.run = runWhere
	register(whereCommand)
}

func runWhere(env *cliEnv, args []string) error {
	fs := newFlags(env, whereCommand)
	format := fs.String("format", "text", "text or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	hub := cachecore.HubCacheDir(env.lookupEnv)
	assets := cachecore.AssetsCacheDir(env.lookupEnv)
	exists := isDirPath(hub)
	if *format == "json" {
		fmt.Fprintln(env.stdout, pyJSONObject([]kv{{"hub_cache", hub}, {"assets_cache", assets}, {"hub_cache_exists", exists}}))
	} else {
		fmt.Fprintf(env.stdout, "hub cache:    %s%s\nassets cache: %s\n", hub, map[bool]string{true: "", false: " (does not exist)"}[exists], assets)
	}
	if !exists {
		return &exitError{code: 3}
	}
	return nil
}

func isDirPath(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.IsDir()
}
