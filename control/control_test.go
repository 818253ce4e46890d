package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type safeBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *safeBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestPrepareRoundTrip(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "control.sock")
	got := make(chan Request, 1)
	srv, err := Listen(sock, func(ctx context.Context, req Request, log io.Writer, cont <-chan struct{}) int {
		got <- req
		fmt.Fprintf(log, "prepare: phase prepared\nprepare: partial line")
		return 3
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	// From is the client's pid by its credentials, whatever it sent.
	req := Request{Config: "/etc/luoinit/config.toml", Kernel: "/boot/bzImage", Initrd: "/boot/luoinit.img", CollectTimeout: 5 * time.Second, LogFDs: true, From: 1}
	var out safeBuf
	code, err := Prepare(sock, req, &out, nil, nil)
	if err != nil || code != 3 {
		t.Fatalf("Prepare = %d, %v; want 3", code, err)
	}
	want := req
	want.From = os.Getpid()
	if r := <-got; r != want {
		t.Fatalf("server got %+v, want %+v", r, want)
	}
	if want := "prepare: phase prepared\nprepare: partial line\n"; out.String() != want {
		t.Fatalf("log %q, want %q", out.String(), want)
	}
}

func TestCancelAndContinue(t *testing.T) {
	for _, tc := range []struct {
		desc   string
		act    func(cont, cancel chan struct{})
		result string
	}{
		{"cancel", func(_, cancel chan struct{}) { close(cancel) }, "cancelled"},
		{"continue", func(cont, _ chan struct{}) { close(cont) }, "continued"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "control.sock")
			srv, err := Listen(sock, func(ctx context.Context, req Request, log io.Writer, cont <-chan struct{}) int {
				fmt.Fprintln(log, "holding")
				select {
				case <-ctx.Done():
					fmt.Fprintln(log, "cancelled:", context.Cause(ctx))
					return 1
				case <-cont:
					fmt.Fprintln(log, "continued")
					return 0
				case <-time.After(5 * time.Second):
					fmt.Fprintln(log, "nothing came")
					return 9
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			cont, cancel := make(chan struct{}), make(chan struct{})
			var out safeBuf
			done := make(chan int)
			go func() { code, _ := Prepare(sock, Request{}, &out, cont, cancel); done <- code }()
			for !strings.Contains(out.String(), "holding") {
				time.Sleep(5 * time.Millisecond)
			}
			tc.act(cont, cancel)
			<-done
			if !strings.Contains(out.String(), tc.result) {
				t.Fatalf("log %q, want %q", out.String(), tc.result)
			}
		})
	}
}

func TestClientGoneCancelsAndBusy(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "control.sock")
	cancelled := make(chan bool, 1)
	started := make(chan struct{})
	srv, err := Listen(sock, func(ctx context.Context, req Request, log io.Writer, cont <-chan struct{}) int {
		close(started)
		select {
		case <-ctx.Done():
			cancelled <- errors.Is(context.Cause(ctx), ErrCancelled)
		case <-time.After(5 * time.Second):
			cancelled <- false
		}
		return 1
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	json.NewEncoder(c).Encode(message{Request: &Request{Kernel: "/k"}})
	<-started
	// One request at a time.
	var out safeBuf
	if code, err := Prepare(sock, Request{}, &out, nil, nil); code != 1 || err != nil || !strings.Contains(out.String(), "another live update") {
		t.Fatalf("a second request while one runs: exit %d, %v, %q", code, err, out.String())
	}
	c.Close() // the first client goes away
	if !<-cancelled {
		t.Fatal("the handler was not cancelled when its client went away")
	}
}

func TestNoServer(t *testing.T) {
	_, err := Prepare(filepath.Join(t.TempDir(), "absent.sock"), Request{}, io.Discard, nil, nil)
	if !errors.Is(err, ErrNoServer) {
		t.Fatalf("Prepare without a server = %v, want ErrNoServer", err)
	}
}

// Listen replaces a socket file a gone server left but refuses a live
// server or a file that is not a socket, and leaves the latter in place;
// Close removes only its own socket file.
func TestListenSafely(t *testing.T) {
	dir := t.TempDir()
	h := func(context.Context, Request, io.Writer, <-chan struct{}) int { return 0 }
	sock := filepath.Join(dir, "control.sock")
	srv, err := Listen(sock, h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(sock, h); err == nil || !strings.Contains(err.Error(), "is in use") {
		t.Fatalf("Listen over a live server: %v", err)
	}
	srv.Close()
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file after Close: %v", err)
	}
	regular := filepath.Join(dir, "file")
	os.WriteFile(regular, []byte("keep"), 0o644)
	if _, err := Listen(regular, h); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("Listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(regular); string(b) != "keep" {
		t.Fatal("Listen removed a regular file")
	}
	srv, err = Listen(sock, h)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(sock)
	os.WriteFile(sock, []byte("other"), 0o600)
	srv.Close()
	if b, _ := os.ReadFile(sock); string(b) != "other" {
		t.Fatal("Close removed a file that was not its socket")
	}
}
