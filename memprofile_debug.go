//go:build memprof

package main

// Built with -tags memprof, the daemon writes a heap profile to
// $HFCACHEFS_MEMPROFILE on SIGUSR1: how the memory figures of
// scripts/bench-mount.sh were broken down.

import (
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
)

func init() {
	path := os.Getenv("HFCACHEFS_MEMPROFILE")
	if path == "" {
		return
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	go func() {
		for range sig {
			runtime.GC()
			if f, err := os.Create(path); err == nil {
				_ = pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
	}()
}
