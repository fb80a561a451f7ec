package mount

import (
	"fmt"
	"syscall"
)

// fsKind is what statfs says about the file system a folder is on, for
// choosing how to learn of changes.
type fsKind struct {
	Name string
	// Shared: other machines may write it, and inotify (which sees only
	// what this kernel does) misses their writes.
	Shared bool
	Magic  int64
}

// Magic numbers of statfs's f_type (linux/magic.h and the file systems'
// own headers) of file systems other machines write: inotify here never
// hears of their writes.
var sharedMagics = map[int64]string{
	0x6969:     "nfs",
	0xff534d42: "cifs",
	0xfe534d42: "smb2",
	0x517b:     "smb",
	0x00c36400: "ceph",
	0x0bd00bd0: "lustre",
	0x47504653: "gpfs",
	0x65735546: "fuse", // GlusterFS, JuiceFS, s3fs, sshfs, CephFS's and Lustre's FUSE clients...
	0x65735543: "fusectl",
	0x01021997: "9p", // v9fs: virtiofs-like host shares, WSL
	0x6e667364: "nfsd",
	0x5346414f: "afs",
	0x6b414653: "kafs",
	0x7461636f: "ocfs2",
	0x01161970: "gfs2",
	0x19830326: "beegfs",
	0xaad7aaea: "panfs",
	0x013111a8: "ibrix",
	0x6a656a63: "fhgfs",
	0x564c:     "ncp",
	0xa501fcf5: "vxfs",
}

var localMagics = map[int64]string{
	0xef53:     "ext4", // ext2/3/4 share it
	0x58465342: "xfs",
	0x9123683e: "btrfs",
	0x01021994: "tmpfs",
	0x2fc12fc1: "zfs",
	0xf2f52010: "f2fs",
	0x794c7630: "overlayfs",
	0x4d44:     "vfat",
	0x2011bab0: "exfat",
	0x5346544e: "ntfs",
	0x3153464a: "jfs",
	0x52654973: "reiserfs",
	0xca451a4e: "bcachefs",
	0x858458f6: "ramfs",
	0x73717368: "squashfs",
	0x6165676c: "pstorefs",
	0x62656572: "sysfs",
	0x9fa0:     "proc",
	0x64626720: "debugfs",
	0x15013346: "erofs",
}

// statfsKind names the file system dir is on.
func statfsKind(dir string) (fsKind, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fsKind{}, err
	}
	return kindOfMagic(int64(uint32(st.Type))), nil
}

// kindOfMagic names an f_type. Unknown file systems count as shared:
// polling costs a little, missing every change of another node costs
// correctness.
func kindOfMagic(magic int64) fsKind {
	if name, ok := localMagics[magic]; ok {
		return fsKind{Name: name, Magic: magic}
	}
	if name, ok := sharedMagics[magic]; ok {
		return fsKind{Name: name, Shared: true, Magic: magic}
	}
	return fsKind{Name: fmt.Sprintf("unknown (f_type 0x%x)", magic), Shared: true, Magic: magic}
}
