/* Unit tests for common/xray_segment.c: documents, framing, split and trim. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../../common/xray_segment.h"

static const char header[] = XRAY_DAEMON_HEADER;

/* A caller request that called the responder; call may be dropped by the test. */
struct fixture {
	struct trace trace;
	struct trace_call call;
	struct xray_request r;
};

static void
fixture_init(struct fixture *f)
{
	memset(f, 0, sizeof(*f));
	trace_begin(&f->trace, NULL,
	            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1");
	strcpy(f->call.span_id, "0123456789abcdef");
	f->call.name = "responder";
	f->call.url = "http://responder:5000/data";
	f->call.start_s = 1764500000.25;
	f->call.end_s = 1764500000.5;
	f->call.status = 200;
	f->call.bytes = 18;
	f->call.attempts = 1;
	f->call.breaker = "closed";
	f->call.breaker_allowed = 1;
	f->r.name = "caller";
	f->r.version = "1.0.0";
	f->r.trace = &f->trace;
	f->r.start_s = 1764500000.125;
	f->r.end_s = 1764500000.75;
	f->r.method = "GET";
	f->r.url = "http://caller:5000/";
	f->r.client_ip = "10.0.0.7";
	f->r.user_agent = "curl/7.88.1";
	f->r.status = 200;
	f->r.bytes = 54;
	f->r.request_id = "abc";
	f->r.call = &f->call;
}

/* Room for the datagrams of one request at the largest limit. */
static char out[2 * XRAY_DATAGRAM_LIMIT];

/* Checks the header of a datagram and parses what follows it; caller json_decref()s. */
static json_t *
parse_datagram(const struct xray_datagram *d)
{
	const char *doc = d->data;
	size_t len = d->len;
	json_error_t err;
	json_t *j;

	assert_true(len > sizeof(header) - 1);
	assert_memory_equal(doc, header, sizeof(header) - 1);
	j = json_loadb(doc + sizeof(header) - 1, len - (sizeof(header) - 1), 0, &err);
	assert_non_null(j);
	return j;
}

static void
test_whole_segment_with_subsegment(void **state)
{
	struct fixture f;
	struct xray_datagram dg[2];
	size_t count;
	unsigned int how;
	json_t *j, *sub;

	(void)state;
	fixture_init(&f);
	assert_int_equal(xray_documents(&f.r, 64000, out, dg, &count, &how), XRAY_DOCUMENTS_OK);
	assert_int_equal(count, 1);
	assert_int_equal(how, 0);
	j = parse_datagram(&dg[0]);
	assert_string_equal(json_string_value(json_object_get(j, "trace_id")),
	                    "1-5759e988-bd862e3fe1be46a994272793");
	assert_string_equal(json_string_value(json_object_get(j, "id")), f.trace.span_id);
	assert_string_equal(json_string_value(json_object_get(j, "parent_id")), "53995c3f42cd8ad8");
	assert_true(json_real_value(json_object_get(j, "start_time")) == 1764500000.125);
	assert_true(json_real_value(json_object_get(j, "end_time")) == 1764500000.75);
	assert_memory_equal(strstr(dg[0].data, "\"start_time\":"),
	                    "\"start_time\":1764500000.125000,", 31);
	assert_null(json_object_get(j, "fault"));
	sub = json_array_get(json_object_get(j, "subsegments"), 0);
	assert_string_equal(json_string_value(json_object_get(sub, "id")), "0123456789abcdef");
	assert_string_equal(json_string_value(json_object_get(sub, "namespace")), "remote");
	assert_null(json_object_get(sub, "type"));
	assert_int_equal(json_integer_value(json_object_get(
	                     json_object_get(json_object_get(sub, "http"), "response"), "status")),
	                 200);
	json_decref(j);
}

static void
test_failed_call_is_a_fault_with_its_cause(void **state)
{
	struct fixture f;
	struct xray_datagram dg[2];
	size_t count;
	unsigned int how;
	json_t *j, *sub, *ex;

	(void)state;
	fixture_init(&f);
	f.call.status = 0;
	f.call.attempts = 2;
	strcpy(f.call.error, "Couldn't connect to server");
	assert_int_equal(xray_documents(&f.r, 64000, out, dg, &count, &how), XRAY_DOCUMENTS_OK);
	j = parse_datagram(&dg[0]);
	sub = json_array_get(json_object_get(j, "subsegments"), 0);
	assert_true(json_is_true(json_object_get(sub, "fault")));
	assert_null(json_object_get(json_object_get(sub, "http"), "response"));
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(sub, "annotations"), "retries")), 1);
	ex = json_array_get(json_object_get(json_object_get(sub, "cause"), "exceptions"), 0);
	assert_string_equal(json_string_value(json_object_get(ex, "message")),
	                    "Couldn't connect to server");
	assert_int_equal(strlen(json_string_value(json_object_get(ex, "id"))), 16);
	json_decref(j);
}

static void
test_status_flags(void **state)
{
	static const struct {
		int status;
		int error, throttle, fault;
	} cases[] = {{200, 0, 0, 0}, {404, 1, 0, 0}, {429, 1, 1, 0}, {503, 0, 0, 1}};
	struct fixture f;
	struct xray_datagram dg[2];
	size_t count, i;
	unsigned int how;
	json_t *j;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fixture_init(&f);
		f.r.call = NULL;
		f.r.status = cases[i].status;
		assert_int_equal(xray_documents(&f.r, 64000, out, dg, &count, &how),
		                 XRAY_DOCUMENTS_OK);
		j = parse_datagram(&dg[0]);
		assert_int_equal(json_is_true(json_object_get(j, "error")), cases[i].error);
		assert_int_equal(json_is_true(json_object_get(j, "throttle")), cases[i].throttle);
		assert_int_equal(json_is_true(json_object_get(j, "fault")), cases[i].fault);
		assert_null(json_object_get(j, "subsegments"));
		json_decref(j);
	}
}

static void
test_split_then_trim_then_refuse(void **state)
{
	struct fixture f;
	struct xray_datagram dg[2];
	char long_agent[3000];
	size_t count, whole;
	unsigned int how;
	json_t *j;

	(void)state;
	fixture_init(&f);
	assert_int_equal(xray_documents(&f.r, 64000, out, dg, &count, &how), XRAY_DOCUMENTS_OK);
	whole = dg[0].len;
	/* One byte short of the whole document: the subsegment goes on its own. */
	assert_int_equal(xray_documents(&f.r, whole - 1, out, dg, &count, &how), XRAY_DOCUMENTS_OK);
	assert_int_equal(count, 2);
	assert_int_equal(how, XRAY_SPLIT);
	assert_true(dg[0].len < whole && dg[1].len < whole);
	j = parse_datagram(&dg[1]);
	assert_string_equal(json_string_value(json_object_get(j, "type")), "subsegment");
	assert_string_equal(json_string_value(json_object_get(j, "parent_id")), f.trace.span_id);
	assert_string_equal(json_string_value(json_object_get(j, "trace_id")),
	                    "1-5759e988-bd862e3fe1be46a994272793");
	json_decref(j);
	j = parse_datagram(&dg[0]);
	assert_null(json_object_get(j, "subsegments"));
	json_decref(j);
	/* A long user agent (bytes outside ASCII too) is cut to fit. */
	memset(long_agent, 'a', sizeof(long_agent) - 1);
	long_agent[sizeof(long_agent) - 1] = '\0';
	long_agent[10] = (char)0xff;
	f.r.user_agent = long_agent;
	assert_int_equal(xray_documents(&f.r, 1200, out, dg, &count, &how), XRAY_DOCUMENTS_OK);
	assert_int_equal(how, XRAY_SPLIT | XRAY_TRIMMED);
	j = parse_datagram(&dg[0]);
	assert_int_equal(
	    strlen(json_string_value(json_object_get(
	        json_object_get(json_object_get(j, "http"), "request"), "user_agent"))),
	    XRAY_TRIMMED_STRING_MAX);
	assert_int_equal(
	    json_string_value(json_object_get(
	        json_object_get(json_object_get(j, "http"), "request"), "user_agent"))[10],
	    '?');
	assert_true(dg[0].len <= 1200 && dg[1].len <= 1200);
	json_decref(j);
	/* Too small for even the trimmed segment: nothing. */
	assert_int_equal(xray_documents(&f.r, 300, out, dg, &count, &how),
	                 XRAY_DOCUMENTS_TOO_LARGE);
	assert_int_equal(count, 0);
}

/* What string() makes of one byte, once the JSON escape is undone. */
static char
kept_byte(unsigned char c)
{
	return c < 0x20 || c >= 0x7f ? '?' : (char)c;
}

/*
 * Every byte that string() changes or escapes, at every offset of strings
 * long enough to cross the 16-byte blocks it copies at once: the parsed value
 * is the string with each byte kept or made '?'. The request id is the
 * document's last string, so with out exactly the document's size (an
 * allocation of its own, for the sanitizers) its worst case does not fit and
 * the exact count of escapes is taken.
 */
static void
test_strings_kept_at_every_offset(void **state)
{
	static const unsigned char special[] = {0x01, 0x1f, '"', '\\', 0x7f, 0x80, 0xff, ' ', '~'};
	struct fixture f;
	struct xray_datagram dg[2];
	char id[48], expected[48], *exact;
	size_t len, at, k, count, whole;
	unsigned int how;
	json_t *j;

	(void)state;
	fixture_init(&f);
	f.r.call = NULL;
	for (len = 1; len < sizeof(id); len++)
		for (at = 0; at < len; at++)
			for (k = 0; k < sizeof(special); k++) {
				memset(id, 'a', len);
				id[len] = '\0';
				id[at] = (char)special[k];
				id[len - 1 - at / 2] = (char)special[(k + 3) % sizeof(special)];
				for (count = 0; count < len; count++)
					expected[count] = kept_byte((unsigned char)id[count]);
				expected[len] = '\0';
				f.r.request_id = id;
				assert_int_equal(xray_documents(&f.r, 64000, out, dg, &count, &how),
				                 XRAY_DOCUMENTS_OK);
				j = parse_datagram(&dg[0]);
				assert_string_equal(
				    json_string_value(json_object_get(
				        json_object_get(j, "annotations"), "request_id")),
				    expected);
				json_decref(j);
				whole = dg[0].len;
				exact = malloc(whole);
				assert_non_null(exact);
				assert_int_equal(xray_document_whole(&f.r, whole, exact), whole);
				assert_memory_equal(exact, dg[0].data, whole);
				assert_int_equal(xray_document_whole(&f.r, whole - 1, exact), 0);
				free(exact);
			}
}

/* Numbers at each width the two-digit writer steps through, and times to the microsecond. */
static void
test_numbers_in_decimal(void **state)
{
	static const size_t sizes[] = {0, 7, 9, 10, 42, 99, 100, 101, 999, 1000, 65535, 1234567890};
	struct fixture f;
	struct xray_datagram dg[2];
	char want[64];
	size_t i, count;
	unsigned int how;

	(void)state;
	fixture_init(&f);
	f.r.call = NULL;
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		f.r.bytes = sizes[i];
		assert_int_equal(xray_documents(&f.r, 64000, out, dg, &count, &how),
		                 XRAY_DOCUMENTS_OK);
		snprintf(want, sizeof(want), "\"content_length\":%zu}", sizes[i]);
		assert_non_null(memmem(dg[0].data, dg[0].len, want, strlen(want)));
	}
	f.r.start_s = 1764500000.000001;
	f.r.end_s = 1764500001.09;
	assert_int_equal(xray_documents(&f.r, 64000, out, dg, &count, &how), XRAY_DOCUMENTS_OK);
	assert_non_null(memmem(dg[0].data, dg[0].len, "\"start_time\":1764500000.000001,",
	                       strlen("\"start_time\":1764500000.000001,")));
	assert_non_null(memmem(dg[0].data, dg[0].len, "\"end_time\":1764500001.090000,",
	                       strlen("\"end_time\":1764500001.090000,")));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_whole_segment_with_subsegment),
	    cmocka_unit_test(test_failed_call_is_a_fault_with_its_cause),
	    cmocka_unit_test(test_status_flags),
	    cmocka_unit_test(test_split_then_trim_then_refuse),
	    cmocka_unit_test(test_strings_kept_at_every_offset),
	    cmocka_unit_test(test_numbers_in_decimal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
