# Build the BPF objects in bpf/ (and the test fixtures) with clang; run the tests.
# Only clang, llvm and bpftool are needed here: pybpf itself needs none of them.

BUILD      ?= build
CLANG      ?= clang
# CO-RE kinds clang 14 (Debian 12's default) cannot emit (TYPE_MATCHES, local
# ENUM64) are tested from objects built with a newer clang.
CLANG_NEW  ?= clang-16
NEW_CLANG_OBJS := $(BUILD)/core_matches.bpf.o
# __arena globals (address_space(1) casts) need clang 19.
CLANG_19   ?= clang-19
CLANG19_OBJS := $(BUILD)/loader_arena.bpf.o $(BUILD)/loader_arena_fixed.bpf.o
BPFTOOL    ?= $(shell command -v bpftool 2>/dev/null || ls /usr/sbin/bpftool 2>/dev/null)
PYTHON     ?= python3
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
ARCH       := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/' -e 's/ppc64le/powerpc/' -e 's/riscv64/riscv/' -e 's/s390x/s390/' -e 's/loongarch64/loongarch/')
BPF_CFLAGS := -O2 -g -target bpf -D__TARGET_ARCH_$(ARCH) -I$(BUILD) -Ibpf -Ipybpf/tools/bpf -Wall -Wno-unused-function

TOOLS_DIR   := pybpf/tools/bpf
TOOLS_BUILD ?= .tools-build
SRCS := $(wildcard bpf/*.bpf.c)
OBJS := $(patsubst bpf/%.bpf.c,$(BUILD)/%.bpf.o,$(SRCS))
DEPS_PKGS := clang clang-16 clang-19 llvm llvm-16 libbpf-dev bpftool gcc systemtap-sdt-dev prometheus pypy3 pypy3-venv

# USDT: <bpf/usdt.bpf.h> includes <linux/errno.h>, which wants the host's <asm/errno.h>;
# the test targets (tests/usdt/*.c, <sys/sdt.h> probes) are host programs built with gcc.
HOST_CC    ?= gcc
MULTIARCH  := $(shell $(HOST_CC) -print-multiarch 2>/dev/null)
USDT_BPF_OBJS := $(BUILD)/usdt_python.bpf.o $(BUILD)/usdt_args.bpf.o
USDT_BINS  := $(BUILD)/usdt_target $(BUILD)/usdt_target_pie $(BUILD)/libusdt_target.so

.PHONY: all deps check-tools ensure-deps test test-unprivileged test-interpreters test-pypy pypy-venv typecheck clean tools-bpf

all: check-tools $(OBJS) $(USDT_BINS) tools-bpf

check-tools:
	@command -v $(CLANG) >/dev/null 2>&1 || { echo "make: clang not found: run 'make deps' (apt-get install $(DEPS_PKGS))" >&2; exit 1; }
	@command -v $(CLANG_NEW) >/dev/null 2>&1 || { echo "make: $(CLANG_NEW) not found: run 'make deps' (apt-get install $(DEPS_PKGS))" >&2; exit 1; }
	@command -v $(CLANG_19) >/dev/null 2>&1 || { echo "make: $(CLANG_19) not found: run 'make deps' (apt-get install $(DEPS_PKGS))" >&2; exit 1; }
	@test -n "$(BPFTOOL)" || { echo "make: bpftool not found: run 'make deps' (apt-get install $(DEPS_PKGS))" >&2; exit 1; }
	@test -f /usr/include/bpf/bpf_helpers.h || { echo "make: libbpf headers not found: run 'make deps' (apt-get install $(DEPS_PKGS))" >&2; exit 1; }
	@command -v $(HOST_CC) >/dev/null 2>&1 && echo '#include <sys/sdt.h>' | $(HOST_CC) -E -x c - >/dev/null 2>&1 || { echo "make: $(HOST_CC) or <sys/sdt.h> not found: run 'make deps' (apt-get install $(DEPS_PKGS))" >&2; exit 1; }

deps:
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEPS_PKGS)
	$(PYTHON) -m pip install -q 'setuptools>=77'
	# compat: a plain path in a .pth, where the default installs an import hook that
	# costs every Python process of the machine ~14 ms at start-up (pathlib, importlib.util)
	$(PYTHON) -m pip install -q -e '.[test]' --config-settings editable_mode=compat

$(BUILD)/vmlinux.h $(TOOLS_BUILD)/vmlinux.h:
	@mkdir -p $(@D)
	@test -r $(VMLINUX_BTF) || { echo "make: $(VMLINUX_BTF) not readable: kernel built without CONFIG_DEBUG_INFO_BTF" >&2; exit 1; }
	$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c > $@.tmp && mv $@.tmp $@

$(BUILD):
	mkdir -p $@

$(BUILD)/%.bpf.o: bpf/%.bpf.c $(BUILD)/vmlinux.h $(wildcard bpf/*.h) | $(BUILD)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(NEW_CLANG_OBJS): $(BUILD)/%.bpf.o: bpf/%.bpf.c $(BUILD)/vmlinux.h $(wildcard bpf/*.h) | $(BUILD)
	$(CLANG_NEW) $(BPF_CFLAGS) -c $< -o $@

$(USDT_BPF_OBJS): BPF_CFLAGS += -idirafter /usr/include/$(MULTIARCH)

$(BUILD)/libusdt_target.so: tests/usdt/usdt_lib.c | $(BUILD)
	$(HOST_CC) -O2 -g -shared -fPIC -o $@ $<

# the same program as a non-PIE executable (ET_EXEC) and as a PIE (ET_DYN)
$(BUILD)/usdt_target: tests/usdt/usdt_target.c tests/usdt/usdt_guarded.c $(BUILD)/libusdt_target.so
	$(HOST_CC) -O2 -g -no-pie -fno-pie -o $@ $(filter %.c,$^) -L$(BUILD) -lusdt_target -Wl,-rpath,'$$ORIGIN'

$(BUILD)/usdt_target_pie: tests/usdt/usdt_target.c tests/usdt/usdt_guarded.c $(BUILD)/libusdt_target.so
	$(HOST_CC) -O2 -g -fPIE -pie -o $@ $(filter %.c,$^) -L$(BUILD) -lusdt_target -Wl,-rpath,'$$ORIGIN'

$(CLANG19_OBJS): $(BUILD)/%.bpf.o: bpf/%.bpf.c $(BUILD)/vmlinux.h $(wildcard bpf/*.h) | $(BUILD)
	$(CLANG_19) $(BPF_CFLAGS) -c $< -o $@

# The pybpf tools' objects, shipped as package data (the wheel build runs this;
# it writes only to pybpf/tools/bpf/ and $(TOOLS_BUILD), never to $(BUILD)).
LLVM_STRIP  ?= $(shell command -v llvm-strip 2>/dev/null || command -v llvm-strip-16 2>/dev/null)
TOOLS_OBJS  := $(patsubst %.bpf.c,%.bpf.o,$(wildcard $(TOOLS_DIR)/*.bpf.c))

tools-bpf: $(TOOLS_OBJS)

$(TOOLS_DIR)/%.bpf.o: $(TOOLS_DIR)/%.bpf.c $(TOOLS_DIR)/tools.h $(TOOLS_BUILD)/vmlinux.h
	$(CLANG) -O2 -g -target bpf -D__TARGET_ARCH_$(ARCH) -I$(TOOLS_BUILD) -I$(TOOLS_DIR) -Wall -Wno-unused-function -c $< -o $@.tmp
	$(if $(LLVM_STRIP),$(LLVM_STRIP) -g $@.tmp,@true)
	mv $@.tmp $@

# Install what is missing (once), as `make deps` does.
ensure-deps:
	@command -v $(CLANG) >/dev/null 2>&1 && command -v $(CLANG_NEW) >/dev/null 2>&1 \
	  && command -v $(CLANG_19) >/dev/null 2>&1 \
	  && command -v llvm-mc-16 >/dev/null 2>&1 \
	  && test -n "$(BPFTOOL)" && test -f /usr/include/bpf/bpf_helpers.h \
	  && command -v $(HOST_CC) >/dev/null 2>&1 && echo '#include <sys/sdt.h>' | $(HOST_CC) -E -x c - >/dev/null 2>&1 \
	  && command -v promtool >/dev/null 2>&1 && command -v pypy3 >/dev/null 2>&1 \
	  && pypy3 -c 'import ensurepip, venv' 2>/dev/null \
	  && $(PYTHON) -c 'import elftools, pytest, hypothesis, wheel' 2>/dev/null || $(MAKE) deps

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

# mypy --strict over the package (the settings are in pyproject.toml); the pinned mypy
# no longer accepts 3.9 as a target, so 3.9 syntax is held by the 3.9 test run instead.
MYPY_VERSION ?= 2.4.1

typecheck:
	$(PYTHON) -c 'import mypy, sys; sys.exit(mypy.__version__ != "$(MYPY_VERSION)")' 2>/dev/null \
	  || $(PYTHON) -m pip install -q --disable-pip-version-check 'mypy==$(MYPY_VERSION)'
	$(PYTHON) -m mypy

# Every CPython of the machine (pyenv's 3.9 to 3.13, or python3.X on PATH) runs the
# pure suite without privileges; PyPy runs the whole suite, kernel tests included.
PURE_PYTHONS ?= $(foreach v,3.9 3.10 3.12 3.13,$(firstword $(wildcard $(HOME)/.pyenv/versions/$(v).*/bin/python$(v)) $(shell command -v python$(v) 2>/dev/null)))
PYPY_VENV ?= $(BUILD)/pypy-venv

test-interpreters: ensure-deps
	$(MAKE) all
	@test -n "$(strip $(PURE_PYTHONS))" || { echo "make: no CPython 3.9-3.13 besides $(PYTHON) found" >&2; exit 1; }
	for py in $(PURE_PYTHONS); do \
	  $$py -m pip install -q --disable-pip-version-check pyelftools pytest hypothesis wheel 'setuptools>=77' && \
	  echo "== pure suite on $$($$py -V)" && \
	  setpriv --bounding-set=-all --inh-caps=-all -- env -u PYBPF_REQUIRE_KERNEL \
	    $$py -m pytest -q -p no:cacheprovider tests || exit 1; \
	done

pypy-venv: $(PYPY_VENV)/bin/python

$(PYPY_VENV)/bin/python:
	pypy3 -m venv $(PYPY_VENV)
	$(PYPY_VENV)/bin/pip install -q --disable-pip-version-check pyelftools pytest hypothesis wheel 'setuptools>=77'

test-pypy: ensure-deps $(PYPY_VENV)/bin/python
	$(MAKE) all
	$(PYPY_VENV)/bin/python -m pytest -q -p no:cacheprovider tests

clean:
	rm -rf $(BUILD) $(TOOLS_BUILD) $(TOOLS_OBJS)
