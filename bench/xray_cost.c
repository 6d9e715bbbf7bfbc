/*
 * What one traced request's X-Ray segment costs a server thread, apart from
 * the noise of a whole daemon under wrk: xray_record() and xray_flush() of
 * the daemons' own code, in a loop, sending to a bound UDP socket nobody reads
 * (as bench.py's X-Ray rows do). Prints the microseconds per request for the
 * document alone, and written and sent in batches of 1, 4, 16 and 31 (the
 * largest batch one send carries); with a batch size after the count, only
 * that one (to profile it).
 *
 *   make && cc -O2 -std=c11 -D_GNU_SOURCE -I. -o /tmp/xray_cost bench/xray_cost.c \
 *       build/obj/common/[a-z]*.o $(pkg-config --libs libmicrohttpd jansson gnutls) -lm -pthread
 *   /tmp/xray_cost [requests [batch]]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/xray.h"

/* A responder's GET /data, as trace_request() describes it. */
static void
request_init(struct xray_request *r, struct trace *t)
{
	trace_begin(t, NULL, NULL);
	*r = (struct xray_request){
	    .name = "responder",
	    .trace = t,
	    .method = "GET",
	    .url = "http://127.0.0.1:5301/data",
	    .client_ip = "127.0.0.1",
	    .status = 200,
	    .bytes = 540,
	    .request_id = "responder-3f9c1a2b-0000000000001234",
	};
}

/* Microseconds per request: its document only (batch 0), or written and sent in batches. */
static double
per_request_us(struct xray *x, size_t batch, size_t requests)
{
	static char out[2 * XRAY_DATAGRAM_LIMIT];
	struct xray_datagram dg[2];
	struct xray_request r;
	struct trace t;
	size_t i, count;
	unsigned int how;
	double start;

	request_init(&r, &t);
	start = clock_seconds();
	for (i = 0; i < requests; i++) {
		r.start_s = 1764500000.0 + (double)i * 1e-5;
		r.end_s = r.start_s + 1e-4;
		if (batch == 0) {
			if (xray_documents(&r, 64000, out, dg, &count, &how) != XRAY_DOCUMENTS_OK)
				return -1;
			continue;
		}
		xray_record(x, &r);
		if ((i + 1) % batch == 0)
			xray_flush(x);
	}
	xray_flush(x);
	return (clock_seconds() - start) / (double)requests * 1e6;
}

int
main(int argc, char **argv)
{
	static const size_t batches[] = {0, 1, 4, 16, 31};
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	size_t requests = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000, i;
	size_t only = argc > 2 ? strtoul(argv[2], NULL, 10) : 0;
	struct xray_config c;
	struct metrics *registry;
	struct xray *x;
	char address[32];
	int sink;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sink = socket(AF_INET, SOCK_DGRAM, 0);
	if (sink < 0 || bind(sink, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(sink, (struct sockaddr *)&a, &len) < 0 || requests == 0) {
		perror("xray_cost: sink");
		return 1;
	}
	snprintf(address, sizeof(address), "127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
	setenv("XRAY_TRACING", "1", 1);
	setenv("AWS_XRAY_DAEMON_ADDRESS", address, 1);
	setenv("LOG_LEVEL", "warn", 1);
	registry = metrics_new();
	if (registry == NULL || xray_config_load(&c, "responder") < 0 ||
	    (x = xray_new(&c, registry)) == NULL)
		return 1;
	/* The batch a server thread keeps; each batch size sends itself when it is due. */
	xray_batch_start();
	for (i = 0; i < sizeof(batches) / sizeof(batches[0]); i++) {
		if (only > 0 && batches[i] != only)
			continue;
		if (batches[i] == 0)
			printf("document only: %.3f us a request\n",
			       per_request_us(x, 0, requests));
		else
			printf("written and sent, batches of %zu: %.3f us a request\n", batches[i],
			       per_request_us(x, batches[i], requests));
	}
	xray_free(x);
	metrics_free(registry);
	close(sink);
	return 0;
}
