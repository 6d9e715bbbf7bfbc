/* Unit tests for common/trace.c: continuing, converting and minting trace context. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "../../../common/trace.h"

static int
is_lower_hex(const char *s, size_t n)
{
	size_t i;

	if (strlen(s) != n)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static void
test_continues_traceparent(void **state)
{
	struct trace t;
	char out[TRACE_HEADER_MAX];

	(void)state;
	trace_begin(&t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", NULL);
	assert_string_equal(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
	assert_true(is_lower_hex(t.span_id, SPAN_ID_LEN));
	assert_string_not_equal(t.span_id, "00f067aa0ba902b7");
	trace_traceparent(&t, out);
	assert_memory_equal(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36);
	assert_string_equal(out + 52, "-01");
	trace_amzn(&t, out);
	assert_memory_equal(out, "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=", 48);
	assert_string_equal(out + 48 + SPAN_ID_LEN, ";Sampled=1");
}

static void
test_traceparent_wins_over_amzn_and_keeps_unsampled(void **state)
{
	struct trace t;

	(void)state;
	trace_begin(&t, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
	            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1");
	assert_string_equal(t.trace_id, "0af7651916cd43dd8448eb211c80319c");
	assert_int_equal(t.sampled, '0');
}

static void
test_continues_amzn_trace_id(void **state)
{
	struct trace t;

	(void)state;
	trace_begin(&t, "garbage",
	            "Self=1-abc;Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;"
	            "Sampled=0");
	assert_string_equal(t.trace_id, "5759e988bd862e3fe1be46a994272793");
	assert_int_equal(t.sampled, '0');
}

static void
test_invalid_headers_start_a_new_trace(void **state)
{
	static const char *const bad_parents[] = {
	    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
	    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
	    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
	    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
	    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
	};
	struct trace t, u;
	char first8[9];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad_parents) / sizeof(bad_parents[0]); i++) {
		trace_begin(&t, bad_parents[i], "Root=1-5759e988-bd862e3fe1be46a99427279");
		assert_true(is_lower_hex(t.trace_id, TRACE_ID_LEN));
		assert_string_not_equal(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
		assert_int_equal(t.sampled, '1');
	}
	trace_begin(&t, NULL, "Root=1-00000000-000000000000000000000000;Sampled=1");
	assert_string_not_equal(t.trace_id, "00000000000000000000000000000000");
	trace_begin(&t, NULL, NULL);
	trace_begin(&u, NULL, NULL);
	assert_string_not_equal(t.trace_id, u.trace_id);
	assert_string_not_equal(t.span_id, u.span_id);
	/* X-Ray needs the first 8 digits to be the epoch seconds. */
	snprintf(first8, sizeof(first8), "%08lx", (unsigned long)time(NULL) & 0xffffffffUL);
	assert_memory_equal(t.trace_id, first8, 6);
}

static void
test_parent_and_decision_are_kept(void **state)
{
	struct trace t;

	(void)state;
	trace_begin(&t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", NULL);
	assert_string_equal(t.parent_id, "00f067aa0ba902b7");
	assert_int_equal(t.decided, 1);
	trace_begin(&t, NULL,
	            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1");
	assert_string_equal(t.parent_id, "53995c3f42cd8ad8");
	assert_int_equal(t.decided, 1);
	assert_int_equal(t.sampled, '1');
	/* X-Ray's "decide for me", or no decision at all, leaves it open. */
	trace_begin(&t, NULL, "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=?");
	assert_int_equal(t.decided, 0);
	assert_string_equal(t.parent_id, "");
	trace_begin(&t, NULL, "Root=1-5759e988-bd862e3fe1be46a994272793");
	assert_int_equal(t.decided, 0);
	assert_int_equal(t.sampled, '1');
	/* A parent that is not 16 hex digits, or Sampled= with anything but 0 or 1, is ignored. */
	trace_begin(&t, NULL,
	            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad;Sampled=01");
	assert_string_equal(t.parent_id, "");
	assert_int_equal(t.decided, 0);
	trace_begin(&t, NULL, "Root=1-5759e988-bd862e3fe1be46a994272793;XParent=53995c3f42cd8ad8");
	assert_string_equal(t.parent_id, "");
	trace_begin(&t, NULL, NULL);
	assert_int_equal(t.decided, 0);
	assert_string_equal(t.parent_id, "");
}

static void
test_child_names_this_hop_as_parent(void **state)
{
	struct trace t, child;
	char out[TRACE_HEADER_MAX], expect[TRACE_HEADER_MAX];

	(void)state;
	trace_begin(&t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", NULL);
	trace_child(&t, &child);
	assert_string_equal(child.trace_id, t.trace_id);
	assert_string_equal(child.parent_id, t.span_id);
	assert_true(is_lower_hex(child.span_id, SPAN_ID_LEN));
	assert_string_not_equal(child.span_id, t.span_id);
	assert_int_equal(child.sampled, '0');
	trace_amzn(&child, out);
	snprintf(expect, sizeof(expect),
	         "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=%s;Sampled=0", child.span_id);
	assert_string_equal(out, expect);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_continues_traceparent),
	    cmocka_unit_test(test_traceparent_wins_over_amzn_and_keeps_unsampled),
	    cmocka_unit_test(test_continues_amzn_trace_id),
	    cmocka_unit_test(test_invalid_headers_start_a_new_trace),
	    cmocka_unit_test(test_parent_and_decision_are_kept),
	    cmocka_unit_test(test_child_names_this_hop_as_parent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
