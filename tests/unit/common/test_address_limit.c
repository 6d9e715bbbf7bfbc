/* Unit tests for common/address_limit.c: the limit per address, exemptions, IPv4 in IPv6. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "../../../common/address_limit.h"
#include "../../../common/log.h"

static struct sockaddr_in
v4(const char *text)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};

	assert_int_equal(inet_pton(AF_INET, text, &sa.sin_addr), 1);
	return sa;
}

static struct sockaddr_in6
v6(const char *text)
{
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6};

	assert_int_equal(inet_pton(AF_INET6, text, &sa.sin6_addr), 1);
	return sa;
}

static void
test_limit_per_address_and_release(void **state)
{
	struct address_limit *l = address_limit_new(2, "", 8);
	struct sockaddr_in a = v4("10.0.0.1"), b = v4("10.0.0.2");
	struct sockaddr_in6 a_mapped = v6("::ffff:10.0.0.1");
	struct address_key k[4];

	(void)state;
	assert_non_null(l);
	assert_int_equal(address_limit_take(l, (struct sockaddr *)&a, &k[0]), 0);
	/* The same client over an IPv6 socket is the same address. */
	assert_int_equal(address_limit_take(l, (struct sockaddr *)&a_mapped, &k[1]), 0);
	assert_int_equal(address_limit_take(l, (struct sockaddr *)&a, &k[2]), -1);
	assert_int_equal(address_limit_take(l, (struct sockaddr *)&b, &k[3]), 0);
	address_limit_release(l, &k[0]);
	assert_int_equal(address_limit_take(l, (struct sockaddr *)&a, &k[0]), 0);
	address_limit_release(l, &k[0]);
	address_limit_release(l, &k[1]);
	address_limit_release(l, &k[3]);
	address_limit_free(l);
}

static void
test_exempt_addresses_and_no_limit(void **state)
{
	struct address_limit *l = address_limit_new(1, "127.0.0.1,::1", 8);
	struct address_limit *off = address_limit_new(0, "", 8);
	struct sockaddr_in local = v4("127.0.0.1"), other = v4("127.0.0.2");
	struct sockaddr_in6 local6 = v6("::1");
	struct address_key k[3];
	int i;

	(void)state;
	assert_non_null(l);
	assert_non_null(off);
	for (i = 0; i < 3; i++) {
		assert_int_equal(address_limit_take(l, (struct sockaddr *)&local, &k[0]), 0);
		assert_int_equal(address_limit_take(l, (struct sockaddr *)&local6, &k[1]), 0);
		assert_int_equal(address_limit_take(off, (struct sockaddr *)&other, &k[2]), 0);
	}
	assert_int_equal(address_limit_take(l, (struct sockaddr *)&other, &k[2]), 0);
	assert_int_equal(address_limit_take(l, (struct sockaddr *)&other, &k[0]), -1);
	address_limit_release(l, &k[2]);
	address_limit_free(l);
	address_limit_free(off);
}

static void
test_address_lists(void **state)
{
	(void)state;
	assert_int_equal(address_list_check(""), 0);
	assert_int_equal(address_list_check("127.0.0.1,::1"), 0);
	assert_int_equal(address_list_check("10.0.0.1"), 0);
	assert_int_equal(address_list_check("localhost"), -1);
	assert_int_equal(address_list_check("10.0.0.1,,10.0.0.2"), -1);
	assert_int_equal(address_list_check("10.0.0.0/8"), -1);
	assert_null(address_limit_new(1, "not-an-address", 8));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_limit_per_address_and_release),
	    cmocka_unit_test(test_exempt_addresses_and_no_limit),
	    cmocka_unit_test(test_address_lists),
	};

	log_init("test", LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
