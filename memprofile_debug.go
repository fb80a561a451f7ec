//go:build memprof

package main

// Built with -tags memprof, the daemon writes a heap profile to
// $HFCACHEFS_MEMPROFILE on SIGUSR1, and SIGUSR2 starts, then stops, a CPU
// profile to $HFCACHEFS_MEMPROFILE.cpu: how the figures of
// scripts/bench-mount.sh were broken down.

import (
	"fmt"
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
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if f, err := os.Create(path); err == nil {
				_ = pprof.WriteHeapProfile(f)
				f.Close()
			}
			_ = os.WriteFile(path+".memstats", []byte(fmt.Sprintf(
				"HeapAlloc %d\nHeapInuse %d\nHeapIdle %d\nHeapReleased %d\nStackInuse %d\nGCSys %d\nOtherSys %d\nMSpanInuse %d\nSys %d\n",
				ms.HeapAlloc>>20, ms.HeapInuse>>20, ms.HeapIdle>>20, ms.HeapReleased>>20, ms.StackInuse>>20, ms.GCSys>>20,
				ms.OtherSys>>20, ms.MSpanInuse>>20, ms.Sys>>20)), 0o644)
		}
	}()
}
