/* Unit tests for common/json_scan.c: strict validation and member spans. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../common/json_scan.h"

static int
scan(const char *text, size_t len, struct json_span *span)
{
	char err[128];

	return json_scan_member(text, len, "stored_data", span, err, sizeof(err));
}

#define SCAN(text, span) scan(text, sizeof(text) - 1, span)

static void
test_finds_member_span(void **state)
{
	static const char text[] = " {\"x\": 1, \"stored_data\" : [ {\"a\":1}, 2 ] , \"y\":null} ";
	struct json_span span;

	(void)state;
	assert_int_equal(SCAN(text, &span), 1);
	assert_int_equal(span.type, '[');
	assert_int_equal(span.len, strlen("[ {\"a\":1}, 2 ]"));
	assert_memory_equal(text + span.offset, "[ {\"a\":1}, 2 ]", span.len);
}

static void
test_member_only_at_top_level(void **state)
{
	struct json_span span;

	(void)state;
	assert_int_equal(SCAN("{\"inner\":{\"stored_data\":[]}}", &span), 0);
	assert_int_equal(SCAN("[{\"stored_data\":[]}]", &span), 0);
	assert_int_equal(SCAN("{\"stored_data\":5}", &span), 1);
	assert_int_equal(span.type, '5');
}

static void
test_accepts_valid_json(void **state)
{
	static const char *const valid[] = {
	    "0",
	    "-0",
	    "-12.5e+3",
	    "1E9",
	    "true",
	    "false",
	    "null",
	    "\"\"",
	    "[]",
	    "{}",
	    "\"\\u00e9\\ud83d\\ude00\\n\\/\"",
	    "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"",
	    "[[[[[]]]]]",
	    "{\"a\":{\"b\":[1,{\"c\":\"d\"}]}}",
	};
	struct json_span span;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
		assert_int_not_equal(scan(valid[i], strlen(valid[i]), &span), -1);
}

static void
test_rejects_invalid_json(void **state)
{
	static const char *const invalid[] = {
	    "",
	    " ",
	    "{",
	    "[1,]",
	    "{\"a\":1,}",
	    "{\"a\" 1}",
	    "{a:1}",
	    "01",
	    "1.",
	    ".5",
	    "-",
	    "1e",
	    "+1",
	    "tru",
	    "nul",
	    "\"abc",
	    "\"\\x\"",
	    "\"\\u12\"",
	    "\"\\ud800\"",
	    "\"\\udc00\"",
	    "\"\xff\"",
	    "\"\xc0\xaf\"",
	    "\"\xed\xa0\x80\"",
	    "\"\xf4\x90\x80\x80\"",
	    "\"\xe2\x82\"",
	    "\"a\tb\"",
	    "[1] [2]",
	    "{} x",
	    "'single'",
	    "NaN",
	    "[1 2]",
	};
	struct json_span span;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		if (scan(invalid[i], strlen(invalid[i]), &span) != -1)
			fail_msg("accepted invalid JSON: %s", invalid[i]);
	}
	assert_int_equal(scan("\"a\0b\"", 5, &span), -1);
}

static void
test_depth_is_bounded(void **state)
{
	size_t n = 100000, i;
	char *deep = malloc(2 * n);
	struct json_span span;
	char err[128];

	(void)state;
	assert_non_null(deep);
	for (i = 0; i < n; i++) {
		deep[i] = '[';
		deep[2 * n - 1 - i] = ']';
	}
	assert_int_equal(json_scan_member(deep, 2 * n, "k", &span, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "nesting too deep"));
	free(deep);
}

/* Writes depth objects {"a":{"a":...}} around a string value; returns the length. */
static size_t
nested_objects(char *out, size_t depth, const char *string)
{
	size_t n = 0, i;

	for (i = 0; i < depth; i++)
		n += (size_t)sprintf(out + n, "{\"a\":");
	n += (size_t)sprintf(out + n, "\"%s\"", string);
	for (i = 0; i < depth; i++)
		out[n++] = '}';
	return n;
}

/* The limit counts a string value like any other: the quick path for strings does not skip it. */
static void
test_depth_limit_counts_string_members(void **state)
{
	static const char *const strings[] = {"short", "a string longer than sixteen bytes"};
	char *text = malloc(8 * JSON_SCAN_MAX_DEPTH + 64), err[128];
	struct json_span span;
	size_t i, n;

	(void)state;
	assert_non_null(text);
	for (i = 0; i < 2; i++) {
		n = nested_objects(text, JSON_SCAN_MAX_DEPTH - 1, strings[i]);
		assert_int_equal(json_scan_member(text, n, "k", &span, err, sizeof(err)), 0);
		n = nested_objects(text, JSON_SCAN_MAX_DEPTH, strings[i]);
		assert_int_equal(json_scan_member(text, n, "k", &span, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "nesting too deep"));
	}
	free(text);
}

static void
test_error_names_the_place(void **state)
{
	struct json_span span;
	char err[128];

	(void)state;
	assert_int_equal(json_scan_member("{\"a\":x}", 7, "a", &span, err, sizeof(err)), -1);
	assert_string_equal(err, "unexpected character at byte 5");
}

/*
 * Long strings are stepped over 16 bytes at a time: every byte that needs a
 * look is still found, whichever place it has in or across a 16-byte step.
 */
static void
test_long_strings_checked_at_every_offset(void **state)
{
	static const char *const stops[] = {"\x01", "\x1f", "\\q", "\xc0\xaf", "\xed\xa0\x80"};
	char text[64], err[128];
	struct json_span span;
	size_t at, k, len;

	(void)state;
	for (at = 0; at < 40; at++) {
		/* "aaa...a" with a valid escape, then UTF-8, at byte `at` of the string */
		memset(text, 'a', sizeof(text));
		text[0] = '"';
		memcpy(text + 1 + at, "\\n\xc3\xa9", 4);
		text[45] = '"';
		assert_int_equal(json_scan_member(text, 46, "k", &span, err, sizeof(err)), 0);
		for (k = 0; k < sizeof(stops) / sizeof(stops[0]); k++) {
			memset(text, 'a', sizeof(text));
			text[0] = '"';
			len = strlen(stops[k]);
			memcpy(text + 1 + at, stops[k], len);
			text[45] = '"';
			assert_int_equal(json_scan_member(text, 46, "k", &span, err, sizeof(err)),
			                 -1);
		}
		/* an early closing quote leaves text after the value */
		memset(text, 'a', sizeof(text));
		text[0] = '"';
		text[1 + at] = '"';
		text[45] = '"';
		assert_int_equal(json_scan_member(text, 46, "k", &span, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "text after the end of the value"));
		/* no closing quote at all, the string ending at any length */
		memset(text, 'a', sizeof(text));
		text[0] = '"';
		assert_int_equal(json_scan_member(text, 1 + at, "k", &span, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "unterminated string"));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_finds_member_span),
	    cmocka_unit_test(test_member_only_at_top_level),
	    cmocka_unit_test(test_accepts_valid_json),
	    cmocka_unit_test(test_rejects_invalid_json),
	    cmocka_unit_test(test_depth_is_bounded),
	    cmocka_unit_test(test_depth_limit_counts_string_members),
	    cmocka_unit_test(test_error_names_the_place),
	    cmocka_unit_test(test_long_strings_checked_at_every_offset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
