package sqlite

import (
	"os"
	"syscall"
)

// datasync makes f's data durable with fdatasync, as SQLite itself does: it
// skips the inode's timestamps, which fsync would write (a journal commit
// of the file system) after every write.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
