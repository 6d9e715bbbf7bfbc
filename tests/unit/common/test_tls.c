/* Unit tests for common/tls.c: where PEM text comes from, its limits, certificate expiry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../../common/tls.h"

/* Two self-signed certificates made with openssl for these tests; only their expiry matters. */
static const char cert_a[] = /* notAfter 2036-11-21, Unix time 2110860070 */
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBeDCCAR2gAwIBAgIUOaR3yQf83Mqjz7HnNfs7F8Gds9QwCgYIKoZIzj0EAwIw\n"
    "ETEPMA0GA1UEAwwGdW5pdCBhMB4XDTI2MTEyNDA2MDExMFoXDTM2MTEyMTA2MDEx\n"
    "MFowETEPMA0GA1UEAwwGdW5pdCBhMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n"
    "XUN6F0DnAL8M/LcHl8dFp9OIR18Vu0GPzgUBenOcpE9eACMkB23fkM6T4CAvnxqB\n"
    "IBWt2ib/WIIS5iqt+bOUcaNTMFEwHQYDVR0OBBYEFBNaOuDZL8EGPDkCt0T7xDp4\n"
    "YCJLMB8GA1UdIwQYMBaAFBNaOuDZL8EGPDkCt0T7xDp4YCJLMA8GA1UdEwEB/wQF\n"
    "MAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIhAOfOFYX4q72qg2IWc025xrU6d9laPTsO\n"
    "lJCV1uiRmGvSAiEAwu7qWEoSkDtU5eH9aBxB7NVKRM6jucnxrKhGXUSYZlc=\n"
    "-----END CERTIFICATE-----\n";
static const char cert_b[] = /* notAfter 2027-03-04, Unix time 1804140070 */
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBdzCCAR2gAwIBAgIUPRXDfnybM50giD//mqdS3TrnmWAwCgYIKoZIzj0EAwIw\n"
    "ETEPMA0GA1UEAwwGdW5pdCBiMB4XDTI2MTEyNDA2MDExMFoXDTI3MDMwNDA2MDEx\n"
    "MFowETEPMA0GA1UEAwwGdW5pdCBiMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n"
    "8V58Xbc0t6QDDZpMGmMzwQdRHsqNmPvu3XpJO+BZTLXyBVGz+5lzl3bHJ4HqWI/5\n"
    "w9pykgIb1JzU8DWmXfJrhqNTMFEwHQYDVR0OBBYEFGiCIv9kJVoT9EXVxFCiBSbw\n"
    "WIlkMB8GA1UdIwQYMBaAFGiCIv9kJVoT9EXVxFCiBSbwWIlkMA8GA1UdEwEB/wQF\n"
    "MAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhAIuwULm6EaCIIoH70dvXqYF1HQGbzJ9u\n"
    "dCX9OSYgcA6UAiAddaLDXClvTLO2KQ1CMTW28pVth+OFHAHeOqFO8YIZOw==\n"
    "-----END CERTIFICATE-----\n";

static char path[32];

static void
file_write(const char *text, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static int
setup(void **state)
{
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/test_tls_XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	unsetenv("TEST_CERT_FILE");
	unsetenv("TEST_CERT_PEM");
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	unlink(path);
	return 0;
}

static void
test_unset_is_not_an_error(void **state)
{
	struct tls_pem pem;
	char err[ERROR_MAX];

	(void)state;
	assert_false(tls_pem_is_set("TEST_CERT_FILE"));
	assert_int_equal(tls_pem_read("TEST_CERT_FILE", &pem, err, sizeof(err)), 0);
	assert_null(pem.text);
	setenv("TEST_CERT_FILE", "", 1);
	assert_false(tls_pem_is_set("TEST_CERT_FILE"));
}

static void
test_file_and_twin_give_the_same_text(void **state)
{
	struct tls_pem pem;
	char err[ERROR_MAX];

	(void)state;
	file_write(cert_a, strlen(cert_a));
	setenv("TEST_CERT_FILE", path, 1);
	assert_true(tls_pem_is_set("TEST_CERT_FILE"));
	assert_int_equal(tls_pem_read("TEST_CERT_FILE", &pem, err, sizeof(err)), 0);
	assert_string_equal(pem.text, cert_a);
	assert_int_equal(pem.len, strlen(cert_a));
	assert_string_equal(pem.setting, "TEST_CERT_FILE");
	tls_pem_free(&pem);
	unsetenv("TEST_CERT_FILE");
	setenv("TEST_CERT_PEM", cert_b, 1);
	assert_true(tls_pem_is_set("TEST_CERT_FILE"));
	assert_int_equal(tls_pem_read("TEST_CERT_FILE", &pem, err, sizeof(err)), 0);
	assert_string_equal(pem.text, cert_b);
	assert_string_equal(pem.setting, "TEST_CERT_FILE");
	tls_pem_free(&pem);
}

static void
test_both_twins_set_is_refused(void **state)
{
	struct tls_pem pem;
	char err[ERROR_MAX];

	(void)state;
	setenv("TEST_CERT_FILE", path, 1);
	setenv("TEST_CERT_PEM", cert_a, 1);
	assert_int_equal(tls_pem_read("TEST_CERT_FILE", &pem, err, sizeof(err)), -1);
	assert_null(pem.text);
	assert_string_equal(err, "TEST_CERT_FILE and TEST_CERT_PEM are both set: set one");
}

static void
test_missing_file_names_setting_and_path(void **state)
{
	struct tls_pem pem;
	char err[ERROR_MAX], expected[256];

	(void)state;
	setenv("TEST_CERT_FILE", "/nonexistent/cert.pem", 1);
	assert_int_equal(tls_pem_read("TEST_CERT_FILE", &pem, err, sizeof(err)), -1);
	snprintf(expected, sizeof(expected),
	         "TEST_CERT_FILE=/nonexistent/cert.pem cannot be read: No such file or directory");
	assert_string_equal(err, expected);
}

static void
test_file_over_the_limit_is_refused(void **state)
{
	struct tls_pem pem;
	char err[ERROR_MAX];
	char *big = malloc(TLS_PEM_MAX_BYTES + 1);

	(void)state;
	assert_non_null(big);
	memset(big, 'A', TLS_PEM_MAX_BYTES);
	file_write(big, TLS_PEM_MAX_BYTES);
	setenv("TEST_CERT_FILE", path, 1);
	assert_int_equal(tls_pem_read("TEST_CERT_FILE", &pem, err, sizeof(err)), 0);
	assert_int_equal(pem.len, TLS_PEM_MAX_BYTES);
	tls_pem_free(&pem);
	file_write(big, TLS_PEM_MAX_BYTES + 1);
	assert_int_equal(tls_pem_read("TEST_CERT_FILE", &pem, err, sizeof(err)), -1);
	assert_string_equal(err, "TEST_CERT_FILE is larger than 1 MiB");
	free(big);
}

static void
test_expiry_is_the_earliest(void **state)
{
	char both[4096], err[ERROR_MAX];
	struct tls_pem pem = {"TEST_CERT_FILE", (char *)cert_a, strlen(cert_a)};
	time_t t = 0;

	(void)state;
	assert_int_equal(tls_pem_expiry(&pem, &t, err, sizeof(err)), 0);
	assert_int_equal(t, 2110860070);
	snprintf(both, sizeof(both), "%s%s", cert_a, cert_b);
	pem.text = both;
	pem.len = strlen(both);
	assert_int_equal(tls_pem_expiry(&pem, &t, err, sizeof(err)), 0);
	assert_int_equal(t, 1804140070);
}

static void
test_expiry_refuses_text_without_certificate(void **state)
{
	static const char *const bad[] = {"", "garbage", "-----BEGIN CERTIFICATE-----\nAAAA\n"};
	struct tls_pem pem = {"TEST_CERT_FILE", NULL, 0};
	char err[ERROR_MAX];
	time_t t;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pem.text = (char *)bad[i];
		pem.len = strlen(bad[i]);
		assert_int_equal(tls_pem_expiry(&pem, &t, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "TEST_CERT_FILE holds no PEM certificate"));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_unset_is_not_an_error, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_and_twin_give_the_same_text, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_both_twins_set_is_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_file_names_setting_and_path, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_file_over_the_limit_is_refused, setup, teardown),
	    cmocka_unit_test(test_expiry_is_the_earliest),
	    cmocka_unit_test(test_expiry_refuses_text_without_certificate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
