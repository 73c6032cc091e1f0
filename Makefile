# The project's commands. `make farm` and `make test` are the two a new user runs.
SHELL := /bin/bash
CARGO ?= cargo
# Where cargo puts binaries (respects CARGO_TARGET_DIR).
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
FUZZ_SECONDS ?= 60

.PHONY: all build test bench bench-dns bench-nats bench-rebalance farm chat fuzz lint fmt clean
NICK ?= $(USER)

all: build

## build: compile every crate of the workspace (debug)
build:
	$(CARGO) build --workspace --all-targets --all-features

## test: build and run every test of the workspace (end-to-end tests run the built binaries)
test:
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --all-features
	node --test web/test/

## bench: the standard set, under 5 minutes: the codec bench, then rttp-load's fanout
## (max rate, 1000/s), rooms, idle, storm and failover on a farm of three on loopback
bench:
	$(CARGO) bench -p rttp-proto --bench codec -- --warm-up-time 1 --measurement-time 2 decode/
	$(CARGO) build --release --workspace --bins
	$(TARGET_DIR)/release/rttp-load fanout --seconds 10
	$(TARGET_DIR)/release/rttp-load fanout --seconds 10 --rate 1000
	$(TARGET_DIR)/release/rttp-load rooms --seconds 20
	$(TARGET_DIR)/release/rttp-load idle
	$(TARGET_DIR)/release/rttp-load storm
	$(TARGET_DIR)/release/rttp-load failover

## bench-rebalance: about 15 minutes: a drain and restart of one of three servers under 3,000
## chatting clients, 5 minutes steady; a server added under load; a storm of 10,000 on ten
## servers of capacities 1,000 to 10,000 with p2c, least-users and random
bench-rebalance:
	$(CARGO) build --release --workspace --bins
	$(TARGET_DIR)/release/rttp-load rebalance --steady 300
	$(TARGET_DIR)/release/rttp-load rebalance --add --steady 60
	for s in p2c least-users random; do \
	  $(TARGET_DIR)/release/rttp-load --capacities 1000,2000,3000,4000,5000,6000,7000,8000,9000,10000 \
	    storm --clients 10000 --rate 500 --strategy $$s || exit 1; done

## bench-dns: dnsperf for 10 s against farm-dns and against NSD in the same run (installs both)
bench-dns:
	scripts/bench-dns.sh

## farm: build in release mode and run a local farm in the foreground (farm-dns + 3 servers)
farm:
	$(CARGO) build --release --workspace --bins
	$(TARGET_DIR)/release/rttp-farm $(FARM_ARGS)

## chat: the terminal client against the local farm (make chat NICK=you)
chat:
	$(CARGO) build --release -p rttp-client --bin rttp-chat
	$(TARGET_DIR)/release/rttp-chat --service chat.farm.test:7000 --dns 127.0.0.1:5353 --nick $(NICK)

## bench-nats: rttp-load's fanout, rooms and idle against a 3-node NATS cluster (127.0.0.1-3:4222)
## in the same run, with every ratio rttp/NATS (installs Debian's nats-server)
bench-nats:
	@command -v nats-server >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server)
	$(CARGO) build --release --workspace --bins
	$(TARGET_DIR)/release/rttp-load compare

## fuzz: run the decode fuzzer for FUZZ_SECONDS (default 60); installs cargo-fuzz if missing
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	# cargo-fuzz needs unstable flags; RUSTC_BOOTSTRAP lets the stable toolchain accept them.
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run decode -- -max_total_time=$(FUZZ_SECONDS) -max_len=4096

## lint: formatting and clippy with warnings denied, as CI runs them
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

## fmt: format the code
fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
