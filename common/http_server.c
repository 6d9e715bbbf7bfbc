/*
 * libmicrohttpd set up once for both daemons: one event loop per server
 * thread, routing, bodies, answers, logging, drain.
 */
#include "http_server.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "address_limit.h"
#include "app_version.h"
#include "admission.h"
#include "buffer.h"
#include "clock.h"
#include "json_escape.h"
#include "log.h"
#include "http_answer.h"
#include "http_metrics.h"
#include "http_rules.h"
#include "linger.h"
#include "listener.h"
#include "rate_limit.h"
#include "response.h"
#include "served_by.h"
#include "tls_server.h"
#include "trace.h"
#include "xray.h"

#define REQUEST_ID_MAX 64
#define PATH_LOG_MAX   256

/* libmicrohttpd warnings written a second at most. */
#define MHD_LOG_PER_SECOND 10

/*
 * Connections one server thread accepts before it lets libmicrohttpd run, so
 * that a flood of new connections cannot keep it from reading the requests
 * of those it has.
 */
#define ACCEPT_BATCH 64

/* Where shutdown has got to; each server thread follows it from its loop. */
enum phase {
	PHASE_SERVING,
	PHASE_DRAINING, /* threads stop accepting */
	PHASE_ABORTING, /* threads end their loop's work in flight */
	PHASE_STOPPING, /* threads return */
};

/* One server thread: its libmicrohttpd daemon and its event loop. */
struct http_worker {
	struct http_server *server;
	struct MHD_Daemon *daemon;
	pthread_t thread;
	int started;      /* the thread runs and must be joined */
	int epoll_fd;     /* waits on the listener, the daemon, wake_fd, the loop's fd, lingerers */
	int wake_fd;      /* eventfd: the shutdown phase changed */
	int loop_fd;      /* what http_loop.attach asked to wait on, or -1 */
	int daemon_fd;    /* the daemon's own epoll instance */
	int spare_fd;     /* kept open to be given up when descriptors run out; -1 if none */
	void *loop_state; /* what http_loop.attach gave; NULL without a loop */
	enum phase seen;  /* the last phase this thread acted on */
	int resumed;      /* this thread resumed a connection since it last ran the daemon */
	struct admission *admission; /* the connections this thread keeps; owned */
	struct linger_set *linger;   /* sockets drained after a refusal; owned */
	/* The address counted for the connection being handed to libmicrohttpd. */
	struct address_key accepting;
	int accepting_taken; /* on_connection took it over */
};

struct http_server {
	struct http_worker *workers; /* owned */
	unsigned int worker_count;
	const struct http_loop *loop; /* NULL without one; borrowed */
	atomic_int phase;             /* enum phase */
	atomic_uint quiesced;         /* threads that stopped accepting */
	atomic_uint aborted;          /* threads that ended their loop's work */
	const struct http_route *routes;
	size_t route_count;
	const char **route_paths; /* route i's path, for the request metrics; owned */
	size_t body_max_bytes;
	atomic_uint in_flight;             /* exchanges created and not yet completed */
	atomic_ulong next_id;              /* counter part of generated request ids */
	unsigned long id_prefix;           /* random part of generated request ids */
	struct http_metrics *metrics;      /* owned */
	struct rate_limiter *limiter;      /* NULL when RATE_LIMIT_RPS is unset; owned */
	struct address_limit *per_address; /* CONNECTION_LIMIT_PER_ADDRESS; owned */
	struct admission_stats stats;      /* every thread's connections, for /metrics */
	struct tls_server *tls;            /* NULL without TLS; borrowed */
	struct xray *tracer;               /* NULL unless XRAY_TRACING=1; borrowed */
	int listener;                      /* accepted from by every thread; closed at stop */
	char refusal_over_limit[384];      /* the whole answer past CONNECTION_LIMIT */
	char refusal_per_address[384];     /* the whole answer past CONNECTION_LIMIT_PER_ADDRESS */
	int trust_forwarded_for;
	double rate_limit_rps;
};

struct http_exchange {
	struct http_server *server;
	struct http_worker *worker; /* the thread serving it */
	struct MHD_Connection *connection;
	const struct http_route *route;
	http_handler handler; /* set when the request is routed to a handler */
	struct buffer body;
	double started_s; /* clock_seconds() when the request arrived */
	int body_too_large;
	int suspended;
	int refuse_early;              /* answer before reading the body, then close */
	unsigned int retry_after_s;    /* for a 429 */
	struct http_answer answer;     /* set by the handler (response.c), sent by queue_answer() */
	struct connection_state *conn; /* what its connection holds; NULL if untracked */
	struct trace trace;
	struct trace_call call; /* the call it made to another service, when has_call */
	int has_call;
	char method[16];
	char path[PATH_LOG_MAX];
	char request_id[REQUEST_ID_MAX + 1];
};

/* What a connection holds from open to close. */
struct connection_state {
	struct admitted *admitted;     /* its place in the thread's admission table */
	struct address_key address;    /* its place in the per-address count */
	struct tls_credentials *creds; /* the TLS credentials it took; NULL without TLS */
	int refused;                   /* answered before its request was read: drain at close */
	char peer[INET6_ADDRSTRLEN];   /* its address as text, once asked for; "" until then */
};

static void record_request(struct http_exchange *ex);

static void
copy_string(char *dst, size_t size, const char *src)
{
	if (src == NULL)
		src = "";
	http_copy_bytes(dst, size, src, strnlen(src, size));
}

/*
 * Writes a generated request id: the server's random prefix (16 hex digits),
 * then the low 32 bits of its request count (8), without printf, which cost
 * more than the rest of a small answer's headers.
 */
static void
request_id_new(char out[REQUEST_ID_MAX + 1], unsigned long prefix, unsigned long count)
{
	static const char hex[] = "0123456789abcdef";
	int i;

	for (i = 15; i >= 0; i--, prefix >>= 4)
		out[i] = hex[prefix & 0xf];
	for (i = 23; i >= 16; i--, count >>= 4)
		out[i] = hex[count & 0xf];
	out[24] = '\0';
}

/* Creates the state for a new request and gives it its id. */
static struct http_exchange *
exchange_new(struct http_worker *w, struct MHD_Connection *c, const char *url, const char *method)
{
	struct http_exchange *ex = calloc(1, sizeof(*ex));
	struct http_server *s = w->server;
	const union MHD_ConnectionInfo *info;
	const char *id;

	if (ex == NULL)
		return NULL;
	ex->server = s;
	ex->worker = w;
	ex->connection = c;
	ex->started_s = clock_seconds();
	buffer_init(&ex->body, s->body_max_bytes);
	copy_string(ex->method, sizeof(ex->method), method);
	copy_string(ex->path, sizeof(ex->path), url);
	id = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
	if (http_request_id_is_sane(id, REQUEST_ID_MAX))
		copy_string(ex->request_id, sizeof(ex->request_id), id);
	else
		request_id_new(ex->request_id, s->id_prefix, atomic_fetch_add(&s->next_id, 1));
	info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (info != NULL)
		ex->conn = info->socket_context;
	trace_begin(&ex->trace, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "traceparent"),
	            MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Amzn-Trace-Id"));
	if (s->tracer != NULL)
		xray_decide(s->tracer, &ex->trace, ex->path);
	atomic_fetch_add(&s->in_flight, 1);
	return ex;
}

const char *
http_body(const struct http_exchange *ex, size_t *len)
{
	*len = ex->body.len;
	return ex->body.data != NULL ? ex->body.data : "";
}

const char *
http_request_id(const struct http_exchange *ex)
{
	return ex->request_id;
}

void *
http_loop_state(const struct http_exchange *ex)
{
	return ex->worker->loop_state;
}

const struct trace *
http_trace(const struct http_exchange *ex)
{
	return &ex->trace;
}

void
http_trace_call(struct http_exchange *ex, const struct trace_call *call)
{
	ex->call = *call;
	ex->has_call = 1;
}

struct http_answer *
http_exchange_answer(struct http_exchange *ex)
{
	return &ex->answer;
}

void
http_suspend(struct http_exchange *ex)
{
	ex->suspended = 1;
	MHD_suspend_connection(ex->connection);
}

void
http_resume(struct http_exchange *ex)
{
	struct http_worker *w = ex->worker;

	/*
	 * Only the thread serving the request resumes it, so no wake-up crosses
	 * threads: the thread runs its daemon again before it next waits. After
	 * this call the exchange belongs to libmicrohttpd again: touch nothing.
	 */
	assert(ex->suspended); /* only a suspended request is resumed, once */
	MHD_resume_connection(ex->connection);
	w->resumed = 1;
}

/* Sends the answer that was set, adding the headers every answer carries. */
static enum MHD_Result
queue_answer(struct http_exchange *ex)
{
	static const char fallback[] = "{\"error\":\"Internal error: could not build the answer\"}";
	struct MHD_Response *r = ex->answer.response;
	char traceparent[TRACE_HEADER_MAX], amzn[TRACE_HEADER_MAX];
	enum MHD_Result ok;

	if (r == NULL || ex->answer.status == 0) {
		/* Only allocation failures get here: answer from static memory. */
		if (r != NULL)
			MHD_destroy_response(r);
		ex->answer.status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		ex->answer.bytes = sizeof(fallback) - 1;
		r = MHD_create_response_from_buffer(sizeof(fallback) - 1, (void *)fallback,
		                                    MHD_RESPMEM_PERSISTENT);
		if (r == NULL)
			return MHD_NO;
	}
	ex->answer.response = NULL;
	trace_traceparent(&ex->trace, traceparent);
	trace_amzn(&ex->trace, amzn);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	                        ex->answer.content_type != NULL ? ex->answer.content_type
	                                                        : "application/json");
	MHD_add_response_header(r, "X-Request-Id", ex->request_id);
	MHD_add_response_header(r, "X-Served-By", served_by());
	MHD_add_response_header(r, "X-App-Version", app_version());
	if (ex->answer.upstream_served_by[0] != '\0')
		MHD_add_response_header(r, "X-Upstream-Served-By", ex->answer.upstream_served_by);
	if (ex->answer.upstream_version[0] != '\0')
		MHD_add_response_header(r, "X-Upstream-Version", ex->answer.upstream_version);
	MHD_add_response_header(r, "traceparent", traceparent);
	MHD_add_response_header(r, "X-Amzn-Trace-Id", amzn);
	if (ex->answer.status == MHD_HTTP_TOO_MANY_REQUESTS) {
		char seconds[16];

		snprintf(seconds, sizeof(seconds), "%u", ex->retry_after_s);
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, seconds);
	}
	if (ex->answer.status == MHD_HTTP_METHOD_NOT_ALLOWED && ex->route != NULL)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, http_route_allow(ex->route));
	if (atomic_load(&ex->server->phase) != PHASE_SERVING)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	record_request(ex);
	/*
	 * Counted until it is sent: a reader too slow to take it may be cut off for the next.
	 * A cut answer stops counting at once but is freed only when libmicrohttpd closes
	 * its connection: the daemon is run again before the loop receives more answers.
	 */
	if (ex->conn != NULL &&
	    admission_hold(ex->worker->admission, ex->conn->admitted, ex->answer.bytes) > 0)
		ex->worker->resumed = 1;
	ok = MHD_queue_response(ex->connection, ex->answer.status, r);
	MHD_destroy_response(r);
	return ok;
}

/*
 * Writes the key of the client a rate limit counts (http_client_key()), the
 * address traces record; returns 1 when it came from X-Forwarded-For.
 */
static int
client_key(const struct http_exchange *ex, char *key, size_t size)
{
	const union MHD_ConnectionInfo *info;
	const char *xff;

	xff = ex->server->trust_forwarded_for
	          ? MHD_lookup_connection_value(ex->connection, MHD_HEADER_KIND, "X-Forwarded-For")
	          : NULL;
	/* The peer's address is formatted once a connection: a kept-alive client asks again. */
	if (xff == NULL && ex->conn != NULL && ex->conn->peer[0] != '\0') {
		http_copy_bytes(key, size, ex->conn->peer, strlen(ex->conn->peer));
		return 0;
	}
	info = MHD_get_connection_info(ex->connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	http_client_key(xff, info != NULL ? info->client_addr : NULL, key, size);
	if (xff == NULL && ex->conn != NULL)
		http_copy_bytes(ex->conn->peer, sizeof(ex->conn->peer), key, strlen(key));
	return xff != NULL;
}

/* Applies the per-client rate limit; returns 1 when the request may go on. */
static int
rate_limit_allows(struct http_exchange *ex)
{
	char key[64];
	double wait = 0;

	(void)client_key(ex, key, sizeof(key));
	if (rate_limit_take(ex->server->limiter, key, clock_seconds(), &wait))
		return 1;
	ex->retry_after_s = (unsigned int)wait + 1;
	http_reply_error(ex, MHD_HTTP_TOO_MANY_REQUESTS,
	                 "Rate limit exceeded: RATE_LIMIT_RPS allows %g requests a second per "
	                 "client; retry in %u s",
	                 ex->server->rate_limit_rps, ex->retry_after_s);
	return 0;
}

/* Collects the Content-Length values of a request, to spot conflicting ones. */
struct lengths {
	const char *first;
	int conflict;
};

static enum MHD_Result
on_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct lengths *l = cls;

	(void)kind;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) != 0 || value == NULL)
		return MHD_YES;
	if (l->first == NULL)
		l->first = value;
	else if (strcmp(l->first, value) != 0)
		l->conflict = 1;
	return MHD_YES;
}

/* libmicrohttpd's path decoder, replaced by http_path_unescape(). */
static size_t
unescape_path(void *cls, struct MHD_Connection *connection, char *uri)
{
	(void)cls;
	(void)connection;
	return http_path_unescape(uri);
}

/*
 * Decides, from the request line and headers alone, what answers the request:
 * sets ex->handler, or sets an error answer. POST limits are checked here so
 * that a body that cannot be accepted is refused before it is read.
 */
static void
route_request(struct http_exchange *ex, const char *method)
{
	struct http_server *s = ex->server;
	struct lengths lengths = {NULL, 0};
	const char *length;
	char *end;
	unsigned long long declared;

	MHD_get_connection_values(ex->connection, MHD_HEADER_KIND, on_header, &lengths);
	if (lengths.conflict) {
		/* RFC 9112 6.3: conflicting lengths are a request smuggling attempt; refuse and
		 * close. */
		ex->refuse_early = 1;
		http_reply_error(ex, MHD_HTTP_BAD_REQUEST, "Conflicting Content-Length headers");
		return;
	}
	ex->route = http_route_find(s->routes, s->route_count, ex->path);
	if (ex->route == NULL) {
		http_reply_error(ex, MHD_HTTP_NOT_FOUND, "No route for %s %s", ex->method,
		                 ex->path);
		return;
	}
	ex->handler = http_route_handler(ex->route, method);
	if (ex->handler == NULL) {
		http_reply_error(ex, MHD_HTTP_METHOD_NOT_ALLOWED, "Method %s is not allowed on %s",
		                 ex->method, ex->path);
		return;
	}
	if (ex->handler != ex->route->post)
		return;
	if (ex->route->rate_limited && s->limiter != NULL && !rate_limit_allows(ex)) {
		ex->handler = NULL;
		return;
	}
	if (!http_content_type_is_json(MHD_lookup_connection_value(ex->connection, MHD_HEADER_KIND,
	                                                           MHD_HTTP_HEADER_CONTENT_TYPE))) {
		ex->handler = NULL;
		ex->refuse_early = 1;
		http_reply_error(ex, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
		                 "Content-Type must be application/json");
		return;
	}
	length = MHD_lookup_connection_value(ex->connection, MHD_HEADER_KIND,
	                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (length != NULL) {
		declared = strtoull(length, &end, 10);
		if (declared > s->body_max_bytes) {
			ex->handler = NULL;
			ex->refuse_early = 1;
			http_reply_error(ex, MHD_HTTP_CONTENT_TOO_LARGE,
			                 "Request body of %llu bytes exceeds BODY_MAX_BYTES (%zu)",
			                 declared, s->body_max_bytes);
		}
	}
}

/*
 * libmicrohttpd's access handler: called once for the headers, once per body
 * chunk, once at the end of the request, and once more after a resume. The
 * answer is queued at the end of the request, because an answer queued
 * earlier makes libmicrohttpd 0.9.75 close the connection: only a POST that
 * must be refused before its body is read is answered from the first call.
 */
static enum MHD_Result
on_request(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct http_worker *w = cls;
	struct http_server *s = w->server;
	struct http_exchange *ex = *con_cls;

	(void)version;
	if (ex == NULL) {
		ex = exchange_new(w, connection, url, method);
		if (ex == NULL)
			return MHD_NO;
		*con_cls = ex;
		route_request(ex, method);
		if (ex->refuse_early) {
			/* The body is still on its way: it is drained when the connection closes.
			 */
			if (ex->conn != NULL) {
				ex->conn->refused = 1;
				admission_busy(w->admission, ex->conn->admitted);
			}
			return queue_answer(ex);
		}
		return MHD_YES;
	}
	if (ex->suspended) {
		/* Resumed: the answer was set by whoever called http_resume(). */
		ex->suspended = 0;
		return queue_answer(ex);
	}
	if (*upload_data_size > 0) {
		/* Past the limit the rest is read and dropped, so the 413 can still be sent. */
		if (!ex->body_too_large &&
		    buffer_append(&ex->body, upload_data, *upload_data_size) != BUFFER_OK) {
			ex->body_too_large = 1;
			buffer_free(&ex->body);
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	/* The whole request is in: from here on its own deadlines apply, not the read deadline. */
	if (ex->conn != NULL)
		admission_busy(w->admission, ex->conn->admitted);
	if (ex->handler == NULL)
		return queue_answer(ex);
	if (ex->body_too_large) {
		http_reply_error(ex, MHD_HTTP_CONTENT_TOO_LARGE,
		                 "Request body exceeds BODY_MAX_BYTES (%zu)", s->body_max_bytes);
		return queue_answer(ex);
	}
	ex->handler(ex, ex->route->arg);
	return ex->suspended ? MHD_YES : queue_answer(ex);
}

/*
 * Sends the X-Ray segment of a sampled request, ended now after duration_s:
 * what X-Ray shows of it (method, URL, client, answer) and its call.
 */
static void
trace_request(struct http_exchange *ex, double duration_s)
{
	struct MHD_Connection *c = ex->connection;
	const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	char url[sizeof("https://") + 255 + PATH_LOG_MAX], client[INET6_ADDRSTRLEN + 64], *end;
	struct xray_request r = {
	    .version = app_version(),
	    .trace = &ex->trace,
	    .method = ex->method,
	    .url = url,
	    .client_ip = client,
	    .user_agent =
	        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_USER_AGENT),
	    .status = (int)ex->answer.status,
	    .bytes = ex->answer.bytes,
	    .request_id = ex->request_id,
	    .call = ex->has_call ? &ex->call : NULL,
	};

	r.end_s = clock_epoch_seconds();
	r.start_s = r.end_s - duration_s;
	/* scheme://host/path, each piece bounded (the host to 255 bytes, as DNS is): printf is
	 * slow here. */
	if (host == NULL)
		host = "localhost";
	end = ex->server->tls != NULL ? mempcpy(url, "https://", 8) : mempcpy(url, "http://", 7);
	end = mempcpy(end, host, strnlen(host, 255));
	end = mempcpy(end, ex->path, strnlen(ex->path, sizeof(ex->path) - 1));
	*end = '\0';
	r.forwarded = client_key(ex, client, sizeof(client));
	/* An IPv4 client of the dual-stack socket, as X-Ray's console shows addresses. */
	if (strncmp(client, "::ffff:", 7) == 0 && strchr(client, '.') != NULL)
		r.client_ip = client + 7;
	xray_record(ex->server->tracer, &r);
}

/*
 * Logs and counts a request once its answer is known. This happens when the
 * answer is queued, before a byte of it is sent, so a client that has its
 * answer always finds the request already counted in /metrics.
 */
static void
record_request(struct http_exchange *ex)
{
	struct log_request line;

	assert(!ex->answer.queued); /* an answer is logged and counted exactly once */
	ex->answer.queued = 1;
	line.method = ex->method;
	line.path = ex->path;
	line.status = ex->answer.status;
	line.bytes = ex->answer.bytes;
	line.duration_ms = (clock_seconds() - ex->started_s) * 1e3;
	line.request_id = ex->request_id;
	line.trace_id = ex->trace.trace_id;
	line.upstream_served_by = ex->answer.upstream_served_by;
	line.upstream_version = ex->answer.upstream_version;
	log_request(&line);
	http_metrics_count(ex->server->metrics,
	                   ex->route != NULL ? (size_t)(ex->route - ex->server->routes)
	                                     : ex->server->route_count,
	                   ex->method, line.status, line.duration_ms / 1e3);
	if (ex->server->tracer != NULL && ex->trace.sampled == '1')
		trace_request(ex, line.duration_ms / 1e3);
}

/* Called when a request is done, answered or not: frees its state. */
static void
on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
             enum MHD_RequestTerminationCode code)
{
	struct http_worker *w = cls;
	struct http_server *s = w->server;
	struct http_exchange *ex = *con_cls;

	(void)connection;
	(void)code;
	if (ex == NULL)
		return;
	*con_cls = NULL;
	if (ex->conn != NULL)
		admission_done(w->admission, ex->conn->admitted);
	/* A request that ends without an answer (the client went away) is recorded as status 0. */
	if (!ex->answer.queued) {
		ex->answer.status = 0;
		ex->answer.bytes = 0;
		record_request(ex);
	}
	if (ex->answer.response != NULL)
		MHD_destroy_response(ex->answer.response);
	buffer_free(&ex->body);
	free(ex);
	atomic_fetch_sub(&s->in_flight, 1);
}

/*
 * Drains a connection that closes while its client may still be sending: one
 * refused before its request was read, or one with unread bytes waiting (what
 * libmicrohttpd's own 400s leave). Its socket is duplicated, so that
 * libmicrohttpd's close does not reset it, and handed to the lingerers.
 */
static void
linger_if_sending(struct http_worker *w, struct connection_state *state, int fd)
{
	int pending = 0, copy;

	if (w->seen == PHASE_STOPPING || fd < 0)
		return;
	if (!state->refused && (ioctl(fd, FIONREAD, &pending) < 0 || pending == 0))
		return;
	copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (copy < 0 || linger_start(w->linger, copy) < 0)
		return;
	atomic_fetch_add_explicit(&w->server->stats.closed[CLOSE_DRAINED_AFTER_REFUSAL], 1,
	                          memory_order_relaxed);
}

/* Forgets a connection: its admission, its address's count, its TLS credentials. */
static void
connection_state_free(struct http_worker *w, struct connection_state *state)
{
	if (state == NULL)
		return;
	admission_closed(w->admission, state->admitted);
	address_limit_release(w->server->per_address, &state->address);
	tls_server_session_end(state->creds);
	free(state);
}

/*
 * Tracks each connection from open to close: its place in the admission table
 * (which closes it first when the thread runs short, or when it is too slow),
 * its address's count and, with TLS, the credentials its handshake uses. A
 * connection that cannot be tracked is shut down at once rather than served
 * without its deadline or its client verification.
 */
static void
on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
              enum MHD_ConnectionNotificationCode code)
{
	struct http_worker *w = cls;
	struct http_server *s = w->server;
	struct connection_state *state = *socket_context;
	const union MHD_ConnectionInfo *fd, *session;

	fd = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (code != MHD_CONNECTION_NOTIFY_STARTED) {
		if (state != NULL)
			linger_if_sending(w, state, fd != NULL ? fd->connect_fd : -1);
		connection_state_free(w, state);
		*socket_context = NULL;
		return;
	}
	if (fd == NULL)
		return;
	state = calloc(1, sizeof(*state));
	if (state != NULL && s->tls != NULL) {
		session = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
		state->creds =
		    session != NULL ? tls_server_session_start(s->tls, session->tls_session) : NULL;
	}
	if (state != NULL)
		state->admitted = admission_opened(w->admission, fd->connect_fd);
	if (state == NULL || state->admitted == NULL || (s->tls != NULL && state->creds == NULL)) {
		shutdown(fd->connect_fd, SHUT_RDWR);
		connection_state_free(w, state);
		state = NULL;
	} else {
		state->address = w->accepting;
		w->accepting_taken = 1;
	}
	*socket_context = state;
}

/*
 * libmicrohttpd's warnings, at most MHD_LOG_PER_SECOND a second: anyone who
 * can connect can cause one (a refused TLS handshake), and the log is not
 * theirs to fill. The next line written says how many were dropped.
 */
static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	static atomic_llong second;
	static atomic_uint written, dropped;
	long long now = clock_ms() / 1000;
	unsigned int earlier;
	char line[512];
	size_t n;

	(void)cls;
	if (atomic_exchange(&second, now) != now)
		atomic_store(&written, 0);
	if (atomic_fetch_add(&written, 1) >= MHD_LOG_PER_SECOND) {
		atomic_fetch_add(&dropped, 1);
		return;
	}
	/* What libmicrohttpd 0.9.75 says of every failed handshake, whatever failed. */
	if (strcmp(fmt, "Error: received handshake message out of context.\n") == 0)
		snprintf(
		    line, sizeof(line),
		    "TLS handshake failed (not TLS, TLS older than 1.2, or a client certificate "
		    "missing or refused: see tls_client_certificates_refused_total)");
	else
		vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	earlier = atomic_exchange(&dropped, 0);
	if (earlier > 0)
		log_msg(LOG_WARN, "%s (%u more libmicrohttpd warnings were dropped)", line,
		        earlier);
	else
		log_msg(LOG_WARN, "%s", line);
}

/*
 * Starts the daemon of one server thread, without a thread or a listening
 * socket of its own: the thread accepts, decides, and hands it the
 * connections it keeps (MHD_add_connection). Its own limit only backs ours
 * up, with room for the connections shut down and not yet closed.
 */
static struct MHD_Daemon *
daemon_start(struct http_worker *w, const struct server_config *cfg, unsigned int share)
{
	struct http_server *s = w->server;
	unsigned int flags =
	    MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
	struct MHD_OptionItem extra[4];
	size_t n = 0;

	if (s->tls != NULL) {
		/* libmicrohttpd needs a certificate to start; each connection then takes the
		 * current one (tls_server_session_start), so reloads need no restart. */
		flags |= MHD_USE_TLS;
		extra[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0,
		                                     (void *)tls_server_cert_pem(s->tls)};
		extra[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0,
		                                     (void *)tls_server_key_pem(s->tls)};
		extra[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
		                                     (void *)TLS_SERVER_PRIORITIES};
	}
	extra[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	/* The logger comes first so that libmicrohttpd reports even its option errors through it.
	 */
	return MHD_start_daemon(
	    flags, 0, NULL, NULL, on_request, w, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
	    MHD_OPTION_CONNECTION_LIMIT, share + ACCEPT_BATCH, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned int)cfg->connection_timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, w,
	    MHD_OPTION_NOTIFY_CONNECTION, on_connection, w, MHD_OPTION_UNESCAPE_CALLBACK,
	    unescape_path, NULL, MHD_OPTION_ARRAY, extra, MHD_OPTION_END);
}

/*
 * Refuses a connection at once, with an answer that says which limit it met,
 * then drains it so that the answer is read. Over TLS a plain-text answer
 * would only garble the handshake: the connection is closed at once instead.
 */
static void
refuse(struct http_worker *w, int fd, enum close_reason why)
{
	struct http_server *s = w->server;
	const char *answer =
	    why == CLOSE_PER_ADDRESS_LIMIT ? s->refusal_per_address : s->refusal_over_limit;

	atomic_fetch_add_explicit(&s->stats.closed[why], 1, memory_order_relaxed);
	if (s->tls != NULL || send(fd, answer, strlen(answer), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		close(fd);
		return;
	}
	linger_start(w->linger, fd);
}

/*
 * Out of descriptors: gives up the spare one to accept and close the next
 * connection, so the listen queue keeps moving and clients are told at once
 * rather than left waiting in it.
 */
static void
accept_without_descriptors(struct http_worker *w)
{
	struct http_server *s = w->server;
	struct sockaddr_storage addr;
	socklen_t len = sizeof(addr);
	int fd;

	if (w->spare_fd < 0)
		return;
	close(w->spare_fd);
	fd = accept4(s->listener, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd >= 0) {
		atomic_fetch_add_explicit(&s->stats.closed[CLOSE_OVER_LIMIT], 1,
		                          memory_order_relaxed);
		if (s->tls == NULL)
			(void)send(fd, s->refusal_over_limit, strlen(s->refusal_over_limit),
			           MSG_DONTWAIT | MSG_NOSIGNAL);
		close(fd);
	}
	w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/*
 * Takes new connections off the listen queue, ACCEPT_BATCH at most: each is
 * refused at once past its address's limit, makes room for itself (the
 * connection that waited longest gives way) or is refused when none can, and
 * is otherwise handed to this thread's daemon.
 */
static void
worker_accept(struct http_worker *w)
{
	struct http_server *s = w->server;
	struct sockaddr_storage addr;
	socklen_t len;
	unsigned int i;
	int fd;

	for (i = 0; i < ACCEPT_BATCH; i++) {
		len = sizeof(addr);
		fd = accept4(s->listener, (struct sockaddr *)&addr, &len,
		             SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue;
		if (fd < 0 && (errno == EMFILE || errno == ENFILE))
			accept_without_descriptors(w);
		if (fd < 0)
			return;
		if (address_limit_take(s->per_address, (struct sockaddr *)&addr, &w->accepting) <
		    0) {
			refuse(w, fd, CLOSE_PER_ADDRESS_LIMIT);
			continue;
		}
		if (!admission_make_room(w->admission)) {
			address_limit_release(s->per_address, &w->accepting);
			refuse(w, fd, CLOSE_OVER_LIMIT);
			continue;
		}
		/* On success libmicrohttpd owns fd; on failure it has closed it. */
		w->accepting_taken = 0;
		if (MHD_add_connection(w->daemon, fd, (struct sockaddr *)&addr, len) != MHD_YES)
			log_msg(LOG_DEBUG, "libmicrohttpd did not take a connection: %s",
			        strerror(errno));
		if (!w->accepting_taken)
			address_limit_release(s->per_address, &w->accepting);
	}
}

/* How long a server thread may sleep: until its daemon, its loop or a deadline next has work. */
static int
worker_wait_ms(struct http_worker *w, long loop_ms)
{
	MHD_UNSIGNED_LONG_LONG mhd_ms;
	long wait = loop_ms, due[2];
	size_t i;

	if (MHD_get_timeout(w->daemon, &mhd_ms) == MHD_YES &&
	    (wait < 0 || mhd_ms < (MHD_UNSIGNED_LONG_LONG)wait))
		wait = mhd_ms > INT_MAX ? INT_MAX : (long)mhd_ms;
	due[0] = admission_expire(w->admission);
	due[1] = linger_expire(w->linger);
	for (i = 0; i < 2; i++)
		if (due[i] >= 0 && (wait < 0 || due[i] < wait))
			wait = due[i];
	return wait > INT_MAX ? INT_MAX : (int)wait;
}

/* Acts once on each shutdown phase the server has entered since this thread last looked. */
static void
worker_follow_phase(struct http_worker *w)
{
	struct http_server *s = w->server;
	enum phase now = (enum phase)atomic_load(&s->phase);

	if (w->seen < PHASE_DRAINING && now >= PHASE_DRAINING) {
		/* This thread stops accepting; the socket itself is shut down once all have. */
		if (epoll_ctl(w->epoll_fd, EPOLL_CTL_DEL, s->listener, NULL) < 0)
			log_msg(LOG_ERROR, "server thread: cannot stop accepting: %s",
			        strerror(errno));
		atomic_fetch_add(&s->quiesced, 1);
	}
	if (w->seen < PHASE_ABORTING && now >= PHASE_ABORTING) {
		if (s->loop != NULL)
			s->loop->abort(w->loop_state);
		atomic_fetch_add(&s->aborted, 1);
	}
	w->seen = now;
}

/*
 * One server thread: waits on the listening socket, its daemon, the loop's
 * descriptor, the sockets it drains and the shutdown signal at once; then
 * accepts, lets libmicrohttpd read, answer and time out connections, and the
 * loop do its part, until the server stops. Each epoll event carries a
 * pointer: to one of the thread's own descriptors, or to a draining socket.
 */
static void *
worker_main(void *arg)
{
	struct http_worker *w = arg;
	struct http_server *s = w->server;
	struct epoll_event events[64];
	long loop_ms = -1;
	uint64_t count;
	int n, i, loop_ready, accept_ready;
	void *tag;

	if (s->tracer != NULL)
		xray_batch_start();
	while (w->seen != PHASE_STOPPING) {
		/*
		 * Held segments wait while more work is ready (for XRAY_BATCH_HOLD_MS at
		 * most), so that one send carries many; they leave before the thread waits.
		 */
		n = 0;
		if (s->tracer != NULL && xray_may_hold(s->tracer))
			n = epoll_wait(w->epoll_fd, events, 64, 0);
		if (n == 0) {
			if (s->tracer != NULL)
				xray_flush(s->tracer);
			n = epoll_wait(w->epoll_fd, events, 64, worker_wait_ms(w, loop_ms));
		}
		loop_ready = accept_ready = 0;
		for (i = 0; i < n; i++) {
			tag = events[i].data.ptr;
			if (tag == &w->wake_fd) {
				if (read(w->wake_fd, &count, sizeof(count)) < 0)
					log_msg(LOG_ERROR,
					        "server thread: cannot read its wake-up event");
			} else if (tag == &w->loop_fd) {
				loop_ready = 1;
			} else if (tag == &s->listener) {
				accept_ready = 1;
			} else if (tag != &w->daemon_fd) {
				linger_ready(w->linger, tag);
			}
		}
		worker_follow_phase(w);
		if (accept_ready && w->seen == PHASE_SERVING)
			worker_accept(w);
		MHD_run(w->daemon);
		if (s->loop != NULL)
			loop_ms = s->loop->run(w->loop_state, loop_ready);
		/* Answers resumed on this thread (by the loop, or by a handler) go out now. */
		while (w->resumed) {
			w->resumed = 0;
			MHD_run(w->daemon);
		}
	}
	if (s->tracer != NULL)
		xray_flush(s->tracer);
	return NULL;
}

/* Adds fd to epoll_fd, its events carrying tag; exclusive: one waiting thread is woken. */
static int
epoll_watch(int epoll_fd, int fd, void *tag, int exclusive)
{
	struct epoll_event ev = {.events = EPOLLIN | (exclusive ? EPOLLEXCLUSIVE : 0u)};

	ev.data.ptr = tag;
	return epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev);
}

/* Makes one server thread's daemon, tables, loop state and wake-up event; returns 0 or -1. */
static int
worker_init(struct http_worker *w, const struct server_config *cfg, unsigned int index)
{
	struct http_server *s = w->server;
	const union MHD_DaemonInfo *info;
	struct admission_limits limits;
	unsigned int share = cfg->connection_limit / s->worker_count;

	/*
	 * CONNECTION_LIMIT is shared out over the threads, the first taking the
	 * remainder: each decides alone, with no lock, which of its own give way.
	 */
	if (index < cfg->connection_limit % s->worker_count)
		share++;
	if (share == 0)
		share = 1;
	limits.connections = share;
	limits.held_bytes = cfg->answer_memory_max_bytes / s->worker_count;
	limits.read_timeout_ms = (long long)cfg->request_read_timeout_s * 1000;
	w->admission = admission_new(&limits, &s->stats);
	w->daemon = daemon_start(w, cfg, share);
	info = w->daemon != NULL ? MHD_get_daemon_info(w->daemon, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
	w->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	w->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (w->admission == NULL || info == NULL || w->epoll_fd < 0 || w->wake_fd < 0)
		return -1;
	w->daemon_fd = info->epoll_fd;
	/* Draining sockets live REFUSAL_DRAIN_MS at most, a thread's share of connections at most.
	 */
	w->linger = linger_new(w->epoll_fd, share, cfg->refusal_drain_ms, cfg->refusal_drain_bytes);
	if (w->linger == NULL || epoll_watch(w->epoll_fd, w->daemon_fd, &w->daemon_fd, 0) < 0 ||
	    epoll_watch(w->epoll_fd, w->wake_fd, &w->wake_fd, 0) < 0 ||
	    epoll_watch(w->epoll_fd, s->listener, &s->listener, 1) < 0)
		return -1;
	if (s->loop != NULL) {
		w->loop_state = s->loop->attach(s->loop->arg, &w->loop_fd);
		if (w->loop_state == NULL ||
		    (w->loop_fd >= 0 && epoll_watch(w->epoll_fd, w->loop_fd, &w->loop_fd, 0) < 0))
			return -1;
	}
	return 0;
}

/* Wakes every server thread to look at the phase, and waits up to 1 s until `done` of them acted.
 */
static void
workers_enter(struct http_server *s, enum phase phase, atomic_uint *done)
{
	struct timespec pause = {0, 1000 * 1000};
	long long until;
	uint64_t one = 1;
	unsigned int i;

	atomic_store(&s->phase, phase);
	for (i = 0; i < s->worker_count; i++)
		if (s->workers[i].started && write(s->workers[i].wake_fd, &one, sizeof(one)) < 0)
			log_msg(LOG_ERROR, "cannot wake server thread %u", i);
	if (done == NULL)
		return;
	until = clock_ms() + 1000;
	while (atomic_load(done) < s->worker_count && clock_ms() < until)
		nanosleep(&pause, NULL);
}

/* Joins the threads and frees everything http_server_start() made; s may be half made. */
static void
server_free(struct http_server *s)
{
	struct http_worker *w;
	unsigned int i;

	if (s->workers != NULL) {
		workers_enter(s, PHASE_STOPPING, NULL);
		for (i = 0; i < s->worker_count; i++) {
			w = &s->workers[i];
			if (w->started)
				pthread_join(w->thread, NULL);
			w->seen = PHASE_STOPPING;
			/* Stopping the daemon closes its connections, which the tables forget. */
			if (w->daemon != NULL)
				MHD_stop_daemon(w->daemon);
			if (w->loop_state != NULL)
				s->loop->detach(w->loop_state);
			linger_free(w->linger);
			admission_free(w->admission);
			if (w->epoll_fd >= 0)
				close(w->epoll_fd);
			if (w->wake_fd >= 0)
				close(w->wake_fd);
			if (w->spare_fd >= 0)
				close(w->spare_fd);
		}
		free(s->workers);
	}
	if (s->listener >= 0)
		close(s->listener);
	address_limit_free(s->per_address);
	rate_limit_free(s->limiter);
	http_metrics_free(s->metrics);
	free(s->route_paths);
	free(s);
}

/* Writes the two answers given at accept to connections over a limit. */
static void
refusals_prepare(struct http_server *s, const struct server_config *cfg)
{
	static const char format[] = "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
	                             "Content-Length: %d\r\nRetry-After: 1\r\n"
	                             "Connection: close\r\n\r\n%s";
	char body[160];
	int len;

	len = snprintf(body, sizeof(body),
	               "{\"error\":\"Connection limit reached: CONNECTION_LIMIT is %u\"}",
	               cfg->connection_limit);
	snprintf(s->refusal_over_limit, sizeof(s->refusal_over_limit), format,
	         "503 Service Unavailable", len, body);
	len = snprintf(body, sizeof(body),
	               "{\"error\":\"Too many connections from one address: "
	               "CONNECTION_LIMIT_PER_ADDRESS is %u\"}",
	               cfg->connection_limit_per_address);
	snprintf(s->refusal_per_address, sizeof(s->refusal_per_address), format,
	         "429 Too Many Requests", len, body);
}

struct http_server *
http_server_start(const struct server_config *cfg, struct tls_server *tls,
                  const struct http_route *routes, size_t route_count, const struct http_loop *loop,
                  struct metrics *registry, struct xray *tracer)
{
	struct http_server *s = calloc(1, sizeof(*s));
	struct http_worker *w;
	unsigned int i;

	if (s == NULL)
		goto fail;
	s->listener = -1;
	s->tls = tls;
	s->loop = loop;
	s->tracer = tracer;
	s->routes = routes;
	s->route_count = route_count;
	s->body_max_bytes = cfg->body_max_bytes;
	s->trust_forwarded_for = cfg->trust_forwarded_for;
	s->rate_limit_rps = cfg->rate_limit_rps;
	s->stats.open_limit = cfg->connection_limit;
	s->stats.held_limit = cfg->answer_memory_max_bytes;
	atomic_init(&s->in_flight, 0);
	atomic_init(&s->phase, PHASE_SERVING);
	atomic_init(&s->quiesced, 0);
	atomic_init(&s->aborted, 0);
	atomic_init(&s->next_id, 1);
	if (getrandom(&s->id_prefix, sizeof(s->id_prefix), 0) != sizeof(s->id_prefix))
		s->id_prefix = (unsigned long)getpid() ^ (unsigned long)time(NULL);
	refusals_prepare(s, cfg);
	listener_reserve_descriptors(cfg->connection_limit, cfg->threads);
	s->per_address = address_limit_new(cfg->connection_limit_per_address,
	                                   cfg->connection_limit_exempt, cfg->connection_limit);
	if (s->per_address == NULL)
		goto fail;
	if (cfg->rate_limit_rps > 0) {
		s->limiter = rate_limit_new(cfg->rate_limit_rps, cfg->rate_limit_burst,
		                            cfg->rate_limit_clients);
		if (s->limiter == NULL)
			goto fail;
	}
	/*
	 * Made before any server thread exists, because /metrics reads the
	 * registry without a lock. When the server then fails to start, the
	 * process exits and nothing reads it again.
	 */
	s->route_paths = calloc(route_count + 1, sizeof(*s->route_paths));
	if (s->route_paths == NULL)
		goto fail;
	for (i = 0; i < route_count; i++)
		s->route_paths[i] = routes[i].path;
	s->metrics =
	    http_metrics_new(registry, s->route_paths, route_count, &s->in_flight, &s->stats);
	if (s->metrics == NULL)
		goto fail;
	s->listener = listener_open(cfg->port);
	if (s->listener < 0)
		goto fail;
	s->worker_count = cfg->threads > 0 ? cfg->threads : 1;
	s->workers = calloc(s->worker_count, sizeof(*s->workers));
	if (s->workers == NULL)
		goto fail;
	for (i = 0; i < s->worker_count; i++) {
		w = &s->workers[i];
		w->server = s;
		w->epoll_fd = w->wake_fd = w->loop_fd = w->spare_fd = -1;
	}
	for (i = 0; i < s->worker_count; i++)
		if (worker_init(&s->workers[i], cfg, i) < 0)
			goto fail;
	for (i = 0; i < s->worker_count; i++) {
		w = &s->workers[i];
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
			goto fail;
		w->started = 1;
	}
	return s;
fail:
	log_msg(LOG_ERROR, "cannot start the server on port %u", cfg->port);
	if (s != NULL)
		server_free(s);
	return NULL;
}

/* Waits up to timeout_ms for the requests in flight to end; returns how many are left. */
static unsigned int
in_flight_wait(struct http_server *s, unsigned int timeout_ms)
{
	struct timespec pause = {0, 5 * 1000 * 1000};
	long long until = clock_ms() + timeout_ms;

	while (atomic_load(&s->in_flight) > 0 && clock_ms() < until)
		nanosleep(&pause, NULL);
	return atomic_load(&s->in_flight);
}

unsigned int
http_server_drain(struct http_server *s, unsigned int timeout_ms)
{
	/*
	 * Only the first drain quiesces. Once every thread has stopped accepting,
	 * the listening socket is shut down, so new connections are refused, but
	 * closed only when the server is freed.
	 */
	if (atomic_load(&s->phase) < PHASE_DRAINING) {
		workers_enter(s, PHASE_DRAINING, &s->quiesced);
		shutdown(s->listener, SHUT_RDWR);
	}
	return in_flight_wait(s, timeout_ms);
}

unsigned int
http_server_abort(struct http_server *s, unsigned int flush_ms)
{
	if (atomic_load(&s->phase) < PHASE_ABORTING)
		workers_enter(s, PHASE_ABORTING, &s->aborted);
	return in_flight_wait(s, flush_ms);
}

void
http_server_stop(struct http_server *s)
{
	if (s != NULL)
		server_free(s);
}
