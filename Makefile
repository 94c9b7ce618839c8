# xcol developer commands.  `make demo` and `make test` work on a fresh
# machine with Python 3.11 and a C++ compiler: they create .venv and build
# the Cython core first.

PY ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
export XCOL_CORPUS ?= $(abspath ../shared/corpus)

.PHONY: setup sysdeps compile debug test debugtest testinstalled demo bench clean

$(VENV)/.installed: pyproject.toml setup.py
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

# Servers the sink tests start on 127.0.0.1: redis-server, influxd (a real line-protocol
# parser), PostgreSQL (initdb/pg_ctl).  Installed from Debian when missing.
SYSDEPS := redis-server influxdb postgresql
sysdeps:
	@if command -v redis-server >/dev/null && command -v influxd >/dev/null && \
	    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; else \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(SYSDEPS); \
	fi

# Rebuild the extensions in place after editing .pyx/.pxd files.
compile: setup
	$(VPY) setup.py build_ext --inplace --force

# Debug build: bounds checks, XCOL_DEBUG invariants, -O0 -g, annotated HTML.
debug: setup
	XCOL_DEBUG=1 $(VPY) setup.py build_ext --inplace --force

test: setup sysdeps
	$(VPY) -m ruff check xcol tests bench
	$(VPY) -m mypy
	$(VPY) -m pytest -q
	$(MAKE) debugtest

# The book and decoder tests again on a debug build (XCOL_DEBUG=1: bounds checks, and
# every book checks its invariants after each change), built apart in build/debug so
# the release build in place is untouched.
DEBUG_TESTS := tests/test_property.py tests/test_golden.py tests/test_faults.py \
	tests/test_fastpath.py tests/test_decode.py tests/test_malformed.py tests/test_fuzz.py \
	tests/test_meta.py tests/test_rescale_applying.py
debugtest: setup
	rm -rf build/debug && mkdir -p build/debug
	cp -r setup.py xcol build/debug/
	find build/debug/xcol \( -name '*.so' -o -name '*.cpp' -o -name '*.html' \) -delete
	cd build/debug && XCOL_DEBUG=1 $(abspath $(VPY)) setup.py -q build_ext --inplace
	cd build/debug && $(abspath $(VPY)) -c 'import os, sys, xcol._fast.book as b; \
	    ok = b.DEBUG and b.__file__.startswith(os.getcwd()); \
	    sys.exit(0 if ok else "not the debug build: " + b.__file__)'
	cd build/debug && $(abspath $(VPY)) -m pytest -q -p no:cacheprovider \
	    --rootdir $(CURDIR) -c $(CURDIR)/pyproject.toml $(addprefix $(CURDIR)/,$(DEBUG_TESTS))

demo: setup
	$(VPY) -m xcol demo

bench: setup
	$(VPY) -m pip install -q -e '.[bench]'
	$(VPY) bench/hotpath.py --json bench/results-usdm.json
	$(VPY) bench/hotpath.py --market okx --json bench/results-okx.json
	$(VPY) bench/e2e.py --json bench/results-e2e.json

clean:
	rm -rf build $(VENV) *.egg-info xcol/_fast/*.so xcol/_fast/*.cpp xcol/_fast/*.html
