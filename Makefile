# sluice. `make` builds everything into build/; `make test` runs every tier;
# `make demo` runs the built-in demo. `make deps` installs the Debian packages.
BUILD      ?= build
CLANG      ?= clang
# A second compiler the BPF object is also built with, so that the verifier
# budget test (tests/bpf/verifier_test.cpp) sees what another clang emits.
CLANG_ALT  ?= clang-19
BPFTOOL    ?= bpftool
CXX        ?= g++
ARCH_INC   := /usr/include/$(shell $(CC) -dumpmachine)

BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -Wall -Werror -I$(ARCH_INC) -Ibpf
CXXFLAGS   ?= -O2 -g
CXXFLAGS   += -std=c++20 -Wall -Wextra -Werror -MMD -MP -I$(BUILD) -Ibpf -Iuserspace
# cpp-httplib (the /metrics server) is a shared library in Debian; its
# defines change the layout of httplib::Request, so they must match it.
HTTPLIB_CFLAGS := $(shell pkg-config --cflags cpp-httplib 2>/dev/null)
CXXFLAGS   += $(HTTPLIB_CFLAGS)
LIBS       := -lxdp -lbpf -lelf -lz -lpthread -lcpp-httplib -lhiredis
GTEST_LIBS := -lgtest -lpthread

LIB_SRCS   := $(wildcard userspace/*.cpp)
LIB_OBJS   := $(LIB_SRCS:%.cpp=$(BUILD)/obj/%.o)
CLI_SRCS   := $(wildcard tools/sluice/*.cpp)
UNIT_SRCS  := $(wildcard tests/unit/*.cpp)
BPFT_SRCS  := $(wildcard tests/bpf/*.cpp)
INTEG_SRCS := $(wildcard tests/integration/*.cpp)

TESTS      := $(BUILD)/tests/unit_tests $(BUILD)/tests/bpf_tests \
              $(BUILD)/tests/integration_tests $(BUILD)/tests/flood_tests

.PHONY: all deps demo test test-unit bench-prog clean install
all: $(BUILD)/sluice.bpf.o $(BUILD)/sluice-$(CLANG_ALT).bpf.o $(BUILD)/libsluice.a $(TESTS) \
     $(if $(CLI_SRCS),$(BUILD)/sluice) $(BUILD)/tests/prog_run_bench $(BUILD)/sluice-flood

deps:
	tools/install-deps.sh

$(BUILD)/sluice.bpf.o: bpf/sluice.bpf.c bpf/sluice_abi.h $(wildcard bpf/lib/*.h)
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/sluice-$(CLANG_ALT).bpf.o: bpf/sluice.bpf.c bpf/sluice_abi.h $(wildcard bpf/lib/*.h)
	@mkdir -p $(@D)
	$(CLANG_ALT) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/sluice.skel.h: $(BUILD)/sluice.bpf.o
	$(BPFTOOL) gen skeleton $< name sluice_bpf > $@

# The sk_lookup program of action respond, loaded by `sluice run` against the
# maps the XDP program pinned.
$(BUILD)/responder.bpf.o: bpf/responder.bpf.c bpf/sluice_abi.h $(wildcard bpf/lib/*.h)
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/responder.skel.h: $(BUILD)/responder.bpf.o
	$(BPFTOOL) gen skeleton $< name responder_bpf > $@

$(BUILD)/obj/userspace/responder.o: $(BUILD)/responder.skel.h

$(BUILD)/obj/%.o: %.cpp $(BUILD)/sluice.skel.h
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/libsluice.a: $(LIB_OBJS)
	$(AR) rcs $@ $^

$(BUILD)/sluice: $(CLI_SRCS:%.cpp=$(BUILD)/obj/%.o) $(BUILD)/libsluice.a
	$(CXX) $(CXXFLAGS) $^ -o $@ $(LIBS)

$(BUILD)/tests/unit_tests: $(UNIT_SRCS:%.cpp=$(BUILD)/obj/%.o) $(BUILD)/libsluice.a
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) $^ -o $@ $(GTEST_LIBS) -lgtest_main $(LIBS)

$(BUILD)/tests/bpf_tests: $(BPFT_SRCS:%.cpp=$(BUILD)/obj/%.o) $(BUILD)/libsluice.a | $(BUILD)/sluice-$(CLANG_ALT).bpf.o
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) $^ -o $@ $(GTEST_LIBS) -lgtest_main $(LIBS)

$(BUILD)/tests/integration_tests: $(INTEG_SRCS:%.cpp=$(BUILD)/obj/%.o) $(BUILD)/libsluice.a
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) $^ -o $@ $(GTEST_LIBS) -lgtest_main $(LIBS)

$(BUILD)/tests/prog_run_bench: $(BUILD)/obj/tests/bench/prog_run_bench.o $(BUILD)/obj/tests/bpf/packet.o \
                               $(BUILD)/libsluice.a
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) $^ -o $@ $(LIBS)

# Per-packet cost against bare XDP_DROP through BPF_PROG_TEST_RUN (root).
bench-prog: $(BUILD)/tests/prog_run_bench
	$<

# The Flask API protected by `sluice run` with examples/api.toml: legitimate
# users and an attacker side by side, ~30 s (DEMO_SECONDS), live view (root).
demo: deps
	$(MAKE) $(BUILD)/sluice
	tools/demo.sh

# Every tier, one summary line at the end: "N passed, N failed[, N skipped]".
test: deps
	$(MAKE) all
	tests/run.sh $(TESTS)

# The unprivileged tier alone.
test-unit: $(BUILD)/tests/unit_tests
	tests/run.sh $<

install: $(BUILD)/sluice
	install -D -m 0755 $(BUILD)/sluice /usr/local/sbin/sluice

clean:
	rm -rf $(BUILD) $(SAN_BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# ---- sanitizers and fuzzers (README, "Build and test") ----
# One clang build in $(SAN_BUILD)/ with AddressSanitizer and
# UndefinedBehaviorSanitizer, every error fatal: the unit tests
# (`make test-sanitize`) and the libFuzzer harnesses of tests/fuzz/ (`make
# fuzz`, `make fuzz-run`) share its libsluice.a, which also carries
# libFuzzer's coverage hooks (fuzzer-no-link; inert outside a fuzzer).
SAN_BUILD    ?= build-san
SAN_CXX      ?= clang++
SAN_FLAGS    := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
SAN_CXXFLAGS := -std=c++20 -O1 -g -Wall -Wextra -Werror -MMD -MP $(SAN_FLAGS) \
                -I$(BUILD) -Ibpf -Iuserspace $(HTTPLIB_CFLAGS)
SAN_LIB_OBJS := $(LIB_SRCS:%.cpp=$(SAN_BUILD)/obj/%.o)
FUZZERS      := rate_fuzz config_fuzz
FUZZ_SECONDS ?= 60

-include $(shell find $(SAN_BUILD)/obj -name '*.d' 2>/dev/null)

.PHONY: test-sanitize fuzz fuzz-run
$(SAN_LIB_OBJS): $(SAN_BUILD)/obj/%.o: %.cpp $(BUILD)/sluice.skel.h $(BUILD)/responder.skel.h
	@mkdir -p $(@D)
	$(SAN_CXX) $(SAN_CXXFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(SAN_BUILD)/obj/tests/%.o: tests/%.cpp $(BUILD)/sluice.skel.h
	@mkdir -p $(@D)
	$(SAN_CXX) $(SAN_CXXFLAGS) -c $< -o $@

$(SAN_BUILD)/libsluice.a: $(SAN_LIB_OBJS)
	$(AR) rcs $@ $^

$(SAN_BUILD)/tests/unit_tests: $(UNIT_SRCS:%.cpp=$(SAN_BUILD)/obj/%.o) $(SAN_BUILD)/libsluice.a
	@mkdir -p $(@D)
	$(SAN_CXX) $(SAN_FLAGS) $^ -o $@ $(GTEST_LIBS) -lgtest_main $(LIBS)

$(SAN_BUILD)/fuzz/%: $(SAN_BUILD)/obj/tests/fuzz/%.o $(SAN_BUILD)/libsluice.a
	@mkdir -p $(@D)
	$(SAN_CXX) $(SAN_FLAGS) -fsanitize=fuzzer $^ -o $@ $(LIBS)

$(FUZZERS:%=$(SAN_BUILD)/obj/tests/fuzz/%.o): SAN_CXXFLAGS += -fsanitize=fuzzer

# The unit tests under ASan+UBSan, with tests/run.sh's summary line.
test-sanitize: deps
	$(MAKE) $(SAN_BUILD)/tests/unit_tests
	tests/run.sh $(SAN_BUILD)/tests/unit_tests

fuzz: $(FUZZERS:%=$(SAN_BUILD)/fuzz/%)

# Each fuzzer for FUZZ_SECONDS from its seed corpus (tests/fuzz/corpus/);
# one line per fuzzer; fails on a crash, leak or broken invariant.
fuzz-run: deps
	$(MAKE) fuzz
	tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZERS:%=$(SAN_BUILD)/fuzz/%)

# ---- sluice-flood and the benchmarks (tools/flood, tests/bench) ----
# sluice-flood: a live-frames traffic generator (BPF_PROG_TEST_RUN + XDP_TX).
# `make bench-quick` (<= 2 min) and `make bench` (~18 min) measure the
# receiver's CPU ns per packet on a veth pair; `make bench-accuracy` measures
# admission accuracy and control-plane timings. All need root; none is part
# of `make test` or CI. BENCHMARKS.md says how to read them.
FLOOD_SRCS := $(wildcard tools/flood/*.cpp)
FLOOD_OBJS := $(FLOOD_SRCS:%.cpp=$(BUILD)/obj/%.o)
FLOOD_LIB  := $(filter-out $(BUILD)/obj/tools/flood/main.o,$(FLOOD_OBJS))

.PHONY: flood test-flood bench bench-quick bench-accuracy bench-responder bench-api bench-spoofed
flood: $(BUILD)/sluice-flood

$(BUILD)/flood.bpf.o: bpf/flood.bpf.c
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/flood.skel.h: $(BUILD)/flood.bpf.o
	$(BPFTOOL) gen skeleton $< name flood_bpf > $@

$(FLOOD_OBJS) $(BUILD)/obj/tests/bench/flood_test.o: $(BUILD)/flood.skel.h

$(BUILD)/sluice-flood: $(FLOOD_OBJS)
	$(CXX) $(CXXFLAGS) $^ -o $@ $(LIBS)

$(BUILD)/tests/flood_tests: $(BUILD)/obj/tests/bench/flood_test.o $(FLOOD_LIB) \
                            $(BUILD)/obj/tests/integration/netns.o
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) $^ -o $@ $(GTEST_LIBS) -lgtest_main $(LIBS)

# sluice-flood's own checks: checksums of every rewrite mode, and 1000 frames
# across a veth pair counted by a UDP socket (root).
test-flood: $(BUILD)/tests/flood_tests $(BUILD)/sluice-flood
	tests/run.sh $<

$(BUILD)/bench-stubs.bpf.o: tests/bench/stubs.bpf.c
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

BENCH_DEPS := $(BUILD)/sluice-flood $(BUILD)/sluice $(BUILD)/bench-stubs.bpf.o

bench-quick: $(BENCH_DEPS)
	tests/bench/run.sh --quick

bench: $(BENCH_DEPS)
	tests/bench/run.sh

$(BUILD)/tests/accuracy_bench: $(BUILD)/obj/tests/bench/accuracy_bench.o $(BUILD)/obj/tests/bpf/packet.o \
                               $(BUILD)/obj/tools/flood/park.o $(BUILD)/libsluice.a
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) $^ -o $@ $(LIBS)

bench-accuracy: $(BUILD)/tests/accuracy_bench
	@mkdir -p $(BUILD)/bench
	$< --json $(BUILD)/bench/accuracy.json --markdown BENCHMARKS.md

# The fleet sync's cost per node with 1k and 100k active sources against a
# real redis-server on loopback (docs/fleet.md); root. Not part of `make test`.
.PHONY: bench-fleet
$(BUILD)/tests/fleet_bench: $(BUILD)/obj/tests/bench/fleet_bench.o $(BUILD)/libsluice.a
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) $^ -o $@ $(LIBS)

bench-fleet: $(BUILD)/tests/fleet_bench
	$<

# The 429 responder of action respond under a flood of over-limit
# connections: answered per second, memory and CPU of `sluice run` (root).
$(BUILD)/tests/responder_bench: $(BUILD)/obj/tests/bench/responder_bench.o \
                                $(BUILD)/obj/tests/integration/netns.o $(BUILD)/libsluice.a
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) $^ -o $@ $(GTEST_LIBS) $(LIBS)

$(BUILD)/obj/tests/bench/responder_bench.o $(BUILD)/obj/tests/bench/api_bench.o: CXXFLAGS += -Itests/integration

bench-responder: $(BUILD)/tests/responder_bench $(BUILD)/sluice
	$<

# One flood against the Flask app: unprotected, Flask-Limiter, sluice (root).
$(BUILD)/tests/api_bench: $(BUILD)/obj/tests/bench/api_bench.o $(BUILD)/obj/tests/integration/netns.o \
                          $(BUILD)/obj/tests/integration/api_server.o $(BUILD)/obj/tests/integration/http_load.o \
                          $(BUILD)/libsluice.a
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) $^ -o $@ $(GTEST_LIBS) $(LIBS)

bench-api: $(BUILD)/tests/api_bench $(BUILD)/sluice
	$<

# The admission step under a 16M-source spoofed flood at the generator's top
# rate (tests/integration/spoofed_flood_test.cpp, run longer; root, ~75 s).
bench-spoofed: $(BUILD)/tests/integration_tests $(BUILD)/sluice $(BUILD)/sluice-flood
	tests/bench/spoofed.sh
