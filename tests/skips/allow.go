package main

import "regexp"

// allowed is every reason a unit test may skip for in CI, and only there
// does it matter: elsewhere every skip is listed and none fails the run.
//
// CI's machine is Debian 12, runs everything as root, and has what
// tests/deps.sh installs before the unit tests (gcc, zstd, e2fsprogs,
// erofs-utils...), namespaces, tmpfs on /dev/shm and a kernel newer than
// 5.14. A test that skips because one of those is missing (not root, no
// gcc, no tool, a test program that does not build, no namespace) skips
// there only because something broke: that fails CI. So does a skip
// without a reason, and any reason not below.
//
// An entry is one test of one package (relative to the module) and a
// pattern of its reason, the text given to t.Skip without the file:line
// in front. Each says why skipping there leaves nothing unchecked.
var allowed = []allow{
	{
		// make unit runs before make layout builds the kernel, so on a
		// fresh machine there is no header yet; make layout then runs
		// this very test against the kernel's header with
		// LUOINIT_REQUIRE_UAPI=1, where it cannot skip. No gcc is
		// another reason, and not allowed.
		pkg: "luo", test: "TestUAPIMatchesKernelHeader",
		reason: regexp.MustCompile(`^no liveupdate\.h: `),
		why:    "make layout runs it against the VM kernel's header",
	},
	{
		// Not a check: it rewrites preflight's testdata on request.
		pkg: "preflight", test: "TestWriteTestdata",
		reason: regexp.MustCompile(`^set LUOINIT_WRITE_TESTDATA=1 `),
		why:    "writes testdata on request, checks nothing",
	},
}

type allow struct {
	pkg, test string
	reason    *regexp.Regexp
	why       string
}

// allowedFor is the entry that allows s, or nil.
func allowedFor(s skip) *allow {
	for i, a := range allowed {
		if a.pkg == s.pkg && a.test == s.test && a.reason.MatchString(s.reason) {
			return &allowed[i]
		}
	}
	return nil
}
