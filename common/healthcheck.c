/* A minimal HTTP/1.0 probe of the daemon's own /health, bounded in time. */
#include "healthcheck.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long
ms_left(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* Waits until fd is ready for events or the deadline passes; returns 1 when ready. */
static int
wait_for(int fd, short events, const struct timespec *deadline)
{
	struct pollfd p = {.fd = fd, .events = events};
	long left = ms_left(deadline);

	return left > 0 && poll(&p, 1, (int)left) == 1;
}

int
healthcheck_run(unsigned int port)
{
	static const char request[] = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
	struct sockaddr_in addr = {.sin_family = AF_INET};
	struct timespec deadline;
	char answer[64];
	size_t got = 0;
	ssize_t n;
	int fd, rc = 1;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += HEALTHCHECK_TIMEOUT_MS / 1000;
	deadline.tv_nsec += (HEALTHCHECK_TIMEOUT_MS % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	addr.sin_port = htons((uint16_t)port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto out;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 && errno != EINPROGRESS)
		goto out;
	if (!wait_for(fd, POLLOUT, &deadline))
		goto out;
	if (send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(request) - 1)
		goto out;
	/* The status line is all that matters: "HTTP/1.x 200 ". */
	while (got < 12 && wait_for(fd, POLLIN, &deadline)) {
		n = recv(fd, answer + got, sizeof(answer) - 1 - got, 0);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	answer[got] = '\0';
	if (got >= 12 && strncmp(answer, "HTTP/1.", 7) == 0 && strncmp(answer + 8, " 200", 4) == 0)
		rc = 0;
out:
	if (fd >= 0)
		close(fd);
	fprintf(rc == 0 ? stdout : stderr, "healthcheck: port %u %s\n", port,
	        rc == 0 ? "healthy" : "unhealthy");
	return rc;
}
