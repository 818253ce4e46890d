package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

const clientUsage = `usage: kvcache client [--socket path] [--timeout d] COMMAND

commands (sent as one request; the answer line is printed):
  SET key value    GET key    DEL key    COUNT    STATS    PUSH
  fill N           store key-00000 ... (N keys) with values derived from the keys
  verify N         read those N keys back and check every value

exit status: 0 on success, 1 on ERR, NOTFOUND, a mismatch or a failed
connection, 2 on a usage error.

flags:
`

// maxFill bounds fill and verify.
const maxFill = 100_000_000

func runClient(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kvcache client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", defaultListen, "the kvcache socket `path`")
	timeout := fs.Duration("timeout", 10*time.Second, "time limit of connecting and of each answer")
	fs.Usage = func() {
		fmt.Fprint(stderr, clientUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	words := fs.Args()
	if len(words) == 0 {
		fs.Usage()
		return 2
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "kvcache client: "+format+"\n", args...)
		return 1
	}
	switch cmd := strings.ToLower(words[0]); cmd {
	case "fill", "verify":
		if len(words) != 2 {
			fmt.Fprintf(stderr, "kvcache client: %s takes one argument, the number of keys\n", cmd)
			return 2
		}
		n, err := strconv.Atoi(words[1])
		if err != nil || n < 0 || n > maxFill {
			fmt.Fprintf(stderr, "kvcache client: %s %q: want a number of keys from 0 to %d\n", cmd, words[1], maxFill)
			return 2
		}
		c, err := dialClient(*socket, *timeout)
		if err != nil {
			return fail("%v", err)
		}
		defer c.close()
		if cmd == "fill" {
			if err := c.fill(n); err != nil {
				return fail("fill: %v", err)
			}
			fmt.Fprintf(stdout, "filled %d keys\n", n)
			return 0
		}
		if err := c.verify(n); err != nil {
			return fail("verify: %v", err)
		}
		fmt.Fprintf(stdout, "verified %d keys\n", n)
		return 0
	}
	for _, w := range words[1:] {
		if i := badByte(w); i >= 0 || w == "" {
			fmt.Fprintf(stderr, "kvcache client: argument %q: keys and values must be non-empty and hold no space or control character\n", w)
			return 2
		}
	}
	req, err := ParseRequest([]byte(strings.Join(words, " ")))
	if err != nil {
		fmt.Fprintf(stderr, "kvcache client: %v\n", err)
		return 2
	}
	c, err := dialClient(*socket, *timeout)
	if err != nil {
		return fail("%v", err)
	}
	defer c.close()
	answer, err := c.roundTrip(req.String())
	if err != nil {
		return fail("%s: %v", req.Op, err)
	}
	fmt.Fprintln(stdout, answer)
	if answer == "NOTFOUND" || strings.HasPrefix(answer, "ERR") {
		return 1
	}
	return 0
}

// clientConn is a connection to a kvcache server.
type clientConn struct {
	c       net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	path    string
	timeout time.Duration
}

func dialClient(path string, timeout time.Duration) (*clientConn, error) {
	c, err := net.DialTimeout("unix", path, timeout)
	if err != nil {
		return nil, fmt.Errorf("connecting to kvcache: %w", err)
	}
	return &clientConn{c: c, r: bufio.NewReaderSize(c, maxLine), w: bufio.NewWriter(c), path: path, timeout: timeout}, nil
}

func (c *clientConn) close() error { return c.c.Close() }

// send writes one request line (buffered).
func (c *clientConn) send(line string) error {
	c.c.SetWriteDeadline(time.Now().Add(c.timeout))
	c.w.WriteString(line)
	return c.w.WriteByte('\n')
}

func (c *clientConn) flush() error {
	c.c.SetWriteDeadline(time.Now().Add(c.timeout))
	return c.w.Flush()
}

// readAnswer reads one answer line.
func (c *clientConn) readAnswer() (string, error) {
	c.c.SetReadDeadline(time.Now().Add(c.timeout))
	line, err := c.r.ReadString('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("kvcache at %s closed the connection: %w", c.path, io.ErrUnexpectedEOF)
		}
		return "", fmt.Errorf("reading the answer: %w", err)
	}
	return strings.TrimSuffix(line, "\n"), nil
}

func (c *clientConn) roundTrip(line string) (string, error) {
	if err := c.send(line); err != nil {
		return "", fmt.Errorf("sending: %w", err)
	}
	if err := c.flush(); err != nil {
		return "", fmt.Errorf("sending: %w", err)
	}
	return c.readAnswer()
}

// pipeline sends request(i) for i in 0..n-1 while it reads the answers
// and gives each to check, which stops everything with an error.
func (c *clientConn) pipeline(n int, request func(i int) string, check func(i int, answer string) error) error {
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			if err := c.send(request(i)); err != nil {
				sent <- err
				return
			}
		}
		sent <- c.flush()
	}()
	stop := func(err error) error {
		c.c.Close() // unblocks the sender
		<-sent
		return err
	}
	for i := range n {
		answer, err := c.readAnswer()
		if err != nil {
			return stop(fmt.Errorf("%s: %w", keyName(i), err))
		}
		if err := check(i, answer); err != nil {
			return stop(err)
		}
	}
	if err := <-sent; err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	return nil
}

// fill stores keyName(i) = valueFor(keyName(i)) for i < n.
func (c *clientConn) fill(n int) error {
	return c.pipeline(n,
		func(i int) string { k := keyName(i); return "SET " + k + " " + valueFor(k) },
		func(i int, answer string) error {
			if answer != "OK" {
				return fmt.Errorf("SET %s: kvcache answered %q", keyName(i), answer)
			}
			return nil
		})
}

// verify checks that keyName(i) holds valueFor(keyName(i)) for i < n.
func (c *clientConn) verify(n int) error {
	return c.pipeline(n,
		func(i int) string { return "GET " + keyName(i) },
		func(i int, answer string) error {
			k := keyName(i)
			if want := "VALUE " + valueFor(k); answer != want {
				return fmt.Errorf("mismatch at key %s (#%d of %d): got %q, want %q", k, i, n, answer, want)
			}
			return nil
		})
}

// keyName is the i-th key of fill and verify: key-00000, key-00001, ...
func keyName(i int) string { return fmt.Sprintf("key-%05d", i) }

// valueFor is the value fill stores under key: 8 to 64 hex digits of a
// hash of the key.
func valueFor(key string) string {
	sum := sha256.Sum256([]byte("kvcache:" + key))
	h := hex.EncodeToString(sum[:])
	return h[:8+int(sum[0])%57]
}
