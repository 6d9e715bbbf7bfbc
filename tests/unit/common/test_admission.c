/* Unit tests for common/admission.c: who gives way when full, slow readers cut, the read deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../../common/admission.h"
#include "../../../common/log.h"

#define CONNS 4

/* Connections as socket pairs: the table holds [0], the test watches [1]. */
static int pairs[CONNS][2];

static void
pairs_open(void)
{
	int i;

	for (i = 0; i < CONNS; i++)
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pairs[i]), 0);
}

static void
pairs_close(void)
{
	int i;

	for (i = 0; i < CONNS; i++) {
		close(pairs[i][0]);
		close(pairs[i][1]);
	}
}

/* 1 when the table shut connection i down (its peer reads end of stream). */
static int
was_cut(int i)
{
	char c;

	return recv(pairs[i][1], &c, 1, MSG_DONTWAIT) == 0;
}

static struct admission *
table(unsigned int connections, size_t held_bytes, long long read_timeout_ms,
      struct admission_stats *stats)
{
	struct admission_limits limits = {connections, held_bytes, read_timeout_ms};

	return admission_new(&limits, stats);
}

static void
test_longest_waiting_gives_way_and_busy_never_does(void **state)
{
	struct admission_stats stats = {0};
	struct admission *a = table(3, 1000, 60000, &stats);
	struct admitted *c[CONNS];
	int i;

	(void)state;
	pairs_open();
	for (i = 0; i < 3; i++) {
		assert_int_equal(admission_make_room(a), 1);
		c[i] = admission_opened(a, pairs[i][0]);
	}
	/* c[0] is busy: c[1] has waited longest among the rest. */
	admission_busy(a, c[0]);
	assert_int_equal(admission_make_room(a), 1);
	assert_true(was_cut(1));
	assert_false(was_cut(0));
	assert_false(was_cut(2));
	assert_int_equal(atomic_load(&stats.closed[CLOSE_EVICTED_IDLE]), 1);
	c[3] = admission_opened(a, pairs[3][0]);
	/* Answered, c[2] waits again from now: c[3] has waited longer. */
	admission_busy(a, c[2]);
	admission_done(a, c[2]);
	assert_int_equal(admission_make_room(a), 1);
	assert_true(was_cut(3));
	assert_false(was_cut(2));
	/* Only busy connections left with room for none: nothing gives way. */
	admission_closed(a, c[1]);
	admission_closed(a, c[3]);
	c[1] = admission_opened(a, pairs[1][0]);
	admission_busy(a, c[1]);
	admission_busy(a, c[2]);
	assert_int_equal(admission_make_room(a), 0);
	assert_int_equal(atomic_load(&stats.open), 3);
	for (i = 0; i < 3; i++)
		admission_closed(a, c[i]);
	assert_int_equal(atomic_load(&stats.open), 0);
	admission_free(a);
	pairs_close();
}

static void
test_slowest_readers_cut_never_the_newest(void **state)
{
	struct admission_stats stats = {0};
	struct admission *a = table(CONNS, 1000, 60000, &stats);
	struct admitted *c[CONNS];
	int i;

	(void)state;
	pairs_open();
	for (i = 0; i < CONNS; i++)
		c[i] = admission_opened(a, pairs[i][0]);
	admission_hold(a, c[0], 400);
	admission_hold(a, c[1], 400);
	assert_int_equal(atomic_load(&stats.held), 800);
	/* 1,200 > 1,000: the answer held longest (c[0]) is cut. */
	admission_hold(a, c[2], 400);
	assert_true(was_cut(0));
	assert_false(was_cut(1));
	assert_int_equal(atomic_load(&stats.held), 800);
	/* c[1] was sent: it no longer counts. */
	admission_done(a, c[1]);
	assert_int_equal(atomic_load(&stats.held), 400);
	/* An answer larger than the whole budget cuts the others but is itself kept. */
	admission_hold(a, c[3], 5000);
	assert_true(was_cut(2));
	assert_false(was_cut(3));
	assert_int_equal(atomic_load(&stats.held), 5000);
	assert_int_equal(atomic_load(&stats.closed[CLOSE_SLOW_READER]), 2);
	for (i = 0; i < CONNS; i++)
		admission_closed(a, c[i]);
	assert_int_equal(atomic_load(&stats.held), 0);
	admission_free(a);
	pairs_close();
}

static void
test_read_deadline_closes_only_waiting(void **state)
{
	struct admission_stats stats = {0};
	struct admission *a = table(CONNS, 1000, 0, &stats);
	struct admission *patient = table(CONNS, 1000, 60000, &stats);
	struct admitted *c[3];

	(void)state;
	pairs_open();
	c[0] = admission_opened(a, pairs[0][0]);
	c[1] = admission_opened(a, pairs[1][0]);
	admission_busy(a, c[1]);
	assert_int_equal(admission_expire(a), -1);
	assert_true(was_cut(0));
	assert_false(was_cut(1));
	assert_int_equal(atomic_load(&stats.closed[CLOSE_READ_DEADLINE]), 1);
	c[2] = admission_opened(patient, pairs[2][0]);
	assert_true(admission_expire(patient) > 59000);
	assert_false(was_cut(2));
	admission_closed(a, c[0]);
	admission_closed(a, c[1]);
	admission_closed(patient, c[2]);
	admission_free(a);
	admission_free(patient);
	pairs_close();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_longest_waiting_gives_way_and_busy_never_does),
	    cmocka_unit_test(test_slowest_readers_cut_never_the_newest),
	    cmocka_unit_test(test_read_deadline_closes_only_waiting),
	};

	log_init("test", LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
