/* A small blocking HTTP/1.0 client over one socket, plain or TLS, with an overall deadline. */
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

/* One connection: a socket and, over TLS, its session. */
struct link {
	int fd;
	gnutls_session_t tls; /* NULL for plain HTTP */
	long long deadline;   /* in clock_ms() time */
};

/* Waits until fd is ready for events or the deadline passes; returns 1 when ready. */
static int
wait_for(const struct link *l, short events)
{
	struct pollfd p = {.fd = l->fd, .events = events};
	long long left = l->deadline - clock_ms();

	return left > 0 && poll(&p, 1, (int)left) == 1;
}

/* Waits for what the TLS session is blocked on: reading or writing. */
static int
tls_wait(const struct link *l)
{
	return wait_for(l, gnutls_record_get_direction(l->tls) ? POLLOUT : POLLIN);
}

/* Starts TLS on the connected socket; the server is not verified (it is our own, on loopback). */
static int
tls_open(struct link *l, gnutls_certificate_credentials_t creds)
{
	int rc;

	if (gnutls_init(&l->tls, GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL) < 0) {
		l->tls = NULL;
		return -1;
	}
	if (gnutls_set_default_priority(l->tls) < 0 ||
	    gnutls_credentials_set(l->tls, GNUTLS_CRD_CERTIFICATE, creds) < 0)
		return -1;
	gnutls_transport_set_int(l->tls, l->fd);
	do
		rc = gnutls_handshake(l->tls);
	while (rc < 0 && !gnutls_error_is_fatal(rc) && tls_wait(l));
	return rc < 0 ? -1 : 0;
}

static int
send_all(const struct link *l, const char *data, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if (l->tls != NULL)
			n = gnutls_record_send(l->tls, data, len);
		else
			n = send(l->fd, data, len, MSG_NOSIGNAL);
		if (n > 0) {
			data += n;
			len -= (size_t)n;
		} else if (!(l->tls != NULL
		                 ? (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) && tls_wait(l)
		                 : n < 0 && errno == EAGAIN && wait_for(l, POLLOUT))) {
			return -1;
		}
	}
	return 0;
}

/* Reads until the server closes (HTTP/1.0 without keep-alive), the deadline or the limit. */
static void
receive_all(const struct link *l, struct buffer *answer)
{
	char chunk[4096];
	ssize_t n;

	for (;;) {
		if (l->tls != NULL) {
			n = gnutls_record_recv(l->tls, chunk, sizeof(chunk));
			if ((n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) && tls_wait(l))
				continue;
		} else {
			n = wait_for(l, POLLIN) ? recv(l->fd, chunk, sizeof(chunk), 0) : -1;
		}
		if (n <= 0 || buffer_append(answer, chunk, (size_t)n) != BUFFER_OK)
			return;
	}
}

int
http_get(const char *ipv4, unsigned int port, const char *path, int timeout_ms,
         gnutls_certificate_credentials_t tls, size_t max_bytes, char **body)
{
	struct sockaddr_in addr = {.sin_family = AF_INET};
	struct link l = {.fd = -1, .tls = NULL, .deadline = clock_ms() + timeout_ms};
	struct buffer answer;
	char request[1024], *head_end, *text;
	int status = -1, len;

	buffer_init(&answer, max_bytes + HEAD_MAX);
	len = snprintf(request, sizeof(request), "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, ipv4);
	addr.sin_port = htons((uint16_t)port);
	if (len <= 0 || (size_t)len >= sizeof(request) ||
	    inet_pton(AF_INET, ipv4, &addr.sin_addr) != 1)
		goto out;
	l.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l.fd < 0)
		goto out;
	if (connect(l.fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 && errno != EINPROGRESS)
		goto out;
	if (!wait_for(&l, POLLOUT) || (tls != NULL && tls_open(&l, tls) < 0) ||
	    send_all(&l, request, (size_t)len) < 0)
		goto out;
	receive_all(&l, &answer);
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
	if (l.tls != NULL)
		gnutls_deinit(l.tls);
	if (l.fd >= 0)
		close(l.fd);
	buffer_free(&answer);
	return status;
}

int
healthcheck_run(unsigned int port, gnutls_certificate_credentials_t tls)
{
	int status =
	    http_get("127.0.0.1", port, "/health", HEALTHCHECK_TIMEOUT_MS, tls, 1024, NULL);

	fprintf(status == 200 ? stdout : stderr, "healthcheck: %s://127.0.0.1:%u %s (status %d)\n",
	        tls != NULL ? "https" : "http", port, status == 200 ? "healthy" : "unhealthy",
	        status);
	return status == 200 ? 0 : 1;
}
