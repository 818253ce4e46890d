package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer for several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type testServer struct {
	sock  string
	srv   *server
	st    *Store
	arena *os.File
	logs  *syncBuffer
}

// startServer serves a new arena of size bytes on a socket in a temporary
// directory, as workload "kvtest" pushing to prepareSocket, until the test
// ends.
func startServer(t *testing.T, size int64, prepareSocket string) *testServer {
	t.Helper()
	logs := &syncBuffer{}
	logger := log.New(logs, "kvcache: ", 0)
	st, arena, err := newArena(size, logger)
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{sock: filepath.Join(t.TempDir(), "kv.sock"), st: st, arena: arena, logs: logs}
	ts.srv = newServer(st, arena, "kvtest", prepareSocket, 5*time.Second, logger)
	ln, err := listenUnix(ts.sock)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- ts.srv.serve(ln) }()
	t.Cleanup(func() {
		ts.srv.shutdown(2 * time.Second)
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs)
		}
	})
	return ts
}

// rawConn is a client connection that sends lines as they are.
type rawConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, sock string) *rawConn {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawConn{t: t, c: c, r: bufio.NewReaderSize(c, maxLine)}
}

func (rc *rawConn) write(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatalf("writing %.40q: %v", s, err)
	}
}

func (rc *rawConn) answer() string {
	rc.t.Helper()
	line, err := rc.r.ReadString('\n')
	if err != nil {
		rc.t.Fatalf("reading an answer: %v (got %q)", err, line)
	}
	return strings.TrimSuffix(line, "\n")
}

func TestProtocol(t *testing.T) {
	ts := startServer(t, 1<<20, filepath.Join(t.TempDir(), "no-prepare.sock"))
	rc := dialRaw(t, ts.sock)
	tests := []struct {
		request string
		want    string // the answer; a trailing "*" matches any rest
	}{
		{"COUNT", "COUNT 0"},
		{"STATS", "STATS entries=0 used=128 size=1048576 restored=false generation=0"},
		{"GET a", "NOTFOUND"},
		{"SET a 1", "OK"},
		{"STATS", "STATS entries=1 used=142 size=1048576 restored=false generation=0"},
		{"GET a", "VALUE 1"},
		{"get a", "VALUE 1"},
		{"SET a two", "OK"},
		{"GET a", "VALUE two"},
		{"SET b x\r", "OK"},
		{"COUNT", "COUNT 2"},
		{"DEL a", "OK"},
		{"DEL a", "NOTFOUND"},
		{"GET a", "NOTFOUND"},
		{"GET b", "VALUE x"},
		{"COUNT", "COUNT 1"},
		{"SET " + strings.Repeat("k", 255) + " " + strings.Repeat("v", 65536), "OK"},
		{"GET " + strings.Repeat("k", 255), "VALUE " + strings.Repeat("v", 65536)},

		{"", "ERR empty request"},
		{"HELLO", `ERR unknown command "HELLO" (want SET, GET, DEL, COUNT, STATS, PUSH or QUIT)`},
		{"SET a", "ERR SET: want SET key value, separated by single spaces (a value holds no space)"},
		{"SET a b c", "ERR SET: want SET key value*"},
		{"SET  a b", "ERR SET: want SET key value*"},
		{"SET a\tb c", "ERR SET: key holds byte 0x09 at position 1: keys and values hold no space or control character"},
		{"GET", "ERR GET: want GET key*"},
		{"DEL a b", "ERR DEL: want DEL key*"},
		{"COUNT now", "ERR COUNT: takes no argument"},
		{"GET " + strings.Repeat("k", 256), "ERR GET: key is 256 bytes long, at most 255"},
		{"SET k " + strings.Repeat("v", 65537), "ERR SET: value is 65537 bytes long, at most 65536"},
		{"SET k " + strings.Repeat("v", maxLine), fmt.Sprintf("ERR request line too long (at most %d bytes)", maxLine)},
		{"COUNT", "COUNT 2"}, // the connection survives all of the above
		{"PUSH", "ERR push: handoff: workload \"kvtest\": connecting to *"},
	}
	for _, tt := range tests {
		rc.write(tt.request + "\n")
		got := rc.answer()
		if want, ok := strings.CutSuffix(tt.want, "*"); ok {
			if !strings.HasPrefix(got, want) {
				t.Errorf("%.40q: got %.80q, want %.80q...", tt.request, got, want)
			}
		} else if got != tt.want {
			t.Errorf("%.40q: got %.80q, want %.80q", tt.request, got, tt.want)
		}
	}
	rc.write("QUIT\n")
	if got := rc.answer(); got != "OK" {
		t.Fatalf("QUIT: %q", got)
	}
	if rest, err := io.ReadAll(rc.r); err != nil || len(rest) != 0 {
		t.Fatalf("after QUIT: %q, %v; want the connection closed", rest, err)
	}
}

func TestProtocolPipelined(t *testing.T) {
	ts := startServer(t, 1<<20, "")
	rc := dialRaw(t, ts.sock)
	const n = 2000
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "SET %s %s\nGET %s\n", keyName(i), valueFor(keyName(i)), keyName(i))
	}
	b.WriteString("COUNT\nBAD\nGET key-00007") // the last one without its newline
	written := make(chan error, 1)
	go func() { _, err := io.WriteString(rc.c, b.String()); written <- err }()
	for i := range n {
		if got := rc.answer(); got != "OK" {
			t.Fatalf("SET #%d: %q", i, got)
		}
		if got, want := rc.answer(), "VALUE "+valueFor(keyName(i)); got != want {
			t.Fatalf("GET #%d: %q, want %q", i, got, want)
		}
	}
	if got := rc.answer(); got != fmt.Sprintf("COUNT %d", n) {
		t.Fatalf("COUNT: %q", got)
	}
	if got := rc.answer(); !strings.HasPrefix(got, "ERR unknown command") {
		t.Fatalf("BAD: %q", got)
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	rc.c.(*net.UnixConn).CloseWrite()
	if got, want := rc.answer(), "VALUE "+valueFor("key-00007"); got != want {
		t.Fatalf("a last request without newline: %q, want %q", got, want)
	}
}

func TestConcurrentClients(t *testing.T) {
	ts := startServer(t, 4<<20, "")
	const clients, keys = 4, 300
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		wg.Go(func() {
			conn, err := dialClient(ts.sock, 10*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer conn.close()
			for i := range keys {
				k := fmt.Sprintf("c%d-%d", c, i)
				if a, err := conn.roundTrip("SET " + k + " " + valueFor(k)); err != nil || a != "OK" {
					errs <- fmt.Errorf("SET %s: %q, %v", k, a, err)
					return
				}
				if a, err := conn.roundTrip("GET " + k); err != nil || a != "VALUE "+valueFor(k) {
					errs <- fmt.Errorf("GET %s: %q, %v", k, a, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := ts.st.Count(); n != clients*keys {
		t.Fatalf("Count %d, want %d", n, clients*keys)
	}
}

// runCmd runs the command line args and returns its exit status, stdout
// and stderr.
func runCmd(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestClientCommands(t *testing.T) {
	ts := startServer(t, 1<<20, "")
	missing := filepath.Join(t.TempDir(), "missing.sock")
	// In order: each step sees what the ones before it did.
	tests := []struct {
		args       []string
		wantCode   int
		wantOut    string // stdout, exactly
		wantErrHas string // in stderr
	}{
		{[]string{"COUNT"}, 0, "COUNT 0\n", ""},
		{[]string{"SET", "greeting", "hello"}, 0, "OK\n", ""},
		{[]string{"set", "greeting", "hi"}, 0, "OK\n", ""},
		{[]string{"GET", "greeting"}, 0, "VALUE hi\n", ""},
		{[]string{"GET", "nothing"}, 1, "NOTFOUND\n", ""},
		{[]string{"DEL", "greeting"}, 0, "OK\n", ""},
		{[]string{"DEL", "greeting"}, 1, "NOTFOUND\n", ""},
		{[]string{"fill", "1500"}, 0, "filled 1500 keys\n", ""},
		{[]string{"COUNT"}, 0, "COUNT 1500\n", ""},
		{[]string{"verify", "1500"}, 0, "verified 1500 keys\n", ""},
		{[]string{"verify", "0"}, 0, "verified 0 keys\n", ""},
		{[]string{"STATS"}, 0, "", ""}, // checked below
		{[]string{"SET", "key-00042", "changed"}, 0, "OK\n", ""},
		{[]string{"verify", "1500"}, 1, "", `mismatch at key key-00042 (#42 of 1500): got "VALUE changed", want "VALUE ` + valueFor("key-00042") + `"`},
		{[]string{"DEL", "key-00042"}, 0, "OK\n", ""},
		{[]string{"verify", "1500"}, 1, "", `mismatch at key key-00042 (#42 of 1500): got "NOTFOUND"`},
		{[]string{"verify", "1501"}, 1, "", "mismatch at key key-00042"},
		{[]string{"fill", "1500"}, 0, "filled 1500 keys\n", ""},
		{[]string{"verify", "1501"}, 1, "", `mismatch at key key-01500 (#1500 of 1501): got "NOTFOUND"`},

		{[]string{"SET", "a b", "c"}, 2, "", `argument "a b"`},
		{[]string{"SET", "k"}, 2, "", "SET: want SET key value"},
		{[]string{"FLUSH"}, 2, "", `unknown command "FLUSH"`},
		{[]string{"fill"}, 2, "", "fill takes one argument"},
		{[]string{"fill", "-1"}, 2, "", "want a number of keys"},
		{[]string{"verify", "many"}, 2, "", "want a number of keys"},
		{nil, 2, "", "usage: kvcache client"},
		{[]string{"--socket", missing, "COUNT"}, 1, "", "connecting to kvcache: dial unix " + missing},
		{[]string{"--socket", missing, "fill", "3"}, 1, "", "connecting to kvcache"},
	}
	for _, tt := range tests {
		args := append([]string{"client"}, tt.args...)
		if len(tt.args) == 0 || tt.args[0] != "--socket" {
			args = append([]string{"client", "--socket", ts.sock}, tt.args...)
		}
		code, out, errOut := runCmd(args...)
		if code != tt.wantCode || (tt.wantOut != "" && out != tt.wantOut) || !strings.Contains(errOut, tt.wantErrHas) {
			t.Errorf("kvcache %q: status %d, stdout %q, stderr %q\nwant status %d, stdout %q, stderr with %q",
				args, code, out, errOut, tt.wantCode, tt.wantOut, tt.wantErrHas)
		}
		if tt.args != nil && tt.args[0] == "STATS" {
			s := ts.st.Stats()
			want := fmt.Sprintf("STATS entries=1500 used=%d size=1048576 restored=false generation=0\n", s.Used)
			if out != want || s.Used <= dataStart {
				t.Errorf("STATS: %q, want %q", out, want)
			}
		}
	}
}

func TestServerFlags(t *testing.T) {
	tests := []struct {
		args     []string
		wantCode int
		wantErr  string
		want     serverConfig
	}{
		{args: nil, want: serverConfig{listen: defaultListen, arenaSize: 64 << 20, workload: "kvcache", prepareSocket: defaultPrepareSocket, timeout: 5 * time.Second}},
		{args: []string{"--listen", "/tmp/x.sock", "--arena-size", "1MiB", "--name", "kv2", "--prepare-socket", "/tmp/p.sock", "--timeout", "1s"},
			want: serverConfig{listen: "/tmp/x.sock", arenaSize: 1 << 20, workload: "kv2", prepareSocket: "/tmp/p.sock", timeout: time.Second}},
		{args: []string{"--push", "/tmp/q.sock", "--arena-size", "4096"},
			want: serverConfig{listen: defaultListen, arenaSize: 4096, workload: "kvcache", prepareSocket: "/tmp/q.sock", timeout: 5 * time.Second}},
		{args: []string{"--arena-size", "2G"}, want: serverConfig{listen: defaultListen, arenaSize: 2 << 30, workload: "kvcache", prepareSocket: defaultPrepareSocket, timeout: 5 * time.Second}},
		{args: []string{"--arena-size", "100"}, wantCode: 2, wantErr: "--arena-size 100: must be 256 bytes"},
		{args: []string{"--arena-size", "lots"}, wantCode: 2, wantErr: `invalid size "lots"`},
		{args: []string{"--arena-size", "0"}, wantCode: 2, wantErr: `invalid size "0"`},
		{args: []string{"--arena-size", "2048G"}, wantCode: 2, wantErr: `invalid size "2048G"`},
		{args: []string{"stray"}, wantCode: 2, wantErr: `unexpected argument "stray"`},
		{args: []string{"--bogus"}, wantCode: 2, wantErr: "flag provided but not defined: -bogus"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		cfg, err := parseServerFlags(tt.args, &stderr)
		if tt.wantErr == "" {
			if err != nil || cfg != tt.want {
				t.Errorf("%q: %+v, %v; want %+v", tt.args, cfg, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%q: error %v, want one with %q", tt.args, err, tt.wantErr)
		}
		if code, _, errOut := runCmd(tt.args...); code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) {
			t.Errorf("kvcache %q: status %d, stderr %q; want %d", tt.args, code, errOut, tt.wantCode)
		}
	}
}

func TestListenUnix(t *testing.T) {
	dir := t.TempDir()
	// A stale socket is replaced.
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if ln, err := listenUnix(stale); err != nil {
		t.Errorf("stale socket: %v", err)
	} else {
		ln.Close()
	}
	// A live one and a regular file are left alone.
	live := filepath.Join(dir, "live.sock")
	ln, err = net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := listenUnix(live); err == nil || !strings.Contains(err.Error(), "is in use") {
		t.Errorf("live socket: %v, want an error", err)
	}
	regular := filepath.Join(dir, "file")
	os.WriteFile(regular, []byte("data"), 0o600)
	if _, err := listenUnix(regular); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("regular file: %v, want an error", err)
	}
	if b, err := os.ReadFile(regular); err != nil || string(b) != "data" {
		t.Errorf("the regular file was touched: %q, %v", b, err)
	}
}
