package handoff

import (
	"testing"
	"time"
)

// BenchmarkTransfer100 measures one pull handoff of 100 fds over a socket
// pair, as the init does for a workload after a live update: HELLO, two
// FDS batches, DONE, ACK.
func BenchmarkTransfer100(b *testing.B) { benchTransfer(b, 100) }

// BenchmarkTransfer1000: the same with 1000 fds (16 batches).
func BenchmarkTransfer1000(b *testing.B) { benchTransfer(b, 1000) }

func benchTransfer(b *testing.B, n int) {
	files := memfds(b, n)
	defer closeFiles(files)
	for i := 0; i < b.N; i++ {
		c, child, err := Socketpair()
		if err != nil {
			b.Fatal(err)
		}
		w, err := NewConn(child)
		child.Close()
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			w.SetDeadline(time.Now().Add(10 * time.Second))
			if err := w.SendHello(Hello{Direction: DirectionPull, Workload: "bench"}); err != nil {
				done <- err
				return
			}
			got, err := w.ReceiveFiles()
			closeFiles(got)
			if err == nil {
				err = w.SendAck("", nil)
			}
			done <- err
		}()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.ReadHello(); err != nil {
			b.Fatal(err)
		}
		if err := c.SendFiles(files); err != nil {
			b.Fatal(err)
		}
		if err := c.ReadAck(); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		c.Close()
		w.Close()
	}
}
