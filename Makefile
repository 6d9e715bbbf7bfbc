# ecs-service-connect-demo-app: two C daemons, their tests and their tools.
#   make            bin/caller and bin/responder
#   make test       unit tests and black-box tests (installs missing Debian packages when it can)
#   make watch      scripts/watch-versions.sh against real daemons behind a weighted nginx (in make test)
#   make SANITIZE=1 test   the same, built with AddressSanitizer and UndefinedBehaviorSanitizer
#   make run        responder on 5001 and caller on 5000, in the foreground (installs missing packages)
#   make e2e        the README's run commands and the compose stack, end to end, with a real Docker engine
#   make bench      throughput, latency and memory against nginx; writes BENCH.md
#   make fuzz       libFuzzer on every parser and serializer (FUZZ_SECONDS each)
#   make analysis   cppcheck + clang-tidy, valgrind leak check, ThreadSanitizer

CC      ?= cc
PKGS_COMMON := libmicrohttpd jansson gnutls
PKGS_CALLER := $(PKGS_COMMON) libcurl
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wstrict-prototypes -Wformat=2 -pthread -MMD -MP
# CI sets CI=true: there every warning is an error.
ifeq ($(CI),true)
WERROR  := 1
endif
ifeq ($(WERROR),1)
CFLAGS  += -Werror
endif
ifeq ($(SANITIZE),1)
OUT     := build/sanitize
CFLAGS  += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
else
OUT     := .
endif
BUILD   := $(if $(filter .,$(OUT)),build,$(OUT))
OBJ     := $(BUILD)/obj
BIN     := $(OUT)/bin
LDLIBS  += -pthread
# The version both daemons report unless APP_VERSION is set where they run.
APP_VERSION ?= 1.0.0

COMMON_SRC := $(wildcard common/*.c)
CALLER_SRC := $(wildcard caller/*.c)
RESPONDER_SRC := $(wildcard responder/*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=$(OBJ)/%.o)
CALLER_OBJ := $(CALLER_SRC:%.c=$(OBJ)/%.o)
RESPONDER_OBJ := $(RESPONDER_SRC:%.c=$(OBJ)/%.o)

UNIT_SRC := $(wildcard tests/unit/common/test_*.c tests/unit/caller/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/unit/%)

PYTHON  := /usr/bin/python3

.PHONY: all test unit blackbox hostile watch soak deploy-test compose-test fuzz lint valgrind tsan analysis deps run e2e bench format format-check clean
all: $(BIN)/caller $(BIN)/responder

# Only the caller's own files need libcurl's headers; the responder's image has none.
$(OBJ)/caller/%.o: caller/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(shell pkg-config --cflags $(PKGS_CALLER)) -c -o $@ $<

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(shell pkg-config --cflags $(PKGS_COMMON)) -c -o $@ $<

$(BIN)/responder: $(RESPONDER_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs $(PKGS_COMMON)) $(LDLIBS)

$(BIN)/caller: $(CALLER_OBJ) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs $(PKGS_CALLER)) $(LDLIBS)

# The built-in version is compiled into one object, rebuilt when the value changes.
$(OBJ)/common/app_version.o: CFLAGS += -DAPP_VERSION_DEFAULT='"$(APP_VERSION)"'
$(OBJ)/common/app_version.o: $(BUILD)/app-version
$(BUILD)/app-version: FORCE
	@mkdir -p $(dir $@)
	@echo '$(APP_VERSION)' | cmp -s - $@ || echo '$(APP_VERSION)' >$@

.PHONY: FORCE
FORCE:

# Each unit test links the module it is named after plus what that module needs from common/.
$(BUILD)/unit/common/test_%: tests/unit/common/test_%.c $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(COMMON_OBJ) \
		$(shell pkg-config --libs $(PKGS_COMMON) cmocka) $(LDLIBS)

# Caller tests also link the caller's modules (all but main).
$(BUILD)/unit/caller/test_%: tests/unit/caller/test_%.c $(filter-out %/main.o,$(CALLER_OBJ)) $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(shell pkg-config --libs $(PKGS_CALLER) cmocka) $(LDLIBS)

deps:
	@scripts/install-deps.sh

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

blackbox: all
	BIN_DIR=$(abspath $(BIN)) $(PYTHON) -m pytest -q tests/blackbox

deploy-test:
	tests/deploy/run.sh

compose-test:
	tests/compose/run.sh

hostile: all
	BIN_DIR=$(abspath $(BIN)) $(PYTHON) -m pytest -q tests/hostile

# scripts/watch-versions.sh against two responder versions behind a weighted nginx splitter.
watch: all
	BIN_DIR=$(abspath $(BIN)) $(PYTHON) -m pytest -q tests/watch

SOAK_SECONDS ?= 120
soak: all
	BIN_DIR=$(abspath $(BIN)) tests/soak/run.sh --seconds $(SOAK_SECONDS)

test: deps
	$(MAKE) all unit blackbox hostile watch deploy-test compose-test

bench:
	bench/run.sh

FUZZ_SECONDS ?= 60
fuzz:
	tests/fuzz/run.sh $(FUZZ_SECONDS)

lint:
	tests/analysis/lint.sh

valgrind:
	tests/analysis/valgrind.sh

tsan:
	tests/analysis/tsan.sh

analysis: lint valgrind tsan

e2e:
	tests/e2e/run.sh

run:
	@scripts/install-deps.sh --build
	@$(MAKE) --no-print-directory all
	@scripts/run-local.sh $(BIN)

format:
	clang-format -i $(COMMON_SRC) $(CALLER_SRC) $(RESPONDER_SRC) $(wildcard common/*.h caller/*.h) $(UNIT_SRC)

format-check:
	clang-format --dry-run --Werror $(COMMON_SRC) $(CALLER_SRC) $(RESPONDER_SRC) $(wildcard common/*.h caller/*.h) $(UNIT_SRC)

clean:
	rm -rf bin build

-include $(shell find build -name '*.d' 2>/dev/null)
