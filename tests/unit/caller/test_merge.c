/* Unit tests for caller/merge.c: the GET / document, byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../../caller/merge.h"

/* Joins the pieces merge_parts() gives into one string; the caller frees it. */
static char *
merged(const char *items, struct upstream_result *r)
{
	struct http_part parts[MERGE_PARTS];
	char *owned = NULL, *text;
	size_t i, len = 0;

	assert_int_equal(merge_parts(items, strlen(items), r, parts, &owned), 0);
	assert_null(r->body);
	text = calloc(1, 4096);
	assert_non_null(text);
	for (i = 0; i < MERGE_PARTS; i++) {
		memcpy(text + len, parts[i].base, parts[i].len);
		len += parts[i].len;
	}
	free(owned);
	return text;
}

static void
test_ok_splices_stored_data_unchanged(void **state)
{
	static const char answer[] = "{\"stored_data\": [{\"b\":1} , {\"a\":2}] }";
	struct upstream_result r;
	char err[64], *text;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.body = strdup(answer);
	r.body_len = strlen(answer);
	assert_int_equal(
	    json_scan_member(r.body, r.body_len, "stored_data", &r.stored_data, err, sizeof(err)),
	    1);
	r.ok = 1;
	text = merged("{\"x\":1}", &r);
	assert_string_equal(text, "{\"caller_service_data\":[{\"x\":1}],\"responder_service_data\":"
	                          "[{\"b\":1} , {\"a\":2}]}");
	free(text);
}

static void
test_failure_is_escaped_error_object(void **state)
{
	struct upstream_result r;
	char *text;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.body = strdup("<html>garbage</html>");
	r.body_len = strlen(r.body);
	strcpy(r.reason, "invalid \"JSON\"\n");
	text = merged("", &r);
	assert_string_equal(
	    text, "{\"caller_service_data\":[],\"responder_service_data\":"
	          "{\"error\":\"Failed to reach Service B: invalid \\\"JSON\\\"\\u000a\"}}");
	free(text);
}

static void
test_response_size_counts_every_part(void **state)
{
	struct upstream_result r;
	struct http_part parts[MERGE_PARTS];
	char *owned = NULL;
	size_t i, size = 0;

	(void)state;
	memset(&r, 0, sizeof(r));
	strcpy(r.reason, "HTTP 503");
	assert_int_equal(merge_parts("{}", 2, &r, parts, &owned), 0);
	for (i = 0; i < MERGE_PARTS; i++)
		size += parts[i].len;
	assert_int_equal(size, strlen("{\"caller_service_data\":[{}],\"responder_service_data\":"
	                              "{\"error\":\"Failed to reach Service B: HTTP 503\"}}"));
	free(owned);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ok_splices_stored_data_unchanged),
	    cmocka_unit_test(test_failure_is_escaped_error_object),
	    cmocka_unit_test(test_response_size_counts_every_part),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
