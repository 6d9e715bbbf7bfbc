/* A small blocking HTTP/1.0 client over one socket, with an overall deadline. */
#include "http_get.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buffer.h"
#include "clock.h"

/* Well inside ECS's shortest health check timeout, 2 s. */
#define HEALTHCHECK_TIMEOUT_MS 1500
#define HEAD_MAX               8192

/* Waits until fd is ready for events or the deadline (in clock_ms() time) passes; returns 1 when
 * ready. */
static int
wait_for(int fd, short events, long long deadline)
{
	struct pollfd p = {.fd = fd, .events = events};
	long long left = deadline - clock_ms();

	return left > 0 && poll(&p, 1, (int)left) == 1;
}

int
http_get(const char *ipv4, unsigned int port, const char *path, int timeout_ms, size_t max_bytes,
         char **body)
{
	struct sockaddr_in addr = {.sin_family = AF_INET};
	long long deadline = clock_ms() + timeout_ms;
	struct buffer answer;
	char request[1024], chunk[4096], *head_end, *text;
	int fd = -1, status = -1, len;
	ssize_t n;

	buffer_init(&answer, max_bytes + HEAD_MAX);
	len = snprintf(request, sizeof(request), "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, ipv4);
	addr.sin_port = htons((uint16_t)port);
	if (len <= 0 || (size_t)len >= sizeof(request) ||
	    inet_pton(AF_INET, ipv4, &addr.sin_addr) != 1)
		goto out;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto out;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 && errno != EINPROGRESS)
		goto out;
	if (!wait_for(fd, POLLOUT, deadline) ||
	    send(fd, request, (size_t)len, MSG_NOSIGNAL) != (ssize_t)len)
		goto out;
	/* HTTP/1.0 without keep-alive: the answer ends when the server closes. */
	while (wait_for(fd, POLLIN, deadline)) {
		n = recv(fd, chunk, sizeof(chunk), 0);
		if (n <= 0)
			break;
		if (buffer_append(&answer, chunk, (size_t)n) != BUFFER_OK)
			break;
	}
	if (buffer_append(&answer, "", 1) != BUFFER_OK ||
	    sscanf(answer.data, "HTTP/1.%*[01] %3d", &status) != 1)
		goto out;
	if (body != NULL) {
		head_end = strstr(answer.data, "\r\n\r\n");
		text = strdup(head_end != NULL ? head_end + 4 : "");
		if (text == NULL) {
			status = -1;
			goto out;
		}
		*body = text;
	}
out:
	if (fd >= 0)
		close(fd);
	buffer_free(&answer);
	return status;
}

int
healthcheck_run(unsigned int port)
{
	int status = http_get("127.0.0.1", port, "/health", HEALTHCHECK_TIMEOUT_MS, 1024, NULL);

	fprintf(status == 200 ? stdout : stderr, "healthcheck: port %u %s (status %d)\n", port,
	        status == 200 ? "healthy" : "unhealthy", status);
	return status == 200 ? 0 : 1;
}
