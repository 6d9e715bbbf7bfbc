/* The listening socket the server threads share, and the descriptors serving needs. */
#include "listener.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "log.h"

/* Descriptors each thread keeps besides its connections (epoll, eventfd, spare, curl's). */
#define FDS_PER_THREAD 8

int
listener_open(unsigned int port)
{
	struct sockaddr_in6 any6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT};
	struct sockaddr_in any4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
	int fd, on = 1, off = 0;

	any6.sin6_port = any4.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0 && (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) < 0 ||
	                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
	                bind(fd, (struct sockaddr *)&any6, sizeof(any6)) < 0)) {
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
		                bind(fd, (struct sockaddr *)&any4, sizeof(any4)) < 0)) {
			close(fd);
			fd = -1;
		}
	}
	if (fd >= 0 && listen(fd, SOMAXCONN) < 0) {
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		log_msg(LOG_ERROR, "cannot listen on port %u: %s", port, strerror(errno));
	return fd;
}

void
listener_reserve_descriptors(unsigned int connection_limit, unsigned int threads)
{
	rlim_t need = (rlim_t)connection_limit * 2 + (rlim_t)threads * FDS_PER_THREAD + 64;
	struct rlimit lim;

	if (getrlimit(RLIMIT_NOFILE, &lim) < 0 || lim.rlim_cur >= need)
		return;
	lim.rlim_cur = lim.rlim_max == RLIM_INFINITY || lim.rlim_max >= need ? need : lim.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &lim) < 0 || lim.rlim_cur < need)
		log_msg(LOG_WARN,
		        "RLIMIT_NOFILE allows %llu descriptors, fewer than CONNECTION_LIMIT=%u "
		        "needs (%llu): past them new connections are closed at once",
		        (unsigned long long)lim.rlim_cur, connection_limit,
		        (unsigned long long)need);
}
