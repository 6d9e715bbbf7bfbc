/*
 * libmicrohttpd set up once for both daemons: one event loop per server
 * thread, routing, bodies, answers, logging, drain.
 */
#include "http_server.h"

#include <ctype.h>
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
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "buffer.h"
#include "clock.h"
#include "log.h"
#include "http_metrics.h"
#include "rate_limit.h"
#include "read_deadline.h"
#include "served_by.h"
#include "tls_server.h"
#include "trace.h"

#define REQUEST_ID_MAX 64
#define PATH_LOG_MAX   256
#define ERROR_BODY_MAX 1024

/* libmicrohttpd warnings written a second at most. */
#define MHD_LOG_PER_SECOND 10

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
	int epoll_fd;     /* waits on the daemon, wake_fd and the loop's fd */
	int wake_fd;      /* eventfd: the shutdown phase changed */
	int loop_fd;      /* what http_loop.attach asked to wait on, or -1 */
	void *loop_state; /* what http_loop.attach gave; NULL without a loop */
	enum phase seen;  /* the last phase this thread acted on */
	int resumed;      /* this thread resumed a connection since it last ran the daemon */
};

/* The server thread running on this thread, for http_resume(); NULL on other threads. */
static _Thread_local struct http_worker *this_worker;

struct http_server {
	struct http_worker *workers; /* owned */
	unsigned int worker_count;
	const struct http_loop *loop; /* NULL without one; borrowed */
	atomic_int phase;             /* enum phase */
	atomic_uint quiesced;         /* threads that stopped accepting */
	atomic_uint aborted;          /* threads that ended their loop's work */
	const struct http_route *routes;
	size_t route_count;
	size_t body_max_bytes;
	atomic_uint in_flight;        /* exchanges created and not yet completed */
	atomic_ulong next_id;         /* counter part of generated request ids */
	unsigned long id_prefix;      /* random part of generated request ids */
	struct http_metrics *metrics; /* owned */
	struct rate_limiter *limiter; /* NULL when RATE_LIMIT_RPS is unset; owned */
	struct read_deadline *reader; /* REQUEST_READ_TIMEOUT_S; owned */
	struct tls_server *tls;       /* NULL without TLS; borrowed */
	MHD_socket listener;          /* shared by every daemon; closed at stop */
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
	struct timespec started;
	int body_too_large;
	int suspended;
	int recorded;                  /* logged and counted */
	int refuse_early;              /* answer before reading the body, then close */
	unsigned int retry_after_s;    /* for a 429 */
	unsigned int status;           /* the answer, once set */
	struct MHD_Response *response; /* owned until queued */
	size_t response_bytes;
	const char *content_type; /* NULL for application/json; borrowed */
	struct read_clock *clock; /* the connection's read deadline; borrowed */
	struct trace trace;
	char method[16];
	char path[PATH_LOG_MAX];
	char request_id[REQUEST_ID_MAX + 1];
};

/* What a connection holds from open to close. */
struct connection_state {
	struct read_clock *clock;      /* its read deadline */
	struct tls_credentials *creds; /* the TLS credentials it took; NULL without TLS */
};

static void record_request(struct http_exchange *ex);

/* Takes the client's X-Request-Id only when short and plain, so it is safe to log and echo. */
static int
request_id_is_sane(const char *id)
{
	size_t n = 0;

	if (id == NULL)
		return 0;
	for (; id[n] != '\0'; n++) {
		char c = id[n];

		if (n >= REQUEST_ID_MAX ||
		    !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return n > 0;
}

static void
copy_string(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src != NULL ? src : "");
}

static double
elapsed_ms(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) * 1e3 +
	       (double)(now.tv_nsec - since->tv_nsec) / 1e6;
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
	clock_gettime(CLOCK_MONOTONIC, &ex->started);
	buffer_init(&ex->body, s->body_max_bytes);
	copy_string(ex->method, sizeof(ex->method), method);
	copy_string(ex->path, sizeof(ex->path), url);
	id = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
	if (request_id_is_sane(id))
		copy_string(ex->request_id, sizeof(ex->request_id), id);
	else
		snprintf(ex->request_id, sizeof(ex->request_id), "%016lx%08lx", s->id_prefix,
		         atomic_fetch_add(&s->next_id, 1) & 0xffffffffUL);
	info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	if (info != NULL && info->socket_context != NULL)
		ex->clock = ((struct connection_state *)info->socket_context)->clock;
	trace_begin(&ex->trace, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "traceparent"),
	            MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Amzn-Trace-Id"));
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
http_set_content_type(struct http_exchange *ex, const char *content_type)
{
	ex->content_type = content_type;
}

void
http_reply(struct http_exchange *ex, unsigned int status, struct MHD_Response *response,
           size_t size)
{
	if (ex->response != NULL)
		MHD_destroy_response(ex->response);
	ex->status = status;
	ex->response = response;
	ex->response_bytes = size;
}

void
http_reply_take(struct http_exchange *ex, unsigned int status, char *body, size_t len)
{
	struct MHD_Response *r;

	r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (r == NULL)
		free(body);
	http_reply(ex, status, r, len);
}

void
http_reply_static(struct http_exchange *ex, unsigned int status, const char *body)
{
	size_t len = strlen(body);

	http_reply(ex, status,
	           MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_PERSISTENT), len);
}

void
http_reply_error(struct http_exchange *ex, unsigned int status, const char *fmt, ...)
{
	char message[ERROR_BODY_MAX], body[ERROR_BODY_MAX * 2];
	size_t len;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	len = (size_t)snprintf(body, sizeof(body), "{\"error\":\"");
	len = log_escape(body, sizeof(body) - 2, len, message);
	memcpy(body + len, "\"}", 3);
	len += 2;
	http_reply(ex, status, MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_COPY),
	           len);
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
	uint64_t one = 1;

	/*
	 * After this call the exchange belongs to the server thread again: touch
	 * nothing. A daemon without a thread of its own learns of the resume only
	 * when it is run again, so its thread runs it at once, or is woken for it.
	 */
	MHD_resume_connection(ex->connection);
	if (this_worker == w)
		w->resumed = 1;
	else if (write(w->wake_fd, &one, sizeof(one)) < 0)
		log_msg(LOG_ERROR, "cannot wake the server thread of a resumed request");
}

/* Sends the answer that was set, adding the headers every answer carries. */
static enum MHD_Result
queue_answer(struct http_exchange *ex)
{
	static const char fallback[] = "{\"error\":\"Internal error: could not build the answer\"}";
	struct MHD_Response *r = ex->response;
	char traceparent[TRACE_HEADER_MAX], amzn[TRACE_HEADER_MAX];
	enum MHD_Result ok;

	if (r == NULL || ex->status == 0) {
		/* Only allocation failures get here: answer from static memory. */
		if (r != NULL)
			MHD_destroy_response(r);
		ex->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		ex->response_bytes = sizeof(fallback) - 1;
		r = MHD_create_response_from_buffer(sizeof(fallback) - 1, (void *)fallback,
		                                    MHD_RESPMEM_PERSISTENT);
		if (r == NULL)
			return MHD_NO;
	}
	ex->response = NULL;
	trace_traceparent(&ex->trace, traceparent);
	trace_amzn(&ex->trace, amzn);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	                        ex->content_type != NULL ? ex->content_type : "application/json");
	MHD_add_response_header(r, "X-Request-Id", ex->request_id);
	MHD_add_response_header(r, "X-Served-By", served_by());
	MHD_add_response_header(r, "traceparent", traceparent);
	MHD_add_response_header(r, "X-Amzn-Trace-Id", amzn);
	if (ex->status == MHD_HTTP_TOO_MANY_REQUESTS) {
		char seconds[16];

		snprintf(seconds, sizeof(seconds), "%u", ex->retry_after_s);
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, seconds);
	}
	if (ex->status == MHD_HTTP_METHOD_NOT_ALLOWED && ex->route != NULL)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW,
		                        ex->route->get == NULL    ? "POST"
		                        : ex->route->post == NULL ? "GET, HEAD"
		                                                  : "GET, HEAD, POST");
	if (atomic_load(&ex->server->phase) != PHASE_SERVING)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	record_request(ex);
	ok = MHD_queue_response(ex->connection, ex->status, r);
	MHD_destroy_response(r);
	return ok;
}

/* Accepts application/json with or without parameters such as charset. */
static int
content_type_is_json(const char *value)
{
	static const char json[] = "application/json";
	size_t n = sizeof(json) - 1;

	if (value == NULL)
		return 0;
	while (*value == ' ' || *value == '\t')
		value++;
	if (strncasecmp(value, json, n) != 0)
		return 0;
	value += n;
	while (*value == ' ' || *value == '\t')
		value++;
	return *value == '\0' || *value == ';';
}

/*
 * The client a rate limit applies to: the peer's address, or, when the
 * operator trusts a proxy in front, the last address in X-Forwarded-For (the
 * one that proxy added; earlier ones are the client's own claims).
 */
static void
client_key(const struct http_exchange *ex, char *key, size_t size)
{
	const union MHD_ConnectionInfo *info;
	const char *xff, *last;
	const struct sockaddr *sa;

	snprintf(key, size, "unknown");
	xff = ex->server->trust_forwarded_for
	          ? MHD_lookup_connection_value(ex->connection, MHD_HEADER_KIND, "X-Forwarded-For")
	          : NULL;
	if (xff != NULL) {
		last = strrchr(xff, ',');
		last = last != NULL ? last + 1 : xff;
		while (*last == ' ')
			last++;
		snprintf(key, size, "%.*s", (int)strcspn(last, " "), last);
		return;
	}
	info = MHD_get_connection_info(ex->connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	sa = info != NULL ? info->client_addr : NULL;
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, key,
		          (socklen_t)size);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, key,
		          (socklen_t)size);
}

/* Applies the per-client rate limit; returns 1 when the request may go on. */
static int
rate_limit_allows(struct http_exchange *ex)
{
	struct timespec now;
	char key[64];
	double wait = 0;

	client_key(ex, key, sizeof(key));
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (rate_limit_take(ex->server->limiter, key, (double)now.tv_sec + now.tv_nsec / 1e9,
	                    &wait))
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

/*
 * Decodes %XX escapes in the path like libmicrohttpd does, except %00: a NUL
 * would cut the path short ("/data%00junk" would be served as "/data"), so it
 * is left as written and the path matches no route.
 */
static size_t
unescape_path(void *cls, struct MHD_Connection *connection, char *uri)
{
	char *in = uri, *out = uri;
	unsigned int v;

	(void)cls;
	(void)connection;
	while (*in != '\0') {
		if (in[0] == '%' && isxdigit((unsigned char)in[1]) &&
		    isxdigit((unsigned char)in[2]) && sscanf(in + 1, "%2x", &v) == 1 && v != 0) {
			*out++ = (char)v;
			in += 3;
		} else {
			*out++ = *in++;
		}
	}
	*out = '\0';
	return (size_t)(out - uri);
}

static const struct http_route *
route_find(const struct http_server *s, const char *path)
{
	size_t i;

	for (i = 0; i < s->route_count; i++)
		if (strcmp(s->routes[i].path, path) == 0)
			return &s->routes[i];
	return NULL;
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
	ex->route = route_find(s, ex->path);
	if (ex->route == NULL) {
		http_reply_error(ex, MHD_HTTP_NOT_FOUND, "No route for %s %s", ex->method,
		                 ex->path);
		return;
	}
	if (strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0)
		ex->handler = ex->route->get;
	else if (strcmp(method, MHD_HTTP_METHOD_POST) == 0)
		ex->handler = ex->route->post;
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
	if (!content_type_is_json(MHD_lookup_connection_value(ex->connection, MHD_HEADER_KIND,
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
			read_clock_set(ex->clock, 0);
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
	read_clock_set(ex->clock, 0);
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
 * Logs and counts a request once its answer is known. This happens when the
 * answer is queued, before a byte of it is sent, so a client that has its
 * answer always finds the request already counted in /metrics.
 */
static void
record_request(struct http_exchange *ex)
{
	struct log_request line;

	ex->recorded = 1;
	line.method = ex->method;
	line.path = ex->path;
	line.status = ex->status;
	line.bytes = ex->response_bytes;
	line.duration_ms = elapsed_ms(&ex->started);
	line.request_id = ex->request_id;
	line.trace_id = ex->trace.trace_id;
	log_request(&line);
	http_metrics_count(ex->server->metrics, ex->route, ex->method, line.status,
	                   line.duration_ms / 1e3);
}

/* Called when a request is done, answered or not: frees its state. */
static void
on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
             enum MHD_RequestTerminationCode code)
{
	struct http_server *s = ((struct http_worker *)cls)->server;
	struct http_exchange *ex = *con_cls;

	(void)connection;
	(void)code;
	if (ex == NULL)
		return;
	*con_cls = NULL;
	read_clock_set(ex->clock, 1);
	/* A request that ends without an answer (the client went away) is recorded as status 0. */
	if (!ex->recorded) {
		ex->status = 0;
		ex->response_bytes = 0;
		record_request(ex);
	}
	if (ex->response != NULL)
		MHD_destroy_response(ex->response);
	buffer_free(&ex->body);
	free(ex);
	atomic_fetch_sub(&s->in_flight, 1);
}

static void
connection_state_free(struct http_server *s, struct connection_state *state)
{
	if (state == NULL)
		return;
	read_deadline_closed(s->reader, state->clock);
	tls_server_session_end(state->creds);
	free(state);
}

/*
 * Tracks each connection from open to close: its read deadline and, with TLS,
 * the credentials its handshake uses. A connection that cannot be tracked is
 * shut down at once rather than served without its deadline or its client
 * verification.
 */
static void
on_connection(void *cls, struct MHD_Connection *connection, void **socket_context,
              enum MHD_ConnectionNotificationCode code)
{
	struct http_server *s = ((struct http_worker *)cls)->server;
	struct connection_state *state = *socket_context;
	const union MHD_ConnectionInfo *fd, *session;

	if (code != MHD_CONNECTION_NOTIFY_STARTED) {
		connection_state_free(s, state);
		*socket_context = NULL;
		return;
	}
	fd = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (fd == NULL)
		return;
	state = calloc(1, sizeof(*state));
	if (state != NULL && s->tls != NULL) {
		session = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
		state->creds =
		    session != NULL ? tls_server_session_start(s->tls, session->tls_session) : NULL;
	}
	if (state != NULL)
		state->clock = read_deadline_opened(s->reader, fd->connect_fd);
	if (state == NULL || state->clock == NULL || (s->tls != NULL && state->creds == NULL)) {
		shutdown(fd->connect_fd, SHUT_RDWR);
		connection_state_free(s, state);
		state = NULL;
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
 * Starts the daemon of one server thread, without a thread of its own. The
 * first daemon opens the listening socket (listen_fd is MHD_INVALID_SOCKET);
 * the others are given it, so every thread accepts from the same queue.
 */
static struct MHD_Daemon *
daemon_start(struct http_worker *w, const struct server_config *cfg, unsigned int family_flag,
             MHD_socket listen_fd, unsigned int connection_limit)
{
	struct http_server *s = w->server;
	unsigned int flags =
	    MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | family_flag;
	struct MHD_OptionItem extra[5];
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
	if (listen_fd != MHD_INVALID_SOCKET)
		extra[n++] =
		    (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, (intptr_t)listen_fd, NULL};
	extra[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	/* The logger comes first so that libmicrohttpd reports even its option errors through it.
	 */
	return MHD_start_daemon(
	    flags, (uint16_t)cfg->port, NULL, NULL, on_request, w, MHD_OPTION_EXTERNAL_LOGGER,
	    on_mhd_log, NULL, MHD_OPTION_CONNECTION_LIMIT, connection_limit,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->connection_timeout_s,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, w, MHD_OPTION_NOTIFY_CONNECTION,
	    on_connection, w, MHD_OPTION_UNESCAPE_CALLBACK, unescape_path, NULL,
	    MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1, MHD_OPTION_ARRAY, extra,
	    MHD_OPTION_END);
}

/* How long a server thread may sleep: until its daemon or its loop next has work. */
static int
worker_wait_ms(struct http_worker *w, long loop_ms)
{
	MHD_UNSIGNED_LONG_LONG mhd_ms;
	long wait = loop_ms;

	if (MHD_get_timeout(w->daemon, &mhd_ms) == MHD_YES &&
	    (wait < 0 || mhd_ms < (MHD_UNSIGNED_LONG_LONG)wait))
		wait = mhd_ms > INT_MAX ? INT_MAX : (long)mhd_ms;
	return wait > INT_MAX ? INT_MAX : (int)wait;
}

/* Acts once on each shutdown phase the server has entered since this thread last looked. */
static void
worker_follow_phase(struct http_worker *w)
{
	struct http_server *s = w->server;
	enum phase now = (enum phase)atomic_load(&s->phase);

	if (w->seen < PHASE_DRAINING && now >= PHASE_DRAINING) {
		/* On this thread, which alone runs the daemon; the socket itself is shared. */
		MHD_quiesce_daemon(w->daemon);
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
 * One server thread: waits on its daemon, the loop's descriptor and the
 * shutdown signal at once, then lets libmicrohttpd read, answer and time out
 * connections and the loop do its part, until the server stops.
 */
static void *
worker_main(void *arg)
{
	struct http_worker *w = arg;
	struct http_server *s = w->server;
	struct epoll_event events[4];
	long loop_ms = -1;
	uint64_t count;
	int n, i, loop_ready;

	this_worker = w;
	while (w->seen != PHASE_STOPPING) {
		n = epoll_wait(w->epoll_fd, events, 4, worker_wait_ms(w, loop_ms));
		loop_ready = 0;
		for (i = 0; i < n; i++) {
			if (events[i].data.fd == w->wake_fd &&
			    read(w->wake_fd, &count, sizeof(count)) < 0)
				log_msg(LOG_ERROR, "server thread: cannot read its wake-up event");
			if (events[i].data.fd == w->loop_fd)
				loop_ready = 1;
		}
		worker_follow_phase(w);
		MHD_run(w->daemon);
		if (s->loop != NULL)
			loop_ms = s->loop->run(w->loop_state, loop_ready);
		/* Answers resumed on this thread (by the loop, or by a handler) go out now. */
		while (w->resumed) {
			w->resumed = 0;
			MHD_run(w->daemon);
		}
	}
	return NULL;
}

static int
epoll_watch(int epoll_fd, int fd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};

	return epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev);
}

/* Makes one server thread's daemon, loop state and wake-up event; returns 0 or -1. */
static int
worker_init(struct http_worker *w, const struct server_config *cfg, unsigned int index)
{
	struct http_server *s = w->server;
	const union MHD_DaemonInfo *info;
	unsigned int limit = cfg->connection_limit / s->worker_count;

	/* CONNECTION_LIMIT is for the whole server: the first threads take the remainder. */
	if (index < cfg->connection_limit % s->worker_count)
		limit++;
	if (limit == 0)
		limit = 1;
	if (index == 0) {
		/* Both IPv6 and IPv4 where the host has IPv6, IPv4 alone where it does not. */
		w->daemon = daemon_start(w, cfg, MHD_USE_DUAL_STACK, MHD_INVALID_SOCKET, limit);
		if (w->daemon == NULL)
			w->daemon = daemon_start(w, cfg, 0, MHD_INVALID_SOCKET, limit);
		info = w->daemon != NULL ? MHD_get_daemon_info(w->daemon, MHD_DAEMON_INFO_LISTEN_FD)
		                         : NULL;
		if (info == NULL)
			return -1;
		s->listener = info->listen_fd;
	} else {
		w->daemon = daemon_start(w, cfg, 0, s->listener, limit);
		if (w->daemon == NULL)
			return -1;
	}
	info = MHD_get_daemon_info(w->daemon, MHD_DAEMON_INFO_EPOLL_FD);
	w->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (info == NULL || w->epoll_fd < 0 || w->wake_fd < 0 ||
	    epoll_watch(w->epoll_fd, info->epoll_fd) < 0 ||
	    epoll_watch(w->epoll_fd, w->wake_fd) < 0)
		return -1;
	if (s->loop != NULL) {
		w->loop_state = s->loop->attach(s->loop->arg, &w->loop_fd);
		if (w->loop_state == NULL ||
		    (w->loop_fd >= 0 && epoll_watch(w->epoll_fd, w->loop_fd) < 0))
			return -1;
	}
	return 0;
}

/* Wakes every server thread to look at the phase, and waits up to 1 s until `done` of them acted.
 */
static void
workers_enter(struct http_server *s, enum phase phase, atomic_uint *done)
{
	struct timespec started, pause = {0, 1000 * 1000};
	uint64_t one = 1;
	unsigned int i;

	atomic_store(&s->phase, phase);
	for (i = 0; i < s->worker_count; i++)
		if (s->workers[i].started && write(s->workers[i].wake_fd, &one, sizeof(one)) < 0)
			log_msg(LOG_ERROR, "cannot wake server thread %u", i);
	if (done == NULL)
		return;
	clock_gettime(CLOCK_MONOTONIC, &started);
	while (atomic_load(done) < s->worker_count && elapsed_ms(&started) < 1000)
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
			/* Every daemon but the first was given the socket: none may close it. */
			if (w->daemon != NULL) {
				MHD_quiesce_daemon(w->daemon);
				MHD_stop_daemon(w->daemon);
			}
			if (w->loop_state != NULL)
				s->loop->detach(w->loop_state);
			if (w->epoll_fd >= 0)
				close(w->epoll_fd);
			if (w->wake_fd >= 0)
				close(w->wake_fd);
		}
		free(s->workers);
	}
	if (s->listener != MHD_INVALID_SOCKET)
		close(s->listener);
	read_deadline_stop(s->reader);
	rate_limit_free(s->limiter);
	http_metrics_free(s->metrics);
	free(s);
}

struct http_server *
http_server_start(const struct server_config *cfg, struct tls_server *tls,
                  const struct http_route *routes, size_t route_count, const struct http_loop *loop)
{
	struct http_server *s = calloc(1, sizeof(*s));
	struct http_worker *w;
	unsigned int i;

	if (s == NULL)
		goto fail;
	s->listener = MHD_INVALID_SOCKET;
	s->tls = tls;
	s->loop = loop;
	s->routes = routes;
	s->route_count = route_count;
	s->body_max_bytes = cfg->body_max_bytes;
	s->trust_forwarded_for = cfg->trust_forwarded_for;
	s->rate_limit_rps = cfg->rate_limit_rps;
	atomic_init(&s->in_flight, 0);
	atomic_init(&s->phase, PHASE_SERVING);
	atomic_init(&s->quiesced, 0);
	atomic_init(&s->aborted, 0);
	atomic_init(&s->next_id, 1);
	if (getrandom(&s->id_prefix, sizeof(s->id_prefix), 0) != sizeof(s->id_prefix))
		s->id_prefix = (unsigned long)getpid() ^ (unsigned long)time(NULL);
	s->reader = read_deadline_start(cfg->request_read_timeout_s);
	if (s->reader == NULL)
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
	s->metrics = http_metrics_new(routes, route_count, &s->in_flight, s->reader);
	if (s->metrics == NULL)
		goto fail;
	s->worker_count = cfg->threads > 0 ? cfg->threads : 1;
	s->workers = calloc(s->worker_count, sizeof(*s->workers));
	if (s->workers == NULL)
		goto fail;
	for (i = 0; i < s->worker_count; i++) {
		w = &s->workers[i];
		w->server = s;
		w->epoll_fd = w->wake_fd = w->loop_fd = -1;
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
	struct timespec started, pause = {0, 5 * 1000 * 1000};

	clock_gettime(CLOCK_MONOTONIC, &started);
	while (atomic_load(&s->in_flight) > 0 && elapsed_ms(&started) < timeout_ms)
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
