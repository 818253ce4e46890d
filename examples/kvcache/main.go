// Command kvcache is a small key-value store whose whole state lives in one
// memfd, the arena, so that it survives a live update with luoinit byte for
// byte. It serves a line protocol on a unix stream socket:
//
//	kvcache [--listen /run/kvcache.sock] [--arena-size 64MiB] [--name kvcache]
//	        [--prepare-socket /run/luoinit/prepare.sock] [--timeout 5s]
//
// At start it takes the arena luoinit hands over after a kexec
// (LUOINIT_HANDOFF_FD or LUOINIT_HANDOFF_SOCKET); with no handoff, or one of
// no fds, it makes a new arena; a damaged arena makes it exit 1. Before a
// live update, SIGUSR1 or the request PUSH makes it push the arena to luoinit
// prepare at --prepare-socket (alias --push) as workload --name; SIGTERM
// stops it (exit 0). It logs to stderr. The same binary is a client:
//
//	kvcache client [--socket /run/kvcache.sock] SET key value | GET key | DEL key
//	        | COUNT | STATS | PUSH | fill N | verify N
//
// Requests, one a line: SET key value, GET key, DEL key, COUNT, STATS,
// PUSH, QUIT. Answers: OK, VALUE value, NOTFOUND (GET or DEL of a missing
// key), COUNT n, STATS entries=n used=bytes size=bytes restored=bool
// generation=n, ERR message. Keys (1 to 255 bytes) and values (1 byte to
// 64 KiB) hold no space and no control character.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/luoinit/luoinit/wellknown"
)

const (
	defaultListen        = "/run/kvcache.sock"
	defaultPrepareSocket = wellknown.PushSocket
	defaultWorkload      = "kvcache"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the whole command; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "client" {
		return runClient(args[1:], stdout, stderr)
	}
	return runServer(args, stderr)
}

type serverConfig struct {
	listen        string
	arenaSize     int64
	workload      string
	prepareSocket string
	timeout       time.Duration
}

func parseServerFlags(args []string, stderr io.Writer) (serverConfig, error) {
	cfg := serverConfig{arenaSize: defaultArenaSz}
	fs := flag.NewFlagSet("kvcache", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.listen, "listen", defaultListen, "serve the line protocol on the unix stream socket `path`")
	fs.Func("arena-size", "`size` of a new arena: bytes, or a number with KiB, MiB, GiB (or K, M, G) (default 64MiB)", func(s string) error {
		n, err := parseSize(s)
		cfg.arenaSize = n
		return err
	})
	fs.StringVar(&cfg.workload, "name", defaultWorkload, "workload `name` for luoinit's handoff (push and receive)")
	fs.StringVar(&cfg.prepareSocket, "prepare-socket", defaultPrepareSocket, "push the arena to luoinit prepare's handoff socket at `path` on SIGUSR1 or PUSH")
	fs.StringVar(&cfg.prepareSocket, "push", defaultPrepareSocket, "same as --prepare-socket `path`")
	fs.DurationVar(&cfg.timeout, "timeout", 5*time.Second, "time limit of a handoff exchange (receive at start, push)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: kvcache [flags]\n       kvcache client [--socket path] COMMAND (kvcache client -h for more)\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if cfg.arenaSize < minArenaSize || cfg.arenaSize > maxArenaSize {
		return cfg, fmt.Errorf("--arena-size %d: must be %d bytes to %s", cfg.arenaSize, minArenaSize, sizeString(maxArenaSize))
	}
	return cfg, nil
}

// parseSize reads "67108864", "64MiB", "64M", "512KiB", "1G".
func parseSize(s string) (int64, error) {
	num, shift := s, 0
	for _, u := range []struct {
		suffix string
		shift  int
	}{{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"K", 10}, {"M", 20}, {"G", 30}} {
		if strings.HasSuffix(s, u.suffix) {
			num, shift = strings.TrimSuffix(s, u.suffix), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > maxArenaSize>>shift {
		return 0, fmt.Errorf("invalid size %q (want bytes, or a number with KiB, MiB or GiB, at most %s)", s, sizeString(maxArenaSize))
	}
	return n << shift, nil
}

func runServer(args []string, stderr io.Writer) int {
	cfg, err := parseServerFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "kvcache: %v\n", err)
		return 2
	}
	logger := log.New(stderr, "kvcache: ", log.LstdFlags|log.Lmicroseconds|log.Lmsgprefix)

	// Ask for the signals before anything else, so that a SIGUSR1 or a
	// SIGTERM that comes while the arena is restored waits for it
	// instead of killing the process.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	defer signal.Stop(sigs)

	st, arena, err := restoreArena(cfg.workload, cfg.arenaSize, cfg.timeout, logger)
	if err != nil {
		logger.Printf("%v", err)
		logger.Printf("exiting with status 1")
		return 1
	}
	srv := newServer(st, arena, cfg.workload, cfg.prepareSocket, cfg.timeout, logger)
	ln, err := listenUnix(cfg.listen)
	if err != nil {
		logger.Printf("listening: %v", err)
		srv.shutdown(time.Second)
		return 1
	}
	logger.Printf("serving on %s; pid %d; SIGUSR1 or PUSH pushes the arena to %s as workload %q",
		cfg.listen, os.Getpid(), cfg.prepareSocket, cfg.workload)
	served := make(chan error, 1)
	go func() { served <- srv.serve(ln) }()
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGUSR1 {
				srv.pushAsync("SIGUSR1")
				continue
			}
			logger.Printf("%v: stopping", sig)
			srv.shutdown(2 * time.Second)
			return 0
		case err := <-served:
			logger.Printf("serving on %s: %v", cfg.listen, err)
			srv.shutdown(2 * time.Second)
			return 1
		}
	}
}
