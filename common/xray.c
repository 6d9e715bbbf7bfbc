/* X-Ray tracing: settings, the sampling decision, and segments sent over UDP. */
#include "xray.h"

#include <errno.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "random.h"
#include "xray_sampler.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103 /* linux/udp.h, Linux 4.18 */
#endif

/*
 * A server thread holds datagrams of at most BATCH_DOCUMENT_MAX bytes, as
 * many as fit in one send once each is padded to the longest: at most
 * BATCH_SEND_MAX bytes (a UDP datagram's limit, which bounds the whole send).
 */
#define BATCH_DOCUMENT_MAX 2048
#define BATCH_SEND_MAX     XRAY_DATAGRAM_LIMIT
#define BATCH_MAX          (BATCH_SEND_MAX / BATCH_DOCUMENT_MAX)

/*
 * White space that pads a datagram of a batch, as long as the longest padding
 * can be; filled by xray_new(), before any server thread reads it.
 */
static char padding[BATCH_DOCUMENT_MAX];

/* The longest AWS_XRAY_DAEMON_ADDRESS host, as DNS limits names. */
#define HOST_MAX 255

/* XRAY_SAMPLING_SKIP_PATHS: at most this many paths, each at most SKIP_PATH_LEN bytes. */
#define SKIP_PATHS_MAX 16
#define SKIP_PATH_LEN  128

/* Why a segment was not sent; the label of xray_segments_dropped_total. */
enum drop_reason {
	DROP_SOCKET_BUFFER_FULL, /* the socket's send buffer was full: sending would block */
	DROP_REFUSED,            /* a datagram found no listener (ICMP port unreachable) */
	DROP_TOO_LARGE,          /* over XRAY_SEGMENT_MAX_BYTES even split and trimmed */
	DROP_SEND_ERROR,         /* any other error from send() */
	DROP_REASONS,
};

static const char *const drop_label[DROP_REASONS] = {
    "socket_buffer_full",
    "refused",
    "too_large",
    "send_error",
};

struct xray {
	struct xray_config cfg;
	const char *origin;
	struct xray_sampler sampler;
	struct metrics *registry; /* borrowed */
	int fd;                   /* connected UDP socket to the daemon */
	atomic_ullong sent;       /* datagrams sent */
	atomic_ullong dropped[DROP_REASONS];
	atomic_ullong split;         /* requests whose subsegment went in its own datagram */
	atomic_ullong trimmed;       /* requests whose long strings were cut */
	atomic_ullong decided[2][2]; /* [by the incoming header][sampled] */
	atomic_ullong batches;       /* sends that carried more than one datagram */
};

/* X-Ray's segment names: letters, digits, white space and _ . : / % & # = + \ - @. */
static int
name_is_valid(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > XRAY_NAME_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == ' ' ||
		      strchr("_.:/%&#=+\\-@", s[i]) != NULL))
			return 0;
	return 1;
}

/*
 * Splits AWS_XRAY_DAEMON_ADDRESS into host and port: "host:port",
 * "[v6]:port", or the SDKs' "tcp:host:port udp:host:port" (the udp one is
 * taken). Returns 0, or -1 when it has none of these forms.
 */
static int
split_address(const char *address, char host[HOST_MAX + 1], char port[8])
{
	const char *a = address, *udp, *end, *colon;
	size_t n;

	udp = strstr(address, "udp:");
	if (udp != NULL)
		a = udp + 4;
	else if (strncmp(address, "tcp:", 4) == 0)
		return -1;
	end = a + strcspn(a, " ");
	if (*a == '[') {
		colon = memchr(a, ']', (size_t)(end - a));
		if (colon == NULL || colon + 1 >= end || colon[1] != ':')
			return -1;
		n = (size_t)(colon - a - 1);
		a++;
		colon++;
	} else {
		for (colon = end - 1; colon > a && *colon != ':'; colon--)
			;
		if (colon <= a || memchr(a, ':', (size_t)(colon - a)) != NULL)
			return -1;
		n = (size_t)(colon - a);
	}
	if (n == 0 || n > HOST_MAX || end - colon - 1 < 1 || end - colon - 1 > 5 ||
	    strspn(colon + 1, "0123456789") < (size_t)(end - colon - 1))
		return -1;
	memcpy(host, a, n);
	host[n] = '\0';
	memcpy(port, colon + 1, (size_t)(end - colon - 1));
	port[end - colon - 1] = '\0';
	return atoi(port) >= 1 && atoi(port) <= 65535 ? 0 : -1;
}

/* 1 when list is up to SKIP_PATHS_MAX comma-separated paths, each "/" and printable ASCII. */
static int
skip_paths_valid(const char *list)
{
	size_t n, i, count = 0;
	const char *p = list;

	if (*p == '\0')
		return 1;
	for (;;) {
		n = strcspn(p, ",");
		if (n == 0 || n > SKIP_PATH_LEN || p[0] != '/' || ++count > SKIP_PATHS_MAX)
			return 0;
		for (i = 0; i < n; i++)
			if (p[i] <= ' ' || p[i] >= 0x7f)
				return 0;
		if (p[n] == '\0')
			return 1;
		p += n + 1;
	}
}

/* 1 when path is one of list's comma-separated paths. */
static int
path_listed(const char *list, const char *path)
{
	size_t n = strlen(path), m;
	const char *p = list;

	while (*p != '\0') {
		m = strcspn(p, ",");
		if (m == n && memcmp(p, path, n) == 0)
			return 1;
		p += m + (p[m] == ',');
	}
	return 0;
}

int
xray_config_load(struct xray_config *c, const char *service)
{
	static const char *const address_var[] = {"AWS_XRAY_DAEMON_ADDRESS", NULL};
	static const char *const name_var[] = {"AWS_XRAY_TRACING_NAME", NULL};
	char host[HOST_MAX + 1], port[8];

	CONFIG_INTEGER_OR_RETURN("XRAY_TRACING", 0, 0, 1, c->enabled);
	CONFIG_INTEGER_OR_RETURN("XRAY_SAMPLING_RESERVOIR", 1, 0, 1000000, c->reservoir_per_s);
	CONFIG_INTEGER_OR_RETURN("XRAY_SEGMENT_MAX_BYTES", 64000, 512, 65000, c->segment_max_bytes);
	CONFIG_INTEGER_OR_RETURN("XRAY_BATCH_HOLD_MS", 100, 0, 1000, c->batch_hold_ms);
	if (config_number("XRAY_SAMPLING_RATE", 0.05, 0, 1, &c->rate) < 0)
		return -1;
	c->daemon_address = config_string(address_var, "127.0.0.1:2000");
	if (split_address(c->daemon_address, host, port) < 0) {
		fprintf(stderr,
		        "%s: AWS_XRAY_DAEMON_ADDRESS=%s is invalid: expected host:port or "
		        "tcp:host:port udp:host:port\n",
		        log_service_name(), c->daemon_address);
		return -1;
	}
	/* Set and empty skips nothing, so this one is not read with config_string(). */
	c->skip_paths = getenv("XRAY_SAMPLING_SKIP_PATHS");
	if (c->skip_paths == NULL)
		c->skip_paths = "/health,/metrics";
	if (!skip_paths_valid(c->skip_paths)) {
		fprintf(
		    stderr,
		    "%s: XRAY_SAMPLING_SKIP_PATHS=%s is invalid: expected up to %d paths such as "
		    "/health, separated by commas, each at most %d bytes\n",
		    log_service_name(), c->skip_paths, SKIP_PATHS_MAX, SKIP_PATH_LEN);
		return -1;
	}
	c->name = config_string(name_var, service);
	if (!name_is_valid(c->name)) {
		fprintf(stderr,
		        "%s: AWS_XRAY_TRACING_NAME=%s is invalid: expected 1-%d letters, digits, "
		        "spaces or _ . : / %% & # = + \\ - @\n",
		        log_service_name(), c->name, XRAY_NAME_MAX);
		return -1;
	}
	return 0;
}

/*
 * A non-blocking UDP socket connected to the daemon's address, so that every
 * send is one call and a refusal reported by ICMP shows up as an error.
 * Returns it, or -1 after logging why.
 */
static int
daemon_socket(const char *address)
{
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV},
	                *list = NULL;
	char host[HOST_MAX + 1], port[8];
	int fd = -1, rc;

	if (split_address(address, host, port) < 0)
		return -1; /* xray_config_load() has checked it */
	rc = getaddrinfo(host, port, &hints, &list);
	if (rc != 0) {
		log_msg(LOG_ERROR, "AWS_XRAY_DAEMON_ADDRESS=%s: cannot resolve %s: %s", address,
		        host, gai_strerror(rc));
		return -1;
	}
	fd = socket(list->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, list->ai_addr, list->ai_addrlen) < 0) {
		log_msg(LOG_ERROR, "AWS_XRAY_DAEMON_ADDRESS=%s: %s", address, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	freeaddrinfo(list);
	return fd;
}

/* The tracing figures for /metrics. */
static void
render_xray(struct buffer *out, void *arg)
{
	struct xray *x = arg;
	int i;

	metrics_printf(out,
	               "# HELP xray_segments_sent_total X-Ray segment datagrams sent.\n"
	               "# TYPE xray_segments_sent_total counter\n"
	               "xray_segments_sent_total %llu\n",
	               atomic_load(&x->sent));
	metrics_printf(out, "# HELP xray_segments_dropped_total Segments of sampled requests not "
	                    "sent, by reason.\n"
	                    "# TYPE xray_segments_dropped_total counter\n");
	for (i = 0; i < DROP_REASONS; i++)
		metrics_printf(out, "xray_segments_dropped_total{reason=\"%s\"} %llu\n",
		               drop_label[i], atomic_load(&x->dropped[i]));
	metrics_printf(out,
	               "# HELP xray_segment_batches_total Sends that carried several segment "
	               "datagrams at once (UDP segmentation offload).\n"
	               "# TYPE xray_segment_batches_total counter\n"
	               "xray_segment_batches_total %llu\n"
	               "# HELP xray_segments_split_total Sampled requests whose subsegment was "
	               "sent in a datagram of its own to fit XRAY_SEGMENT_MAX_BYTES.\n"
	               "# TYPE xray_segments_split_total counter\n"
	               "xray_segments_split_total %llu\n"
	               "# HELP xray_segments_trimmed_total Sampled requests whose long strings "
	               "were cut to fit XRAY_SEGMENT_MAX_BYTES.\n"
	               "# TYPE xray_segments_trimmed_total counter\n"
	               "xray_segments_trimmed_total %llu\n",
	               atomic_load(&x->batches), atomic_load(&x->split), atomic_load(&x->trimmed));
	metrics_printf(out,
	               "# HELP xray_sampling_decisions_total Requests by sampling decision and "
	               "by who made it (the request's trace header, or the sampling rule).\n"
	               "# TYPE xray_sampling_decisions_total counter\n"
	               "xray_sampling_decisions_total{by=\"rule\",sampled=\"false\"} %llu\n"
	               "xray_sampling_decisions_total{by=\"rule\",sampled=\"true\"} %llu\n"
	               "xray_sampling_decisions_total{by=\"header\",sampled=\"false\"} %llu\n"
	               "xray_sampling_decisions_total{by=\"header\",sampled=\"true\"} %llu\n",
	               atomic_load(&x->decided[0][0]), atomic_load(&x->decided[0][1]),
	               atomic_load(&x->decided[1][0]), atomic_load(&x->decided[1][1]));
}

struct xray *
xray_new(const struct xray_config *c, struct metrics *registry)
{
	struct xray *x = calloc(1, sizeof(*x));
	const char *ecs = getenv("ECS_CONTAINER_METADATA_URI_V4");

	if (x == NULL) {
		log_msg(LOG_ERROR, "out of memory starting X-Ray tracing");
		return NULL;
	}
	memset(padding, ' ', sizeof(padding));
	x->cfg = *c;
	x->origin = ecs != NULL && *ecs != '\0' ? "AWS::ECS::Container" : NULL;
	x->registry = registry;
	xray_sampler_init(&x->sampler, c->reservoir_per_s, c->rate);
	x->fd = daemon_socket(c->daemon_address);
	if (x->fd < 0 || metrics_register(registry, render_xray, NULL, x) < 0) {
		if (x->fd >= 0)
			close(x->fd);
		free(x);
		return NULL;
	}
	log_msg(LOG_INFO, "X-Ray tracing on: segments named %s to %s, sampling %u/s then %g",
	        c->name, c->daemon_address, c->reservoir_per_s, c->rate);
	return x;
}

void
xray_free(struct xray *x)
{
	if (x == NULL)
		return;
	metrics_unregister(x->registry, x);
	close(x->fd);
	free(x);
}

void
xray_decide(struct xray *x, struct trace *t, const char *path)
{
	if (!t->decided)
		t->sampled = !path_listed(x->cfg.skip_paths, path) &&
		                     xray_sample(&x->sampler, clock_seconds(),
		                                 random_uniform(random_thread()))
		                 ? '1'
		                 : '0';
	atomic_fetch_add_explicit(&x->decided[t->decided][t->sampled == '1'], 1,
	                          memory_order_relaxed);
}

/* Counts a segment that was not sent. */
static void
drop(struct xray *x, enum drop_reason why)
{
	atomic_fetch_add_explicit(&x->dropped[why], 1, memory_order_relaxed);
}

/*
 * Sends m (len bytes in all, carrying datagrams datagrams) without waiting;
 * what stops it is counted, once per datagram. Returns 0, or -1 when the
 * kernel refused the message itself (EINVAL, EIO: a batch it cannot segment).
 */
static int
send_out(struct xray *x, const struct msghdr *m, size_t len, unsigned int datagrams)
{
	ssize_t n = sendmsg(x->fd, m, MSG_DONTWAIT | MSG_NOSIGNAL);
	enum drop_reason why;
	unsigned int i;

	/*
	 * ECONNREFUSED reports an earlier datagram that found no listener (ICMP port
	 * unreachable); this one was not sent, and the error is now cleared: send it
	 * once more, so a daemon that has just (re)started loses nothing of it.
	 */
	if (n < 0 && errno == ECONNREFUSED) {
		drop(x, DROP_REFUSED);
		n = sendmsg(x->fd, m, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	if (n == (ssize_t)len) {
		atomic_fetch_add_explicit(&x->sent, datagrams, memory_order_relaxed);
		return 0;
	}
	if (n < 0 && datagrams > 1 && (errno == EINVAL || errno == EIO))
		return -1;
	if (n >= 0 || errno == EMSGSIZE)
		why = DROP_TOO_LARGE;
	else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
		why = DROP_SOCKET_BUFFER_FULL;
	else if (errno == ECONNREFUSED)
		why = DROP_REFUSED;
	else
		why = DROP_SEND_ERROR;
	for (i = 0; i < datagrams; i++)
		drop(x, why);
	return 0;
}

/* Sends one datagram. */
static void
send_datagram(struct xray *x, const char *data, size_t len)
{
	struct iovec v = {.iov_base = (void *)data, .iov_len = len};
	struct msghdr m = {.msg_iov = &v, .msg_iovlen = 1};

	(void)send_out(x, &m, len, 1);
}

/*
 * The segments a server thread holds until its loop is about to wait
 * (xray_flush()): one UDP send each costs several times what writing the
 * document does, so they leave together, in one send that UDP segmentation
 * offload (Linux 4.18) cuts into the same datagrams. Each document is written
 * straight into the batch, right after the one before.
 */
struct batch {
	int on;
	size_t count;
	size_t used;    /* bytes of data written */
	double first_s; /* clock_seconds() when the first was added */
	size_t len[BATCH_MAX];
	char data[BATCH_MAX * BATCH_DOCUMENT_MAX];
};

static _Thread_local struct batch batch;

void
xray_batch_start(void)
{
	batch.on = 1;
}

int
xray_may_hold(const struct xray *x)
{
	return batch.count > 0 && x->cfg.batch_hold_ms > 0 &&
	       clock_seconds() - batch.first_s < x->cfg.batch_hold_ms / 1e3;
}

/*
 * Sends the held documents in one message of equal-sized datagrams, each but
 * the last padded with spaces to the longest (white space after a JSON text is
 * still that text); segmentation offload needs equal sizes. The padding is a
 * piece of the message of its own, so no document is moved. Where the kernel
 * cannot cut the message (an old kernel, a path MTU below the size), they go
 * one by one.
 */
void
xray_flush(struct xray *x)
{
	char control[CMSG_SPACE(sizeof(uint16_t))] = {0};
	struct iovec v[2 * BATCH_MAX];
	struct msghdr m = {.msg_iov = v, .msg_control = control, .msg_controllen = sizeof(control)};
	struct cmsghdr *c;
	size_t i, at, size = 0, total = 0;
	uint16_t segment;

	if (batch.count == 0)
		return;
	if (batch.count == 1) {
		send_datagram(x, batch.data, batch.len[0]);
		batch.count = 0;
		batch.used = 0;
		return;
	}
	for (i = 0; i < batch.count; i++)
		if (batch.len[i] > size)
			size = batch.len[i];
	for (i = 0, at = 0; i < batch.count; at += batch.len[i], i++) {
		v[m.msg_iovlen++] = (struct iovec){batch.data + at, batch.len[i]};
		total += batch.len[i];
		if (i + 1 < batch.count && batch.len[i] < size) {
			v[m.msg_iovlen++] = (struct iovec){(void *)padding, size - batch.len[i]};
			total += size - batch.len[i];
		}
	}
	segment = (uint16_t)size;
	c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_UDP;
	c->cmsg_type = UDP_SEGMENT;
	c->cmsg_len = CMSG_LEN(sizeof(segment));
	memcpy(CMSG_DATA(c), &segment, sizeof(segment));
	if (send_out(x, &m, total, (unsigned int)batch.count) == 0)
		atomic_fetch_add_explicit(&x->batches, 1, memory_order_relaxed);
	else /* Not cut: one send each. */
		for (i = 0, at = 0; i < batch.count; at += batch.len[i], i++)
			send_datagram(x, batch.data + at, batch.len[i]);
	batch.count = 0;
	batch.used = 0;
}

/* Room for the next document (BATCH_DOCUMENT_MAX bytes); a full batch is sent first. */
static char *
batch_slot(struct xray *x)
{
	if (batch.count == BATCH_MAX)
		xray_flush(x);
	return batch.data + batch.used;
}

/* Adds the len bytes just written at batch_slot() to the batch. */
static void
batch_add(size_t len)
{
	if (batch.count == 0)
		batch.first_s = clock_seconds();
	batch.len[batch.count++] = len;
	batch.used += len;
}

/* Holds one datagram for xray_flush() on a server thread, or sends it at once. */
static void
hold_or_send(struct xray *x, const char *data, size_t len)
{
	if (!batch.on || len > BATCH_DOCUMENT_MAX) {
		send_datagram(x, data, len);
		return;
	}
	memcpy(batch_slot(x), data, len);
	batch_add(len);
}

void
xray_record(struct xray *x, struct xray_request *r)
{
	/* On the stack: only the bytes written are touched, and nothing is allocated. */
	char out[2 * XRAY_DATAGRAM_LIMIT];
	struct xray_datagram dg[2];
	size_t count = 0, i, len;
	unsigned int how = 0;

	r->name = x->cfg.name;
	r->origin = x->origin;
	/* The usual document, whole and small, is written straight into the batch. */
	if (batch.on) {
		len = xray_document_whole(r,
		                          x->cfg.segment_max_bytes < BATCH_DOCUMENT_MAX
		                              ? x->cfg.segment_max_bytes
		                              : BATCH_DOCUMENT_MAX,
		                          batch_slot(x));
		if (len > 0) {
			batch_add(len);
			return;
		}
	}
	if (xray_documents(r, x->cfg.segment_max_bytes, out, dg, &count, &how) !=
	    XRAY_DOCUMENTS_OK) {
		drop(x, DROP_TOO_LARGE);
		return;
	}
	if (how & XRAY_SPLIT)
		atomic_fetch_add_explicit(&x->split, 1, memory_order_relaxed);
	if (how & XRAY_TRIMMED)
		atomic_fetch_add_explicit(&x->trimmed, 1, memory_order_relaxed);
	for (i = 0; i < count; i++)
		hold_or_send(x, dg[i].data, dg[i].len);
}
