/* Unit tests for common/xray.c: a server thread's batch of segments, and how long it holds them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../../common/metrics.h"
#include "../../../common/xray.h"

static const char header[] = XRAY_DAEMON_HEADER;

/* A bound UDP socket standing in for the X-Ray daemon, and a tracer that sends to it. */
struct fixture {
	int daemon;
	struct metrics *registry;
	struct xray *x;
	struct trace trace;
	struct xray_request r;
};

/* Starts the fixture with XRAY_BATCH_HOLD_MS=hold_ms; the caller calls fixture_end(). */
static void
fixture_start(struct fixture *f, const char *hold_ms)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	struct xray_config c;
	char address[32];
	int rcvbuf = 1 << 20;

	memset(f, 0, sizeof(*f));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->daemon = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(f->daemon >= 0);
	assert_int_equal(setsockopt(f->daemon, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
	assert_int_equal(bind(f->daemon, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(f->daemon, (struct sockaddr *)&a, &len), 0);
	snprintf(address, sizeof(address), "127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
	setenv("XRAY_TRACING", "1", 1);
	setenv("XRAY_SAMPLING_RATE", "1", 1);
	setenv("AWS_XRAY_DAEMON_ADDRESS", address, 1);
	setenv("XRAY_BATCH_HOLD_MS", hold_ms, 1);
	assert_int_equal(xray_config_load(&c, "responder"), 0);
	f->registry = metrics_new();
	assert_non_null(f->registry);
	f->x = xray_new(&c, f->registry);
	assert_non_null(f->x);
	trace_begin(&f->trace, NULL, NULL);
	f->r.trace = &f->trace;
	f->r.method = "GET";
	f->r.url = "http://responder:5000/data";
	f->r.client_ip = "10.0.0.7";
	f->r.status = 200;
	f->r.bytes = 42;
	f->r.request_id = "r-1";
	f->r.start_s = 1764500000.125;
	f->r.end_s = 1764500000.25;
}

static void
fixture_end(struct fixture *f)
{
	xray_free(f->x);
	metrics_free(f->registry);
	close(f->daemon);
}

/* The next datagram the daemon got, its document parsed; NULL when none is waiting. */
static json_t *
next_document(struct fixture *f)
{
	static char buf[65536];
	ssize_t n = recv(f->daemon, buf, sizeof(buf), MSG_DONTWAIT);
	json_error_t err;
	json_t *j;

	if (n < 0)
		return NULL;
	assert_true((size_t)n > sizeof(header) - 1);
	assert_memory_equal(buf, header, sizeof(header) - 1);
	/* A batched datagram may end in spaces, which are still the same JSON text. */
	j = json_loadb(buf + sizeof(header) - 1, (size_t)n - (sizeof(header) - 1), 0, &err);
	assert_non_null(j);
	return j;
}

static void
sleep_ms(long ms)
{
	struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	nanosleep(&t, NULL);
}

/* A held segment may wait while it is younger than XRAY_BATCH_HOLD_MS, then must leave. */
static void
test_holds_for_the_hold_time_at_most(void **state)
{
	struct fixture f;
	json_t *j;

	(void)state;
	fixture_start(&f, "50");
	xray_batch_start();
	assert_false(xray_may_hold(f.x)); /* nothing held */
	xray_record(f.x, &f.r);
	assert_true(xray_may_hold(f.x));
	assert_null(next_document(&f)); /* held, not sent */
	sleep_ms(60);
	assert_false(xray_may_hold(f.x));
	xray_flush(f.x);
	assert_false(xray_may_hold(f.x));
	j = next_document(&f);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "name")), "responder");
	json_decref(j);
	assert_null(next_document(&f));
	fixture_end(&f);
}

/* XRAY_BATCH_HOLD_MS=0: what a turn made leaves at the end of that turn. */
static void
test_hold_zero_never_holds(void **state)
{
	struct fixture f;
	json_t *j;

	(void)state;
	fixture_start(&f, "0");
	xray_batch_start();
	xray_record(f.x, &f.r);
	assert_false(xray_may_hold(f.x));
	xray_flush(f.x);
	j = next_document(&f);
	assert_non_null(j);
	json_decref(j);
	fixture_end(&f);
}

/*
 * More segments than one send carries, of different lengths: the batch sends
 * itself when full, and every segment arrives whole, once, in order.
 */
static void
test_full_batch_sends_every_segment_once(void **state)
{
	static const size_t total = 100;
	struct fixture f;
	char ids[100][24];
	size_t i;
	json_t *j;

	(void)state;
	fixture_start(&f, "1000");
	xray_batch_start();
	for (i = 0; i < total; i++) {
		/* Lengths from 3 to 20 bytes, so the datagrams of a send are padded. */
		snprintf(ids[i], sizeof(ids[i]), "r-%.*zu", (int)(i % 18) + 1, i);
		f.r.request_id = ids[i];
		xray_record(f.x, &f.r);
	}
	xray_flush(f.x);
	for (i = 0; i < total; i++) {
		j = next_document(&f);
		assert_non_null(j);
		assert_string_equal(json_string_value(json_object_get(
		                        json_object_get(j, "annotations"), "request_id")),
		                    ids[i]);
		json_decref(j);
	}
	assert_null(next_document(&f));
	fixture_end(&f);
}

/* An invalid hold time is refused when the settings are read. */
static void
test_hold_setting_bounds(void **state)
{
	struct xray_config c;

	(void)state;
	setenv("XRAY_BATCH_HOLD_MS", "1001", 1);
	assert_int_equal(xray_config_load(&c, "responder"), -1);
	setenv("XRAY_BATCH_HOLD_MS", "-1", 1);
	assert_int_equal(xray_config_load(&c, "responder"), -1);
	setenv("XRAY_BATCH_HOLD_MS", "1000", 1);
	assert_int_equal(xray_config_load(&c, "responder"), 0);
	assert_int_equal(c.batch_hold_ms, 1000);
	unsetenv("XRAY_BATCH_HOLD_MS");
	assert_int_equal(xray_config_load(&c, "responder"), 0);
	assert_int_equal(c.batch_hold_ms, 100);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_holds_for_the_hold_time_at_most),
	    cmocka_unit_test(test_hold_zero_never_holds),
	    cmocka_unit_test(test_full_batch_sends_every_segment_once),
	    cmocka_unit_test(test_hold_setting_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
