# Build the BPF objects in bpf/ (and the test fixtures) with clang; run the tests.
# Only clang, llvm and bpftool are needed here: pybpf itself needs none of them.

BUILD      ?= build
CLANG      ?= clang
# CO-RE kinds clang 14 (Debian 12's default) cannot emit (TYPE_MATCHES, local
# ENUM64) are tested from objects built with a newer clang.
CLANG_NEW  ?= clang-16
NEW_CLANG_OBJS := $(BUILD)/core_matches.bpf.o
BPFTOOL    ?= $(shell command -v bpftool 2>/dev/null || ls /usr/sbin/bpftool 2>/dev/null)
PYTHON     ?= python3
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
ARCH       := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/' -e 's/ppc64le/powerpc/' -e 's/riscv64/riscv/' -e 's/s390x/s390/' -e 's/loongarch64/loongarch/')
BPF_CFLAGS := -O2 -g -target bpf -D__TARGET_ARCH_$(ARCH) -I$(BUILD) -Ibpf -Wall -Wno-unused-function

SRCS := $(wildcard bpf/*.bpf.c)
OBJS := $(patsubst bpf/%.bpf.c,$(BUILD)/%.bpf.o,$(SRCS))
DEPS_PKGS := clang clang-16 llvm llvm-16 libbpf-dev bpftool

.PHONY: all deps check-tools ensure-deps test test-unprivileged clean

all: check-tools $(OBJS)

check-tools:
	@command -v $(CLANG) >/dev/null 2>&1 || { echo "make: clang not found: run 'make deps' (apt-get install $(DEPS_PKGS))" >&2; exit 1; }
	@command -v $(CLANG_NEW) >/dev/null 2>&1 || { echo "make: $(CLANG_NEW) not found: run 'make deps' (apt-get install $(DEPS_PKGS))" >&2; exit 1; }
	@test -n "$(BPFTOOL)" || { echo "make: bpftool not found: run 'make deps' (apt-get install $(DEPS_PKGS))" >&2; exit 1; }
	@test -f /usr/include/bpf/bpf_helpers.h || { echo "make: libbpf headers not found: run 'make deps' (apt-get install $(DEPS_PKGS))" >&2; exit 1; }

deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEPS_PKGS)
	$(PYTHON) -m pip install -q 'setuptools>=77'
	$(PYTHON) -m pip install -q -e '.[test]'

$(BUILD)/vmlinux.h: | $(BUILD)
	@test -r $(VMLINUX_BTF) || { echo "make: $(VMLINUX_BTF) not readable: kernel built without CONFIG_DEBUG_INFO_BTF" >&2; exit 1; }
	$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > $@.tmp && mv $@.tmp $@

$(BUILD):
	mkdir -p $@

$(BUILD)/%.bpf.o: bpf/%.bpf.c $(BUILD)/vmlinux.h $(wildcard bpf/*.h) | $(BUILD)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(NEW_CLANG_OBJS): $(BUILD)/%.bpf.o: bpf/%.bpf.c $(BUILD)/vmlinux.h $(wildcard bpf/*.h) | $(BUILD)
	$(CLANG_NEW) $(BPF_CFLAGS) -c $< -o $@

# Install what is missing (once), as `make deps` does.
ensure-deps:
	@command -v $(CLANG) >/dev/null 2>&1 && command -v $(CLANG_NEW) >/dev/null 2>&1 \
	  && command -v llvm-mc-16 >/dev/null 2>&1 \
	  && test -n "$(BPFTOOL)" && test -f /usr/include/bpf/bpf_helpers.h \
	  && $(PYTHON) -c 'import elftools, pytest, hypothesis' 2>/dev/null || $(MAKE) deps

# The README's test command: installs what is missing, builds, runs every test.
test: ensure-deps
	$(MAKE) all
	$(PYTHON) -m pytest -q tests

# The parsing side (ELF, BTF, CO-RE, linking) must work without privileges: run the
# suite with every capability dropped; kernel tests skip, the rest must pass.
test-unprivileged: ensure-deps
	$(MAKE) all
	setpriv --bounding-set=-all --inh-caps=-all -- env -u PYBPF_REQUIRE_KERNEL \
	  $(PYTHON) -m pytest -q -p no:cacheprovider tests

clean:
	rm -rf $(BUILD)
