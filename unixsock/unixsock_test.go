package unixsock

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

var types = []struct {
	name string
	typ  int
}{{"stream", unix.SOCK_STREAM}, {"seqpacket", unix.SOCK_SEQPACKET}, {"dgram", unix.SOCK_DGRAM}}

// serve serves typ at path and returns what closes it and removes its file.
func serve(path string, cfg Config) (func(), error) {
	if cfg.Type == unix.SOCK_DGRAM {
		c, f, err := ListenPacket(path, cfg)
		if err != nil {
			return nil, err
		}
		return func() { c.Close(); f.Remove() }, nil
	}
	l, f, err := Listen(path, cfg)
	if err != nil {
		return nil, err
	}
	return func() { l.Close(); f.Remove() }, nil
}

// connect connects a socket of typ to path (for SOCK_DGRAM: sets the
// peer, which fails unless a socket is bound there).
func connect(path string, typ int) error {
	fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Connect(fd, &unix.SockaddrUnix{Name: path})
}

// leftover leaves a socket file of typ at path that nobody serves.
func leftover(t *testing.T, path string, typ int) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, typ, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
}

func TestServe(t *testing.T) {
	for _, ty := range types {
		t.Run(ty.name, func(t *testing.T) {
			for _, tc := range []struct {
				desc   string
				before func(t *testing.T, path string) // what is at path first
				want   string                          // error, "" for success
				kept   string                          // content a regular file keeps
			}{
				{desc: "nothing there"},
				{desc: "stale socket replaced", before: func(t *testing.T, p string) { leftover(t, p, ty.typ) }},
				{desc: "stale temporary name replaced", before: func(t *testing.T, p string) {
					leftover(t, filepath.Join(filepath.Dir(p), ".s.new"), ty.typ)
				}},
				{desc: "live socket refused", want: "is in use", before: func(t *testing.T, p string) {
					closeIt, err := serve(p, Config{Type: ty.typ, Perm: 0o600})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(closeIt)
				}},
				{desc: "live socket of another type refused", want: "another type", before: func(t *testing.T, p string) {
					other := unix.SOCK_DGRAM
					if ty.typ == unix.SOCK_DGRAM {
						other = unix.SOCK_STREAM
					}
					closeIt, err := serve(p, Config{Type: other, Perm: 0o600})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(closeIt)
				}},
				{desc: "regular file refused and kept", want: "is not a socket", kept: "keep", before: func(t *testing.T, p string) {
					os.WriteFile(p, []byte("keep"), 0o644)
				}},
				{desc: "regular file at the temporary name refused and kept", want: "is not a socket", before: func(t *testing.T, p string) {
					os.WriteFile(filepath.Join(filepath.Dir(p), ".s.new"), []byte("keep"), 0o644)
				}},
			} {
				t.Run(tc.desc, func(t *testing.T) {
					dir := t.TempDir()
					path := filepath.Join(dir, "s")
					if tc.before != nil {
						tc.before(t, path)
					}
					closeIt, err := serve(path, Config{Type: ty.typ, Perm: 0o640})
					if tc.want != "" {
						if err == nil {
							closeIt()
							t.Fatalf("served over it; want an error %q", tc.want)
						}
						if !strings.Contains(err.Error(), tc.want) {
							t.Fatalf("error %v, want %q", err, tc.want)
						}
						if tc.kept != "" {
							if b, _ := os.ReadFile(path); string(b) != tc.kept {
								t.Fatalf("the file holds %q, want %q kept", b, tc.kept)
							}
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					var st unix.Stat_t
					if err := unix.Lstat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK || st.Mode&0o777 != 0o640 {
						t.Fatalf("socket file mode %o (%v), want a socket with 0640", st.Mode, err)
					}
					if err := connect(path, ty.typ); err != nil {
						t.Fatalf("connect: %v", err)
					}
					if ents, _ := os.ReadDir(dir); len(ents) != 1 {
						t.Fatalf("directory holds %v, want only s", ents)
					}
					closeIt()
					if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
						t.Fatalf("socket file after Remove: %v", err)
					}
				})
			}
		})
	}
}

// The mode is set whatever the umask, and before any client can connect:
// a client that gets through finds the final mode already there.
func TestModeBeforeConnect(t *testing.T) {
	old := unix.Umask(0)
	defer unix.Umask(old)
	for _, ty := range types {
		t.Run(ty.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s")
			var stop, bad atomic.Bool
			var connected atomic.Int64
			done := make(chan struct{})
			go func() {
				defer close(done)
				for !stop.Load() {
					if connect(path, ty.typ) != nil {
						continue
					}
					connected.Add(1)
					var st unix.Stat_t
					if unix.Lstat(path, &st) == nil && st.Mode&0o777 != 0o600 {
						bad.Store(true)
					}
				}
			}()
			for range 200 {
				closeIt, err := serve(path, Config{Type: ty.typ, Perm: 0o600})
				if err != nil {
					stop.Store(true)
					<-done
					t.Fatal(err)
				}
				closeIt()
			}
			stop.Store(true)
			<-done
			if bad.Load() {
				t.Fatal("a client connected while the socket had the umask's mode")
			}
			t.Logf("%d connections during 200 listens", connected.Load())
		})
	}
}

// Remove leaves a file that replaced the socket file.
func TestRemoveLeavesReplacement(t *testing.T) {
	for _, ty := range types {
		t.Run(ty.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s")
			closeIt, err := serve(path, Config{Type: ty.typ, Perm: 0o600})
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(path)
			os.WriteFile(path, []byte("other"), 0o600)
			closeIt()
			if b, _ := os.ReadFile(path); string(b) != "other" {
				t.Fatal("Remove removed a file that was not its socket")
			}
		})
	}
}

func TestServeErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		desc  string
		serve func() error
		want  string
	}{
		{"long path", func() error {
			_, _, err := Listen(filepath.Join(dir, strings.Repeat("x", 120)), Config{Type: unix.SOCK_STREAM})
			return err
		}, "at most 107"},
		{"dgram through Listen", func() error {
			_, _, err := Listen(filepath.Join(dir, "a"), Config{Type: unix.SOCK_DGRAM})
			return err
		}, "not SOCK_STREAM or SOCK_SEQPACKET"},
		{"stream through ListenPacket", func() error {
			_, _, err := ListenPacket(filepath.Join(dir, "b"), Config{Type: unix.SOCK_STREAM})
			return err
		}, "not SOCK_DGRAM"},
		{"missing directory", func() error {
			_, _, err := Listen(filepath.Join(dir, "none", "c"), Config{Type: unix.SOCK_STREAM})
			return err
		}, "bind("},
	} {
		if err := tc.serve(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.desc, err, tc.want)
		}
	}
}

// A datagram socket with PassCred gets the sender's credentials with
// every datagram, and its fds.
func TestPassCredAndRights(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d")
	c, f, err := ListenPacket(path, Config{Type: unix.SOCK_DGRAM, Perm: 0o600, PassCred: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Remove()
	defer c.Close()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Sendmsg(fd, []byte("x"), unix.UnixRights(0), &unix.SockaddrUnix{Name: path}, 0); err != nil {
		t.Fatal(err)
	}
	buf, oob := make([]byte, 16), make([]byte, ControlSpace(4))
	_, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	fds, cred := ParseControl(oob[:oobn])
	for _, fd := range fds {
		unix.Close(fd)
	}
	if len(fds) != 1 || cred == nil || int(cred.Pid) != os.Getpid() || int(cred.Uid) != os.Getuid() {
		t.Fatalf("fds %v, cred %+v; want one fd and pid %d", fds, cred, os.Getpid())
	}
}

func TestParseControl(t *testing.T) {
	rights := unix.UnixRights(10, 11, 12)
	cred := unix.UnixCredentials(&unix.Ucred{Pid: 42, Uid: 7, Gid: 8})
	cat := func(bs ...[]byte) []byte { return slices.Concat(bs...) }
	for _, tc := range []struct {
		desc string
		oob  []byte
		fds  []int
		pid  int32 // 0: no credentials
	}{
		{"rights then creds", cat(rights, cred), []int{10, 11, 12}, 42},
		{"creds then rights", cat(cred, rights), []int{10, 11, 12}, 42},
		{"two rights messages", cat(unix.UnixRights(1), unix.UnixRights(2, 3)), []int{1, 2, 3}, 0},
		{"creds only", cred, nil, 42},
		// Cut after two fds, its length field still saying three.
		{"rights truncated", cat(cred, rights[:unix.CmsgLen(8)]), []int{10, 11}, 42},
		{"creds truncated", cat(rights, cred[:unix.CmsgLen(4)]), []int{10, 11, 12}, 0},
		{"nothing", nil, nil, 0},
		{"shorter than a header", []byte{1, 2, 3}, nil, 0},
		{"a bare header", make([]byte, unix.CmsgLen(0)), nil, 0},
	} {
		fds, c := ParseControl(tc.oob)
		var pid int32
		if c != nil {
			pid = c.Pid
			if c.Uid != 7 || c.Gid != 8 {
				t.Errorf("%s: cred %+v", tc.desc, c)
			}
		}
		if !slices.Equal(fds, tc.fds) || pid != tc.pid {
			t.Errorf("%s: ParseControl = %v, pid %d; want %v, pid %d", tc.desc, fds, pid, tc.fds, tc.pid)
		}
	}
}

// FuzzParseControl: any bytes give fds and credentials without a panic,
// and no more fds than 4-byte words.
func FuzzParseControl(f *testing.F) {
	f.Add(unix.UnixRights(1, 2))
	f.Add(unix.UnixCredentials(&unix.Ucred{Pid: 1}))
	f.Add(append(unix.UnixRights(3), unix.UnixCredentials(&unix.Ucred{Pid: 1})...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		fds, _ := ParseControl(b)
		if len(fds) > len(b)/4 {
			t.Fatalf("%d fds from %d bytes", len(fds), len(b))
		}
	})
}
