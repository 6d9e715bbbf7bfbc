/* Shared helpers for the libFuzzer harnesses in tests/fuzz/. */
#ifndef TESTS_FUZZ_UTIL_H
#define TESTS_FUZZ_UTIL_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * A broken property is a finding like a crash: print what broke and abort, so
 * libFuzzer saves the input (crash-<sha1>) and the run fails.
 */
#define FUZZ_CHECK(cond, ...)                                                                     \
	do {                                                                                      \
		if (!(cond)) {                                                                    \
			fprintf(stderr, "%s:%d: property failed: %s\n  ", __FILE__, __LINE__,     \
			        #cond);                                                           \
			fprintf(stderr, __VA_ARGS__);                                             \
			fputc('\n', stderr);                                                      \
			abort();                                                                  \
		}                                                                                 \
	} while (0)

/*
 * jansson flags under which its idea of valid JSON is closest to RFC 8259:
 * any value at the top, \u0000 allowed, integers of any size (decoded as
 * reals). What still differs from a plain RFC 8259 validator: numbers whose
 * value overflows a double (json_error_numeric_overflow), nesting deeper than
 * 2048 (json_error_stack_overflow) and \u0000 in a member name, which jansson
 * refuses even with JSON_ALLOW_NUL (json_error_null_byte_in_key).
 */
#define FUZZ_JANSSON_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL)

/* True when jansson refused the text for a reason plain RFC 8259 validity does not cover. */
static inline int
fuzz_jansson_limit(const json_error_t *e)
{
	enum json_error_code code = json_error_code(e);

	return code == json_error_numeric_overflow || code == json_error_stack_overflow ||
	       code == json_error_null_byte_in_key || code == json_error_out_of_memory;
}

/* A NUL-terminated copy of data (libFuzzer's buffer is not terminated). */
static inline char *
fuzz_strndup(const unsigned char *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif
