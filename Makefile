# certgate — build, test, demo and bench.
#
#   make            build the module and certgatectl into build/
#   make test       build a test variant (build-test/) and run every suite
#   make test SANITIZE=1   the same with AddressSanitizer + UBSan (build-asan/)
#   make demo       start a demo on 127.0.0.1 (keeps its data; make demo-reset starts over);
#                   make demo-stop ends it
#   make demo-fleet the same as a fleet: 3 nodes, PostgreSQL, 2 memcached and a
#                   balancer on 127.0.0.1:8444 (make demo-fleet-stop, make demo-fleet-reset)
#   make bench      benchmarks (figures go to docs/performance.md)
#
# Every target that builds or runs something installs Debian packages first
# (make deps).

SHELL := /bin/bash
.DEFAULT_GOAL := all

NGX_SRC  ?= /usr/share/nginx/src
NGINX    ?= /usr/sbin/nginx
CXX      ?= g++
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)

SANITIZE ?=
TESTING  ?=

ifeq ($(SANITIZE),1)
  B := build-asan
  TESTING := 1
  SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  HARDEN :=
else
  SAN_FLAGS :=
  HARDEN := -D_FORTIFY_SOURCE=2 -fstack-protector-strong
  ifeq ($(TESTING),1)
    B := build-test
  else
    B := build
  endif
endif

ifeq ($(TESTING),1)
  TEST_DEFS := -DCERTGATE_TEST_HOOKS=1
else
  TEST_DEFS :=
endif

BDIR := $(CURDIR)/$(B)

CXXSTD   := -std=c++17
WARN     := -Wall -Wextra -Werror
# libpq (the PostgreSQL store): its headers are not in the default path on Debian.
PG_INC   := $(shell pg_config --includedir 2>/dev/null || echo /usr/include/postgresql)
CXXFLAGS_ALL := $(CXXSTD) -O2 -g -fPIC $(WARN) $(HARDEN) $(SAN_FLAGS) $(TEST_DEFS) -Isrc -I$(PG_INC)
LINK_HARDEN  := -Wl,-z,relro -Wl,-z,now
LIBS     := -lsqlite3 -lpq -largon2 -lssl -lcrypto -lcurl -lpcre2-8 -lcctz -lmemcached -lpthread

CORE_SRCS := $(shell find src/core -name '*.cpp' | sort)
CORE_HDRS := $(shell find src/core -name '*.hpp')
CORE_OBJS := $(patsubst src/core/%.cpp,$(B)/core/%.o,$(CORE_SRCS))
# Templates, mail texts, word tables, CSS and JS: files under resources/,
# embedded into the core by resources/embed.py.
RESOURCES := $(shell find resources -type f ! -name '*.py' ! -name '*~' | sort)
GEN_OBJS  := $(B)/gen/resources.o
PYTHON    ?= python3
CTL_SRCS  := $(wildcard src/ctl/*.cpp)
CTL_OBJS  := $(patsubst src/ctl/%.cpp,$(B)/ctl/%.o,$(CTL_SRCS))
GLUE_SRCS := $(wildcard src/nginx/*.cpp src/nginx/*.hpp) config config.make
UNIT_SRCS := $(wildcard t/unit/test_*.cpp)
UNIT_BINS := $(patsubst t/unit/%.cpp,$(B)/unit/%,$(UNIT_SRCS))

CORE_LIB := $(B)/libcertgate_core.a
MODULE   := $(B)/ngx_http_certgate_module.so
CTL      := $(B)/certgatectl

# Debian packages for build, test and demo.
DEPS := build-essential nginx nginx-dev memcached libsqlite3-dev sqlite3 \
        libargon2-dev argon2 libssl-dev openssl libcurl4-openssl-dev \
        libpcre2-dev zlib1g-dev libcmocka-dev python3-aiosmtpd python3-prometheus-client \
        libio-socket-ssl-perl libjson-pp-perl perl curl \
        libkainjow-mustache-dev libnss3-tools tzdata \
        softhsm2 opensc libengine-pkcs11-openssl chromium \
        libtest-base-perl liburi-perl libtext-diff-perl libtest-longstring-perl \
        liblist-moreutils-perl libhttp-message-perl \
        debhelper dpkg-dev go-md2man lintian \
        libmemcached-dev nlohmann-json3-dev libcctz-dev fonts-noto-cjk \
        postgresql-15 libpq-dev libnginx-mod-stream clang-format clang-tidy \
        $(if $(shell command -v npm),,nodejs npm)

.PHONY: all deps build module ctl unit test test-unit test-prove test-e2e \
        demo demo-stop demo-reset demo-fleet demo-fleet-stop demo-fleet-reset bench clean check check-format check-tidy deb

all: deps build

build: $(MODULE) $(CTL)

deps:
	@missing=$$(for p in $(DEPS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	  done); \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then \
	  echo "certgate: installing Debian packages: $$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
	    || { echo "certgate: apt-get install failed" >&2; exit 1; }; \
	else \
	  echo "certgate: missing Debian packages. Run as root:"; \
	  echo "  apt-get install -y $$missing"; exit 1; \
	fi

# --- the C++ core (no nginx types), a PIC static library ---------------------

$(B)/core/%.o: src/core/%.cpp $(CORE_HDRS)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS_ALL) -c -o $@ $<

$(B)/gen/resources.cpp: resources/embed.py $(RESOURCES)
	@mkdir -p $(dir $@)
	$(PYTHON) resources/embed.py $@ resources $(RESOURCES)

$(B)/gen/resources.o: $(B)/gen/resources.cpp src/core/web/resources.hpp
	$(CXX) $(CXXFLAGS_ALL) -c -o $@ $<

$(CORE_LIB): $(CORE_OBJS) $(GEN_OBJS)
	@rm -f $@
	ar rcs $@ $^

# --- certgatectl ----------------------------------------------------------------

$(B)/ctl/%.o: src/ctl/%.cpp $(CORE_HDRS) $(wildcard src/ctl/*.hpp)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS_ALL) -c -o $@ $<

$(CTL): $(CTL_OBJS) $(CORE_LIB)
	$(CXX) $(SAN_FLAGS) $(LINK_HARDEN) $(LDFLAGS) -o $@.tmp $(CTL_OBJS) $(CORE_LIB) $(LIBS) && mv -f $@.tmp $@

# --- the nginx module, built against Debian's nginx-dev sources -------------

NGX_CC_OPT := -g -O2 -fstack-protector-strong -Wformat -Werror=format-security \
              -fPIC -Wdate-time -D_FORTIFY_SOURCE=2 $(SAN_FLAGS) $(TEST_DEFS)

$(B)/nginx/objs/Makefile: $(NGX_SRC)/conf_flags config config.make
	@test -f $(NGX_SRC)/configure || { echo "certgate: $(NGX_SRC) not found; run make deps" >&2; exit 1; }
	rm -rf $(B)/nginx && mkdir -p $(B) && cp -r $(NGX_SRC) $(B)/nginx
	cd $(B)/nginx && . ./conf_flags && \
	  CERTGATE_BUILD=$(BDIR) CERTGATE_LDFLAGS="$(SAN_FLAGS) $(LINK_HARDEN)" \
	  ./configure "$${NGX_CONF_FLAGS[@]}" --with-cc-opt="$(NGX_CC_OPT)" \
	    --add-dynamic-module=$(CURDIR) > configure.log 2>&1 \
	  || { tail -20 configure.log; exit 1; }

$(MODULE): $(B)/nginx/objs/Makefile $(CORE_LIB) $(GLUE_SRCS)
	$(MAKE) -s -C $(B)/nginx -f objs/Makefile modules
	@# A new file renamed into place: a running nginx keeps the old one mapped.
	cp $(B)/nginx/objs/ngx_http_certgate_module.so $@.tmp && mv -f $@.tmp $@

module: $(MODULE)
ctl: $(CTL)

# --- tests ----------------------------------------------------------------------

$(B)/unit/%: t/unit/%.cpp $(CORE_LIB) $(wildcard t/unit/*.hpp)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS_ALL) -o $@ $< $(CORE_LIB) -lcmocka $(LIBS)

unit: $(UNIT_BINS)

# `make test` always tests the test variant (test hooks compiled in).
test:
	@$(MAKE) --no-print-directory deps
	@$(MAKE) --no-print-directory TESTING=1 SANITIZE=$(SANITIZE) test-build
	@$(MAKE) --no-print-directory -j$(JOBS) TESTING=1 SANITIZE=$(SANITIZE) check
	@# t/deb.t installs the package: build it as `make deb` does.
	@mkdir -p $(BDIR) && $(MAKE) --no-print-directory deb > $(BDIR)/deb.log 2>&1 || { tail -40 $(BDIR)/deb.log; exit 1; }
	@$(MAKE) --no-print-directory TESTING=1 SANITIZE=$(SANITIZE) test-run

test-build: build unit

test-run:
	@CERTGATE_BUILD=$(BDIR) CERTGATE_SANITIZE=$(SANITIZE) JOBS=$(JOBS) t/run-all $(UNIT_BINS)

# --- demo ------------------------------------------------------------------------

demo: all
	@CERTGATE_BUILD=$(BDIR) t/demo start

demo-stop:
	@t/demo stop

demo-reset: all
	@CERTGATE_BUILD=$(BDIR) t/demo reset

# The fleet on one machine (docs/fleet.md): its own data in .demo-fleet/.
demo-fleet: all
	@CERTGATE_BUILD=$(BDIR) t/demo-fleet start

demo-fleet-stop:
	@t/demo-fleet stop

demo-fleet-reset: all
	@CERTGATE_BUILD=$(BDIR) t/demo-fleet reset

# --- bench -----------------------------------------------------------------------

bench: all
	@CERTGATE_BUILD=$(BDIR) ./bench/run

# --- the Debian package ----------------------------------------------------------
# libnginx-mod-http-certgate_<version>_amd64.deb in build-deb/, built with dh
# from a copy of the tree (dpkg-buildpackage writes beside its source).

DEB_VERSION = $(shell dpkg-parsechangelog -l debian/changelog -S Version)

deb:
	@$(MAKE) --no-print-directory deps
	rm -rf build-deb && mkdir -p build-deb/certgate-$(DEB_VERSION)
	git ls-files -co --exclude-standard | grep -v -e '^t/e2e/node_modules/' -e '^build' \
	  | tar -cf - -T - | tar -xf - -C build-deb/certgate-$(DEB_VERSION)
	cd build-deb/certgate-$(DEB_VERSION) && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES \
	  dpkg-buildpackage -us -uc -b > ../build.log 2>&1 \
	  || { tail -30 $(CURDIR)/build-deb/build.log; exit 1; }
	lintian --info --display-info build-deb/*.changes | tee build-deb/lintian.log
	@ls build-deb/*.deb

# --- static checks (part of make test) ------------------------------------------

FORMAT_SRCS := $(shell find src t/unit -name '*.cpp' -o -name '*.hpp' | sort)
TIDY_SRCS   := $(shell find src -name '*.cpp' | sort)
TIDY_STAMPS := $(patsubst src/%.cpp,$(B)/tidy/%.ok,$(TIDY_SRCS))
NGX_INCS    := $(foreach d,core event event/modules os/unix http http/modules http/v2,-isystem $(NGX_SRC)/src/$(d)) \
               -isystem $(B)/nginx/objs

check-format:
	@clang-format --dry-run --Werror $(FORMAT_SRCS) && echo "clang-format: $(words $(FORMAT_SRCS)) files clean"

# One stamp per file, so make -j runs clang-tidy in parallel and a second run
# checks only what changed. The glue needs nginx's headers and the configured objs/.
$(B)/tidy/%.ok: src/%.cpp .clang-tidy $(CORE_HDRS) $(wildcard src/nginx/*.hpp src/ctl/*.hpp) | $(B)/nginx/objs/Makefile
	@mkdir -p $(dir $@)
	@clang-tidy --quiet $< -- $(CXXSTD) -Isrc -I$(PG_INC) $(TEST_DEFS) $(if $(filter src/nginx/%,$<),$(NGX_INCS)) 2>&1 \
	  | grep -v '^[0-9]* warnings* generated' ; test $${PIPESTATUS[0]} = 0 && touch $@

check-tidy: $(TIDY_STAMPS)
	@echo "clang-tidy: $(words $(TIDY_SRCS)) files clean"

check: check-format check-tidy

clean:
	rm -rf build build-test build-asan build-deb .demo .demo-fleet
