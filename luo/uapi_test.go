package luo

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// uapiProbe prints, for every struct and ioctl of the kernel's
// liveupdate.h, "key value" lines the test compares with the Go side.
const uapiProbe = `#include <stdio.h>
#include <stddef.h>
#include <linux/liveupdate.h>
#define S(t) printf("sizeof.%s %zu\n", #t, sizeof(struct t))
#define O(t, f) printf("offsetof.%s.%s %zu\n", #t, #f, offsetof(struct t, f))
#define I(n) printf("ioctl.%s %lu\n", #n, (unsigned long)(n))
int main(void) {
	printf("const.LIVEUPDATE_IOCTL_TYPE %d\n", LIVEUPDATE_IOCTL_TYPE);
	printf("const.LIVEUPDATE_SESSION_NAME_LENGTH %d\n", LIVEUPDATE_SESSION_NAME_LENGTH);
	S(liveupdate_ioctl_create_session);
	O(liveupdate_ioctl_create_session, size);
	O(liveupdate_ioctl_create_session, fd);
	O(liveupdate_ioctl_create_session, name);
	S(liveupdate_ioctl_retrieve_session);
	O(liveupdate_ioctl_retrieve_session, size);
	O(liveupdate_ioctl_retrieve_session, fd);
	O(liveupdate_ioctl_retrieve_session, name);
	S(liveupdate_session_preserve_fd);
	O(liveupdate_session_preserve_fd, size);
	O(liveupdate_session_preserve_fd, fd);
	O(liveupdate_session_preserve_fd, token);
	S(liveupdate_session_retrieve_fd);
	O(liveupdate_session_retrieve_fd, size);
	O(liveupdate_session_retrieve_fd, fd);
	O(liveupdate_session_retrieve_fd, token);
	S(liveupdate_session_finish);
	O(liveupdate_session_finish, size);
	O(liveupdate_session_finish, reserved);
	S(liveupdate_session_get_name);
	O(liveupdate_session_get_name, size);
	O(liveupdate_session_get_name, reserved);
	O(liveupdate_session_get_name, name);
	I(LIVEUPDATE_IOCTL_CREATE_SESSION);
	I(LIVEUPDATE_IOCTL_RETRIEVE_SESSION);
	I(LIVEUPDATE_SESSION_PRESERVE_FD);
	I(LIVEUPDATE_SESSION_RETRIEVE_FD);
	I(LIVEUPDATE_SESSION_FINISH);
	I(LIVEUPDATE_SESSION_GET_NAME);
	return 0;
}
`

// goLayout is the Go side of every line uapiProbe prints.
func goLayout() map[string]uint64 {
	var cs createSessionArg
	var rs retrieveSessionArg
	var pf preserveFDArg
	var rf retrieveFDArg
	var fin finishArg
	var gn getNameArg
	return map[string]uint64{
		"const.LIVEUPDATE_IOCTL_TYPE":                     ioctlType,
		"const.LIVEUPDATE_SESSION_NAME_LENGTH":            sessionNameLength,
		"sizeof.liveupdate_ioctl_create_session":          uint64(unsafe.Sizeof(cs)),
		"offsetof.liveupdate_ioctl_create_session.size":   uint64(unsafe.Offsetof(cs.Size)),
		"offsetof.liveupdate_ioctl_create_session.fd":     uint64(unsafe.Offsetof(cs.FD)),
		"offsetof.liveupdate_ioctl_create_session.name":   uint64(unsafe.Offsetof(cs.Name)),
		"sizeof.liveupdate_ioctl_retrieve_session":        uint64(unsafe.Sizeof(rs)),
		"offsetof.liveupdate_ioctl_retrieve_session.size": uint64(unsafe.Offsetof(rs.Size)),
		"offsetof.liveupdate_ioctl_retrieve_session.fd":   uint64(unsafe.Offsetof(rs.FD)),
		"offsetof.liveupdate_ioctl_retrieve_session.name": uint64(unsafe.Offsetof(rs.Name)),
		"sizeof.liveupdate_session_preserve_fd":           uint64(unsafe.Sizeof(pf)),
		"offsetof.liveupdate_session_preserve_fd.size":    uint64(unsafe.Offsetof(pf.Size)),
		"offsetof.liveupdate_session_preserve_fd.fd":      uint64(unsafe.Offsetof(pf.FD)),
		"offsetof.liveupdate_session_preserve_fd.token":   uint64(unsafe.Offsetof(pf.Token)),
		"sizeof.liveupdate_session_retrieve_fd":           uint64(unsafe.Sizeof(rf)),
		"offsetof.liveupdate_session_retrieve_fd.size":    uint64(unsafe.Offsetof(rf.Size)),
		"offsetof.liveupdate_session_retrieve_fd.fd":      uint64(unsafe.Offsetof(rf.FD)),
		"offsetof.liveupdate_session_retrieve_fd.token":   uint64(unsafe.Offsetof(rf.Token)),
		"sizeof.liveupdate_session_finish":                uint64(unsafe.Sizeof(fin)),
		"offsetof.liveupdate_session_finish.size":         uint64(unsafe.Offsetof(fin.Size)),
		"offsetof.liveupdate_session_finish.reserved":     uint64(unsafe.Offsetof(fin.Reserved)),
		"sizeof.liveupdate_session_get_name":              uint64(unsafe.Sizeof(gn)),
		"offsetof.liveupdate_session_get_name.size":       uint64(unsafe.Offsetof(gn.Size)),
		"offsetof.liveupdate_session_get_name.reserved":   uint64(unsafe.Offsetof(gn.Reserved)),
		"offsetof.liveupdate_session_get_name.name":       uint64(unsafe.Offsetof(gn.Name)),
		"ioctl.LIVEUPDATE_IOCTL_CREATE_SESSION":           uint64(ioctlCreateSession),
		"ioctl.LIVEUPDATE_IOCTL_RETRIEVE_SESSION":         uint64(ioctlRetrieveSession),
		"ioctl.LIVEUPDATE_SESSION_PRESERVE_FD":            uint64(ioctlPreserveFD),
		"ioctl.LIVEUPDATE_SESSION_RETRIEVE_FD":            uint64(ioctlRetrieveFD),
		"ioctl.LIVEUPDATE_SESSION_FINISH":                 uint64(ioctlFinish),
		"ioctl.LIVEUPDATE_SESSION_GET_NAME":               uint64(ioctlGetName),
	}
}

// uapiHeader finds liveupdate.h: $LUOINIT_UAPI_HEADER, else the header
// saved beside the newest cached VM-test kernel (tests/kernel/build.sh).
func uapiHeader() string {
	if h := os.Getenv("LUOINIT_UAPI_HEADER"); h != "" {
		return h
	}
	cache := os.Getenv("LUOINIT_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return ""
			}
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "luoinit")
	}
	matches, _ := filepath.Glob(filepath.Join(cache, "kernel", "*", "liveupdate.h"))
	var newest string
	var newestTime int64
	for _, m := range matches {
		if st, err := os.Stat(m); err == nil && st.ModTime().UnixNano() > newestTime {
			newest, newestTime = m, st.ModTime().UnixNano()
		}
	}
	return newest
}

// TestUAPIMatchesKernelHeader compiles uapiProbe against the kernel's own
// liveupdate.h and compares every size, offset and ioctl number with the
// Go declarations. `make test` sets LUOINIT_REQUIRE_UAPI=1, which turns a
// missing header or compiler into a failure instead of a skip.
func TestUAPIMatchesKernelHeader(t *testing.T) {
	skip := t.Skipf
	if os.Getenv("LUOINIT_REQUIRE_UAPI") == "1" {
		skip = t.Fatalf
	}
	header := uapiHeader()
	if header == "" {
		skip("no liveupdate.h: set LUOINIT_UAPI_HEADER or run `make kernel` first")
		return
	}
	if _, err := os.Stat(header); err != nil {
		skip("liveupdate.h: %v", err)
		return
	}
	cc, err := exec.LookPath("gcc")
	if err != nil {
		skip("no gcc to compile the layout probe: %v", err)
		return
	}
	t.Logf("kernel header: %s", header)

	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "inc", "linux"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(header)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "inc", "linux", "liveupdate.h"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "probe.c")
	if err := os.WriteFile(src, []byte(uapiProbe), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "probe")
	if out, err := exec.Command(cc, "-Wall", "-Werror", "-I", filepath.Join(dir, "inc"), "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("compiling the layout probe against %s: %v\n%s", header, err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("running the layout probe: %v", err)
	}

	want := goLayout()
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			t.Fatalf("probe line %q", sc.Text())
		}
		n, err := strconv.ParseUint(val, 10, 64)
		if err != nil {
			t.Fatalf("probe line %q: %v", sc.Text(), err)
		}
		seen[key] = true
		g, ok := want[key]
		switch {
		case !ok:
			t.Errorf("%s: kernel says %d, Go side has no such item", key, n)
		case g != n:
			t.Errorf("%s: kernel header says %s, Go says %s", key, fmtNum(key, n), fmtNum(key, g))
		}
	}
	for key := range want {
		if !seen[key] {
			t.Errorf("%s: Go side has it, the probe printed nothing", key)
		}
	}
	t.Logf("%d sizes, offsets and ioctl numbers match the kernel header", len(seen))
}

func fmtNum(key string, n uint64) string {
	if strings.HasPrefix(key, "ioctl.") {
		return fmt.Sprintf("%#x", n)
	}
	return strconv.FormatUint(n, 10)
}
