// Package mountinfo reads /proc/self/mountinfo (proc(5)): the mount
// package decides with it what it may mount over or unmount, and the
// real-mount test harness what it mounted.
package mountinfo

import (
	"os"
	"strconv"
	"strings"
)

// Entry is one line of mountinfo.
type Entry struct {
	ID, ParentID int
	Dev          string // major:minor; a FUSE connection's number is the minor
	Root         string
	Mountpoint   string // unescaped
	FSType       string
	Source       string
}

// Parse parses mountinfo text, skipping malformed lines.
func Parse(data string) []Entry {
	var entries []Entry
	for _, line := range strings.Split(data, "\n") {
		f := strings.Fields(line)
		// The optional fields end at "-"; fstype and source follow it.
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+2 >= len(f) {
			continue
		}
		id, err1 := strconv.Atoi(f[0])
		parent, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			continue
		}
		entries = append(entries, Entry{
			ID: id, ParentID: parent, Dev: f[2],
			Root:       Unescape(f[3]),
			Mountpoint: Unescape(f[4]),
			FSType:     Unescape(f[sep+1]),
			Source:     Unescape(f[sep+2]),
		})
	}
	return entries
}

// Unescape undoes the kernel's octal escapes (\040 for a space, \011,
// \012, \134).
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Read reads this process's mountinfo.
func Read() ([]Entry, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return Parse(string(data)), nil
}
