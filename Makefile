# sluice. `make` builds everything into build/; `make test` runs every tier;
# `make demo` runs the built-in demo. `make deps` installs the Debian packages.
BUILD      ?= build
CLANG      ?= clang
BPFTOOL    ?= bpftool
CXX        ?= g++
ARCH_INC   := /usr/include/$(shell $(CC) -dumpmachine)

BPF_CFLAGS := -g -O2 -target bpf -mcpu=v3 -Wall -Werror -I$(ARCH_INC) -Ibpf
CXXFLAGS   ?= -O2 -g
CXXFLAGS   += -std=c++20 -Wall -Wextra -Werror -MMD -MP -I$(BUILD) -Ibpf -Iuserspace
LIBS       := -lxdp -lbpf -lelf -lz -lpthread
GTEST_LIBS := -lgtest -lpthread

LIB_SRCS   := $(wildcard userspace/*.cpp)
LIB_OBJS   := $(LIB_SRCS:%.cpp=$(BUILD)/obj/%.o)
CLI_SRCS   := $(wildcard tools/sluice/*.cpp)
UNIT_SRCS  := $(wildcard tests/unit/*.cpp)
BPFT_SRCS  := $(wildcard tests/bpf/*.cpp)
INTEG_SRCS := $(wildcard tests/integration/*.cpp)

TESTS      := $(BUILD)/tests/unit_tests $(BUILD)/tests/bpf_tests \
              $(BUILD)/tests/integration_tests

.PHONY: all deps demo test test-unit bench-prog clean install
all: $(BUILD)/sluice.bpf.o $(BUILD)/libsluice.a $(TESTS) \
     $(if $(CLI_SRCS),$(BUILD)/sluice) $(BUILD)/tests/prog_run_bench

deps:
	tools/install-deps.sh

$(BUILD)/sluice.bpf.o: bpf/sluice.bpf.c bpf/sluice_abi.h $(wildcard bpf/lib/*.h)
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/sluice.skel.h: $(BUILD)/sluice.bpf.o
	$(BPFTOOL) gen skeleton $< name sluice_bpf > $@

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

$(BUILD)/tests/bpf_tests: $(BPFT_SRCS:%.cpp=$(BUILD)/obj/%.o) $(BUILD)/libsluice.a
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

# A legitimate client and an attacker against one HTTP server, ~30 s (root).
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
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
