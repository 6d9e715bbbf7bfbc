/* Unit tests for common/http_rules.c: routes, methods, request ids, content types, client keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "../../../common/http_rules.h"

static void
handler_a(struct http_exchange *ex, void *arg)
{
	(void)ex;
	(void)arg;
}

static void
handler_b(struct http_exchange *ex, void *arg)
{
	(void)ex;
	(void)arg;
}

static const struct http_route routes[] = {
    {.path = "/", .get = handler_a},
    {.path = "/data", .get = handler_a, .post = handler_b},
    {.path = "/upload", .post = handler_b},
};

static void
test_route_found_by_exact_path_only(void **state)
{
	(void)state;
	assert_ptr_equal(http_route_find(routes, 3, "/data"), &routes[1]);
	assert_ptr_equal(http_route_find(routes, 3, "/"), &routes[0]);
	assert_null(http_route_find(routes, 3, "/data/"));
	assert_null(http_route_find(routes, 3, "/DATA"));
	assert_null(http_route_find(routes, 3, "/data%00junk"));
	assert_null(http_route_find(routes, 0, "/"));
}

static void
test_handler_by_method_and_allow_text(void **state)
{
	(void)state;
	assert_ptr_equal(http_route_handler(&routes[1], "GET"), handler_a);
	assert_ptr_equal(http_route_handler(&routes[1], "HEAD"), handler_a);
	assert_ptr_equal(http_route_handler(&routes[1], "POST"), handler_b);
	assert_null(http_route_handler(&routes[1], "DELETE"));
	assert_null(http_route_handler(&routes[1], "get"));
	assert_null(http_route_handler(&routes[0], "POST"));
	assert_null(http_route_handler(&routes[2], "GET"));
	assert_string_equal(http_route_allow(&routes[0]), "GET, HEAD");
	assert_string_equal(http_route_allow(&routes[1]), "GET, HEAD, POST");
	assert_string_equal(http_route_allow(&routes[2]), "POST");
}

static void
test_request_id_plain_and_short_only(void **state)
{
	(void)state;
	assert_true(http_request_id_is_sane("abc-DEF_1.2", 64));
	assert_true(http_request_id_is_sane("1234", 4));
	assert_false(http_request_id_is_sane("12345", 4));
	assert_false(http_request_id_is_sane("", 64));
	assert_false(http_request_id_is_sane(NULL, 64));
	assert_false(http_request_id_is_sane("a b", 64));
	assert_false(http_request_id_is_sane("a\"b", 64));
	assert_false(http_request_id_is_sane("caf\xc3\xa9", 64));
}

static void
test_content_type_json_with_parameters(void **state)
{
	(void)state;
	assert_true(http_content_type_is_json("application/json"));
	assert_true(http_content_type_is_json("Application/JSON; charset=utf-8"));
	assert_true(http_content_type_is_json(" \tapplication/json ;x=y"));
	assert_false(http_content_type_is_json("application/jsonx"));
	assert_false(http_content_type_is_json("text/json"));
	assert_false(http_content_type_is_json("application/json-seq"));
	assert_false(http_content_type_is_json(""));
	assert_false(http_content_type_is_json(NULL));
}

static void
test_client_key_last_forwarded_else_peer(void **state)
{
	struct sockaddr_in v4 = {.sin_family = AF_INET};
	struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
	char key[64];

	(void)state;
	inet_pton(AF_INET, "192.0.2.7", &v4.sin_addr);
	inet_pton(AF_INET6, "2001:db8::9", &v6.sin6_addr);
	http_client_key("198.51.100.1, 203.0.113.5", (struct sockaddr *)&v4, key, sizeof(key));
	assert_string_equal(key, "203.0.113.5");
	http_client_key("203.0.113.6 ", NULL, key, sizeof(key));
	assert_string_equal(key, "203.0.113.6");
	http_client_key(NULL, (struct sockaddr *)&v4, key, sizeof(key));
	assert_string_equal(key, "192.0.2.7");
	http_client_key(NULL, (struct sockaddr *)&v6, key, sizeof(key));
	assert_string_equal(key, "2001:db8::9");
	http_client_key(NULL, NULL, key, sizeof(key));
	assert_string_equal(key, "unknown");
	/* Cut to fit, never overrun: a key too small for the address falls back to a cut "unknown".
	 */
	http_client_key("203.0.113.50", NULL, key, 5);
	assert_string_equal(key, "203.");
	http_client_key(NULL, (struct sockaddr *)&v6, key, 4);
	assert_string_equal(key, "unk");
}

static void
test_copy_bytes_cuts_to_fit_and_ends_with_nul(void **state)
{
	char out[6] = "zzzzz";

	(void)state;
	http_copy_bytes(out, sizeof(out), "abc", 3);
	assert_string_equal(out, "abc");
	http_copy_bytes(out, sizeof(out), "abcdefgh", 8);
	assert_string_equal(out, "abcde");
	http_copy_bytes(out, sizeof(out), "abcdefgh", 2);
	assert_string_equal(out, "ab");
	http_copy_bytes(out, 1, "abc", 3);
	assert_string_equal(out, "");
	http_copy_bytes(out, 0, "xyz", 3); /* no room at all: nothing written */
	assert_string_equal(out, "");
}

static void
test_path_unescape_keeps_percent_00(void **state)
{
	char a[] = "/da%74a", b[] = "/data%00junk", c[] = "/x%2", d[] = "/%zz%41";

	(void)state;
	assert_int_equal(http_path_unescape(a), 5);
	assert_string_equal(a, "/data");
	assert_int_equal(http_path_unescape(b), strlen("/data%00junk"));
	assert_string_equal(b, "/data%00junk");
	http_path_unescape(c);
	assert_string_equal(c, "/x%2");
	http_path_unescape(d);
	assert_string_equal(d, "/%zzA");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_route_found_by_exact_path_only),
	    cmocka_unit_test(test_handler_by_method_and_allow_text),
	    cmocka_unit_test(test_request_id_plain_and_short_only),
	    cmocka_unit_test(test_content_type_json_with_parameters),
	    cmocka_unit_test(test_client_key_last_forwarded_else_peer),
	    cmocka_unit_test(test_copy_bytes_cuts_to_fit_and_ends_with_nul),
	    cmocka_unit_test(test_path_unescape_keeps_percent_00),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
