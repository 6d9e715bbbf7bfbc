# Builds the libFuzzer harnesses of tests/fuzz/ into build/fuzz/bin/ (run from the repository root):
#   make -f tests/fuzz/fuzz.mk [-j2]
# The modules under test are compiled here with clang, -fsanitize=fuzzer-no-link plus AddressSanitizer
# and UndefinedBehaviorSanitizer, with the Makefile's language flags; tests/fuzz/run.sh calls this.
FUZZ_CC      := clang
FUZZ_OUT     := build/fuzz
FUZZ_PKGS    := libmicrohttpd jansson libcurl
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS  := -g -O1 -std=c11 -D_GNU_SOURCE -pthread -Wall -Wextra $(FUZZ_SAN) \
                $(shell pkg-config --cflags $(FUZZ_PKGS)) -MMD -MP
FUZZ_LIBS    := $(shell pkg-config --libs $(FUZZ_PKGS)) -pthread

# What each harness links besides itself: the parsers and serializers under test.
FUZZ_MODULES := common/buffer.c common/json_escape.c common/json_scan.c common/log.c common/payload.c \
                common/store.c common/random.c common/trace.c common/xray_segment.c \
                caller/judge.c caller/merge.c
FUZZ_OBJ     := $(FUZZ_MODULES:%.c=$(FUZZ_OUT)/obj/%.o)
FUZZ_NAMES   := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS    := $(FUZZ_NAMES:%=$(FUZZ_OUT)/bin/%)

.PHONY: fuzz-build
.SECONDARY: $(FUZZ_OBJ)
fuzz-build: $(FUZZ_BINS)

$(FUZZ_OUT)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_OUT)/bin/%: tests/fuzz/%.c $(FUZZ_OBJ)
	@mkdir -p $(dir $@) $(FUZZ_OUT)/dep
	$(FUZZ_CC) $(FUZZ_CFLAGS) -MF $(FUZZ_OUT)/dep/$*.d -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJ) $(FUZZ_LIBS)

-include $(FUZZ_OBJ:.o=.d) $(wildcard $(FUZZ_OUT)/dep/*.d)
