/* Unit tests for common/response.c: sizes, and that the pieces are released exactly once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <microhttpd.h>

#include "../../../common/http_answer.h"
#include "../../../common/response.h"

static int released;

static void
count_release(void *arg)
{
	assert_ptr_equal(arg, &released);
	released++;
}

/* A small body is copied at once: the pieces are released before the call returns. */
static void
test_small_body_releases_pieces_at_once(void **state)
{
	struct http_part parts[3] = {{"[", 1}, {"{\"a\":1}", 7}, {"]", 1}};
	struct MHD_Response *r;
	size_t size = 0;

	(void)state;
	released = 0;
	r = response_from_parts(parts, 3, count_release, &released, &size);
	assert_non_null(r);
	assert_int_equal(size, 9);
	assert_int_equal(released, 1);
	MHD_destroy_response(r);
	assert_int_equal(released, 1);
}

/* A large body is sent from the pieces: they are released when the answer is destroyed. */
static void
test_large_body_keeps_pieces_until_destroyed(void **state)
{
	size_t big = 200 * 1024, size = 0;
	char *middle = malloc(big);
	struct http_part parts[3] = {{"[", 1}, {NULL, 0}, {"]", 1}};
	struct MHD_Response *r;

	(void)state;
	assert_non_null(middle);
	memset(middle, ' ', big);
	parts[1].base = middle;
	parts[1].len = big;
	released = 0;
	r = response_from_parts(parts, 3, count_release, &released, &size);
	assert_non_null(r);
	assert_int_equal(size, big + 2);
	assert_int_equal(released, 0);
	MHD_destroy_response(r);
	assert_int_equal(released, 1);
	free(middle);
}

/* No pieces at all is an empty body, and done may be NULL. */
static void
test_empty_body_without_release(void **state)
{
	struct MHD_Response *r;
	size_t size = 1;

	(void)state;
	r = response_from_parts(NULL, 0, NULL, NULL, &size);
	assert_non_null(r);
	assert_int_equal(size, 0);
	MHD_destroy_response(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_small_body_releases_pieces_at_once),
	    cmocka_unit_test(test_large_body_keeps_pieces_until_destroyed),
	    cmocka_unit_test(test_empty_body_without_release),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
