/* Unit tests for common/linger.c: a refused connection is half-closed, drained, then closed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../../common/linger.h"
#include "../../../common/log.h"

/* Runs the set's part of an event loop once: what is readable is drained. */
static int
run_once(int epoll_fd, struct linger_set *set)
{
	struct epoll_event ev[4];
	int n, i;

	n = epoll_wait(epoll_fd, ev, 4, 100);
	for (i = 0; i < n; i++)
		linger_ready(set, ev[i].data.ptr);
	return n;
}

/* 1 when the peer of the drained socket sees it fully closed (writing fails). */
static int
peer_sees_close(int peer)
{
	return send(peer, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0;
}

static void
test_half_close_then_drain_until_the_client_is_done(void **state)
{
	int epoll_fd = epoll_create1(0), pair[2];
	struct linger_set *set = linger_new(epoll_fd, 4, 60000, 1 << 20);
	char body[4096], c;

	(void)state;
	memset(body, 'b', sizeof(body));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
	assert_int_equal(send(pair[0], "HTTP/1.1 413", 12, 0), 12);
	assert_int_equal(linger_start(set, pair[0]), 0);
	/* The client still sends its body, and is not cut off... */
	assert_int_equal(send(pair[1], body, sizeof(body), 0), (ssize_t)sizeof(body));
	assert_int_equal(run_once(epoll_fd, set), 1);
	assert_false(peer_sees_close(pair[1]));
	/* ...reads the answer and then the end of it... */
	assert_int_equal(recv(pair[1], body, 12, 0), 12);
	assert_memory_equal(body, "HTTP/1.1 413", 12);
	assert_int_equal(recv(pair[1], &c, 1, 0), 0);
	/* ...and when it is done, the socket is closed. */
	shutdown(pair[1], SHUT_WR);
	assert_int_equal(run_once(epoll_fd, set), 1);
	assert_true(peer_sees_close(pair[1]));
	close(pair[1]);
	linger_free(set);
	close(epoll_fd);
}

static void
test_bounded_by_bytes_time_and_count(void **state)
{
	int epoll_fd = epoll_create1(0), pair[3][2], i;
	struct linger_set *bytes = linger_new(epoll_fd, 4, 60000, 100);
	struct linger_set *timed = linger_new(epoll_fd, 1, 0, 1 << 20);
	char body[200] = {0};

	(void)state;
	for (i = 0; i < 3; i++)
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, pair[i]), 0);
	assert_int_equal(linger_start(bytes, pair[0][0]), 0);
	assert_int_equal(send(pair[0][1], body, sizeof(body), 0), (ssize_t)sizeof(body));
	assert_int_equal(run_once(epoll_fd, bytes), 1);
	assert_true(peer_sees_close(pair[0][1]));
	/* With room for one, a second closes the first; with no time, expiry closes the rest. */
	assert_int_equal(linger_start(timed, pair[1][0]), 0);
	assert_int_equal(linger_start(timed, pair[2][0]), 0);
	assert_true(peer_sees_close(pair[1][1]));
	assert_false(peer_sees_close(pair[2][1]));
	assert_int_equal(linger_expire(timed), -1);
	assert_true(peer_sees_close(pair[2][1]));
	for (i = 0; i < 3; i++)
		close(pair[i][1]);
	linger_free(bytes);
	linger_free(timed);
	close(epoll_fd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_half_close_then_drain_until_the_client_is_done),
	    cmocka_unit_test(test_bounded_by_bytes_time_and_count),
	};

	log_init("test", LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
