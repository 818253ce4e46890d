# luoinit: Linux live update userspace.
#
#   make demo     a live update (kexec with preserved memfds) in a VM
#   make test     every test: lint, unit, uapi layout, VM scenarios
#   make kernel   build (or reuse the cached) default VM-test kernel
#   make vmtest   the VM scenarios only
#   make unit     unit tests only (no VM, no root), listing each skipped test
#   make build    bin/luoinit, static
#   make fuzz     every fuzz target for FUZZTIME (default 60s) each
#   make bench    benchmarks: manifest parse/marshal, 100- and 1000-fd handoffs
#   make perf     the restore path in the VM against a raw C baseline, and
#                 what starting C, Go and luoinit costs there

GO      ?= go
CACHE   ?= $(or $(LUOINIT_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/luoinit)
BIN     := bin

export LUOINIT_CACHE := $(CACHE)

# The kernel's path comes from build.sh on stdout; its progress goes to stderr.
KERNEL_CMD = tests/kernel/build.sh "$(CACHE)"
# The cross-version scenarios also need the newest kernel of the previous
# series and the default with its LUO ABI string changed (built
# incrementally from the default's kept objects, about a minute).
KERNEL_PREV_SERIES ?= 7.2
KERNEL_ABI_VARIANT ?= luo-v6
KERNEL_PREV_CMD = tests/kernel/build.sh --source $(KERNEL_PREV_SERIES) "$(CACHE)"
KERNEL_ABI_CMD = tests/kernel/build.sh --luo-abi $(KERNEL_ABI_VARIANT) "$(CACHE)"
KERNEL_FAULTS_CMD = tests/kernel/build.sh --luo-faults "$(CACHE)"

.PHONY: all build bench perf deps kernel test lint unit layout vmtest demo fuzz clean

all: build

# luoinit goes into initramfs images: static, no cgo, no symbol tables
# (a smaller image, and a faster start under emulation).
build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/luoinit ./init

deps:
	@tests/deps.sh

kernel: deps
	@$(KERNEL_CMD)

lint:
	@fmt=$$(gofmt -l .); if [ -n "$$fmt" ]; then echo "gofmt needed on:"; echo "$$fmt"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags "floor kernelimage" ./tests/perf/rawgo
	$(GO) vet -tags luoinittest ./prepare/

# The skipped tests are listed with their reasons (a skip passes, and
# without -v says nothing); LUOINIT_REQUIRE_TESTS=1, as in CI, fails a skip
# for a reason tests/skips/allow.go does not allow.
unit:
	@GO=$(GO) tests/unit.sh

# The uapi layout test: Go structs and ioctl numbers against the header of
# the kernel the VM tests run. It must run here, not skip.
layout: deps
	@k=$$($(KERNEL_CMD)) && \
	LUOINIT_UAPI_HEADER=$$(dirname $$k)/liveupdate.h LUOINIT_REQUIRE_UAPI=1 \
	$(GO) test -count=1 -v -run TestUAPIMatchesKernelHeader ./luo/

vmtest: deps
	@k=$$($(KERNEL_CMD)) && prev=$$($(KERNEL_PREV_CMD)) && abi=$$($(KERNEL_ABI_CMD)) && faults=$$($(KERNEL_FAULTS_CMD)) && \
	echo "VM tests on kernel $$(cat $$(dirname $$k)/version) ($$k)," \
	  "across versions with $$(cat $$(dirname $$prev)/version), refusing $$(cat $$(dirname $$abi)/version)" && \
	LUOINIT_KERNEL=$$k LUOINIT_KERNEL_PREV=$$prev LUOINIT_KERNEL_ABI=$$abi LUOINIT_KERNEL_FAULTS=$$faults LUOINIT_VMTEST=required \
	$(GO) test -count=1 -v -timeout 60m ./tests/scenarios/

test: deps lint unit layout vmtest

demo: deps
	@k=$$($(KERNEL_CMD)) && LUOINIT_KERNEL=$$k $(GO) run ./tests/demo

# Figures for the paths that count after a kexec, in process: parsing and
# writing a manifest of 1000 and 10,000 fds, handing 100 and 1000 fds to a
# workload.
bench:
	$(GO) test -run XXX -bench . -benchmem ./manifest/ ./handoff/

# The restore path in the VM, luoinit against a raw C PID 1 doing only the
# ioctls, back to back in one run (PERF_N, PERF_WORKLOADS: tests/perf).
perf: deps
	@k=$$($(KERNEL_CMD)) && LUOINIT_KERNEL=$$k $(GO) run ./tests/perf

# FUZZTIME for each target; the parsers of untrusted input (manifest and
# config, handoff wire, root= and the superblocks of disks) for
# FUZZTIME_PARSERS. Minimising a failing input gets FUZZMINTIME, so that
# the run spends its time fuzzing (the default minimise time of 60s took a
# whole run on one input). FUZZFLAGS adds flags, e.g.
# FUZZFLAGS=-parallel=1 on a shared machine. Each target runs through
# tests/fuzz.sh, which fails on a finding but not on Go's fuzzing
# coordinator failing the run on its own -fuzztime deadline, now and then,
# with a bare "context deadline exceeded" and nothing found: it says so.
FUZZTIME ?= 60s
FUZZTIME_PARSERS ?= $(FUZZTIME)
FUZZMINTIME ?= 5s
FUZZ = tests/fuzz.sh $(GO) test -run XXX -fuzzminimizetime $(FUZZMINTIME) $(FUZZFLAGS)
fuzz:
	$(FUZZ) -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME_PARSERS) ./manifest/
	$(FUZZ) -fuzz '^FuzzParseConfig$$' -fuzztime $(FUZZTIME_PARSERS) ./manifest/
	$(FUZZ) -fuzz '^FuzzDecodeMessage$$' -fuzztime $(FUZZTIME_PARSERS) ./handoff/
	$(FUZZ) -fuzz '^FuzzReceiveFiles$$' -fuzztime $(FUZZTIME_PARSERS) ./handoff/
	$(FUZZ) -fuzz '^FuzzParseMarker$$' -fuzztime $(FUZZTIME) ./tests/vm/
	$(FUZZ) -fuzz '^FuzzParseMountinfo$$' -fuzztime $(FUZZTIME) ./pid1/
	$(FUZZ) -fuzz '^FuzzParseRequest$$' -fuzztime $(FUZZTIME) ./examples/kvcache/
	$(FUZZ) -fuzz '^FuzzOpenArena$$' -fuzztime $(FUZZTIME) ./examples/kvcache/
	$(FUZZ) -fuzz '^FuzzFastPathAgrees$$' -fuzztime $(FUZZTIME_PARSERS) ./manifest/
	$(FUZZ) -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME_PARSERS) ./notify/
	$(FUZZ) -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME_PARSERS) ./status/
	$(FUZZ) -fuzz '^FuzzParseSessionLink$$' -fuzztime $(FUZZTIME_PARSERS) ./luo/
	$(FUZZ) -fuzz '^FuzzReadImage$$' -fuzztime $(FUZZTIME_PARSERS) ./preflight/
	$(FUZZ) -fuzz '^FuzzScanner$$' -fuzztime $(FUZZTIME_PARSERS) ./preflight/
	$(FUZZ) -fuzz '^FuzzIsCompatible$$' -fuzztime $(FUZZTIME) ./manifest/
	$(FUZZ) -fuzz '^FuzzParseControl$$' -fuzztime $(FUZZTIME_PARSERS) ./unixsock/
	$(FUZZ) -fuzz '^FuzzSplit$$' -fuzztime $(FUZZTIME_PARSERS) ./kcmdline/
	$(FUZZ) -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME_PARSERS) ./rootfs/
	$(FUZZ) -fuzz '^FuzzProbe$$' -fuzztime $(FUZZTIME_PARSERS) ./rootfs/


clean:
	rm -rf $(BIN)
