//go:build memprof

package main

// Built with -tags memprof, the daemon writes a heap profile to
// $HFCACHEFS_MEMPROFILE on SIGUSR1, and SIGUSR2 starts, then stops, a CPU
// profile to $HFCACHEFS_MEMPROFILE.cpu: how the figures of
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
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		var cpu *os.File
		for s := range sig {
			if s == syscall.SIGUSR2 {
				if cpu == nil {
					if f, err := os.Create(path + ".cpu"); err == nil && pprof.StartCPUProfile(f) == nil {
						cpu = f
					}
				} else {
					pprof.StopCPUProfile()
					cpu.Close()
					cpu = nil
				}
				continue
			}
			runtime.GC()
			if f, err := os.Create(path); err == nil {
				_ = pprof.WriteHeapProfile(f)
				f.Close()
			}
		}
	}()
}
