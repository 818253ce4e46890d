package pid1

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// mountinfoEntry is one line of /proc/<pid>/mountinfo (proc(5)):
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
type mountinfoEntry struct {
	ID, Parent int
	Root       string // the root of the mount inside its filesystem
	MountPoint string
	FSType     string
	Source     string
}

// parseMountinfo parses mountinfo text. Paths come back unescaped (the
// kernel writes space, tab, newline and backslash as \040, \011, \012 and
// \134). A line it cannot read is an error naming the line.
func parseMountinfo(r io.Reader) ([]mountinfoEntry, error) {
	var entries []mountinfoEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		e, err := parseMountinfoLine(line)
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: %w", n, err)
		}
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	return entries, nil
}

func parseMountinfoLine(line string) (mountinfoEntry, error) {
	// Split on single spaces, not runs of them: an empty source prints as
	// an empty field.
	f := strings.Split(line, " ")
	sep := -1
	for i := 6; i < len(f); i++ { // optional fields start at index 6
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 {
		return mountinfoEntry{}, fmt.Errorf("%d fields and no \" - \" separator after the sixth: %q", len(f), line)
	}
	if len(f)-sep-1 != 3 {
		return mountinfoEntry{}, fmt.Errorf("%d fields after \" - \", want 3 (type, source, options): %q", len(f)-sep-1, line)
	}
	id, err := strconv.Atoi(f[0])
	if err != nil {
		return mountinfoEntry{}, fmt.Errorf("mount ID %q: %w", f[0], err)
	}
	parent, err := strconv.Atoi(f[1])
	if err != nil {
		return mountinfoEntry{}, fmt.Errorf("parent ID %q: %w", f[1], err)
	}
	e := mountinfoEntry{
		ID:         id,
		Parent:     parent,
		Root:       unescapeMountinfo(f[3]),
		MountPoint: unescapeMountinfo(f[4]),
		FSType:     unescapeMountinfo(f[sep+1]),
		Source:     unescapeMountinfo(f[sep+2]),
	}
	if !strings.HasPrefix(e.MountPoint, "/") {
		return mountinfoEntry{}, fmt.Errorf("mount point %q is not absolute", f[4])
	}
	return e, nil
}

// unescapeMountinfo undoes the kernel's octal escapes (\ooo); a backslash
// followed by anything else is kept as it is.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) && s[i+1] <= '3' {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// mountTable maps each mount point to the filesystem type mounted on top
// of it.
func mountTable(entries []mountinfoEntry) map[string]string {
	t := make(map[string]string, len(entries))
	for _, e := range entries {
		t[e.MountPoint] = e.FSType // later lines are mounted over earlier ones
	}
	return t
}
