/*
 * AWS X-Ray tracing: the sampling decision for each request and its segment
 * documents sent over UDP to the X-Ray daemon (or any collector that speaks
 * its protocol, such as the AWS Distro for OpenTelemetry's awsxray receiver).
 * Service Connect traces nothing, so the daemons do it themselves. Sending
 * never blocks: a datagram that cannot leave at once is dropped and counted.
 */
#ifndef COMMON_XRAY_H
#define COMMON_XRAY_H

#include <stddef.h>

#include "metrics.h"
#include "trace.h"
#include "xray_segment.h"

/* Longest AWS_XRAY_TRACING_NAME, as X-Ray limits segment names. */
#define XRAY_NAME_MAX 200

/* The tracing settings; the README's configuration table documents each one. */
struct xray_config {
	int enabled;                  /* XRAY_TRACING */
	const char *daemon_address;   /* AWS_XRAY_DAEMON_ADDRESS; borrowed from the environment */
	unsigned int reservoir_per_s; /* XRAY_SAMPLING_RESERVOIR */
	double rate;                  /* XRAY_SAMPLING_RATE */
	const char *name;             /* AWS_XRAY_TRACING_NAME, or the service's; borrowed */
	size_t segment_max_bytes;     /* XRAY_SEGMENT_MAX_BYTES: one datagram, header included */
	const char *skip_paths;       /* XRAY_SAMPLING_SKIP_PATHS; borrowed from the environment */
	unsigned int batch_hold_ms;   /* XRAY_BATCH_HOLD_MS */
};

struct xray;

/* Fills c from the environment; returns 0, or -1 after printing what is wrong. */
int xray_config_load(struct xray_config *c, const char *service);

/*
 * Opens the socket towards c's daemon address and registers the tracing
 * figures with registry (borrowed, must outlive the result); c is copied, its
 * strings borrowed. The caller frees the result with xray_free(). NULL after
 * logging why.
 */
struct xray *xray_new(const struct xray_config *c, struct metrics *registry);

/* Unregisters the figures, closes the socket and frees x (NULL is fine). */
void xray_free(struct xray *x);

/*
 * Settles whether the request of t for path is recorded: a decision that came
 * with it is kept; otherwise a path in XRAY_SAMPLING_SKIP_PATHS (health checks,
 * metric scrapes) is not, and the sampling rule decides the rest.
 */
void xray_decide(struct xray *x, struct trace *t, const char *path);

/*
 * Sends the segment of a sampled request (r's name and origin are filled in
 * here), in one or two datagrams; whatever stops it is counted, not retried.
 * Any thread; never blocks. On a thread that called xray_batch_start(), the
 * datagrams wait for its next xray_flush().
 */
void xray_record(struct xray *x, struct xray_request *r);

/* Makes the calling thread hold its segments until xray_flush(): for event loops. */
void xray_batch_start(void);

/*
 * 1 when the segments the calling thread holds may wait for its next turn:
 * it holds some, the first for less than XRAY_BATCH_HOLD_MS. An event loop
 * that has more work ready then does it before xray_flush(), so one send
 * carries more.
 */
int xray_may_hold(const struct xray *x);

/*
 * Sends what the calling thread holds, in one send where the kernel can cut it
 * into datagrams. Call before the thread waits, and before it ends.
 */
void xray_flush(struct xray *x);

#endif
