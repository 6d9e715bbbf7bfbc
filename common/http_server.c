/* libmicrohttpd set up once for both daemons: routing, bodies, answers, logging, drain. */
#include "http_server.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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

struct http_server {
	struct MHD_Daemon *daemon;
	const struct http_route *routes;
	size_t route_count;
	size_t body_max_bytes;
	atomic_uint in_flight;        /* exchanges created and not yet completed */
	atomic_int draining;          /* set once shutdown starts */
	atomic_ulong next_id;         /* counter part of generated request ids */
	unsigned long id_prefix;      /* random part of generated request ids */
	struct http_metrics *metrics; /* owned */
	struct rate_limiter *limiter; /* NULL when RATE_LIMIT_RPS is unset; owned */
	struct read_deadline *reader; /* REQUEST_READ_TIMEOUT_S; owned */
	struct tls_server *tls;       /* NULL without TLS; borrowed */
	MHD_socket listener;          /* quiesced listening socket, closed at stop */
	int trust_forwarded_for;
	double rate_limit_rps;
};

struct http_exchange {
	struct http_server *server;
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
exchange_new(struct http_server *s, struct MHD_Connection *c, const char *url, const char *method)
{
	struct http_exchange *ex = calloc(1, sizeof(*ex));
	const union MHD_ConnectionInfo *info;
	const char *id;

	if (ex == NULL)
		return NULL;
	ex->server = s;
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
	/* After this call the exchange belongs to the server thread again: touch nothing. */
	MHD_resume_connection(ex->connection);
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
	if (atomic_load(&ex->server->draining))
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
	struct http_server *s = cls;
	struct http_exchange *ex = *con_cls;

	(void)version;
	if (ex == NULL) {
		ex = exchange_new(s, connection, url, method);
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
	struct http_server *s = cls;
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
	struct http_server *s = cls;
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

static struct MHD_Daemon *
daemon_start(struct http_server *s, const struct server_config *cfg, unsigned int family_flag)
{
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | family_flag;
	struct MHD_OptionItem tls[] = {
	    {MHD_OPTION_HTTPS_MEM_CERT, 0, NULL},
	    {MHD_OPTION_HTTPS_MEM_KEY, 0, NULL},
	    {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_SERVER_PRIORITIES},
	    {MHD_OPTION_END, 0, NULL},
	};

	if (s->tls != NULL) {
		/* libmicrohttpd needs a certificate to start; each connection then takes the
		 * current one (tls_server_session_start), so reloads need no restart. */
		flags |= MHD_USE_TLS;
		tls[0].ptr_value = (void *)tls_server_cert_pem(s->tls);
		tls[1].ptr_value = (void *)tls_server_key_pem(s->tls);
	} else {
		tls[0].option = MHD_OPTION_END;
	}
	/* The logger comes first so that libmicrohttpd reports even its option errors through it.
	 */
	return MHD_start_daemon(
	    flags, (uint16_t)cfg->port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
	    on_mhd_log, NULL, MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)cfg->threads,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)cfg->connection_limit,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)cfg->connection_timeout_s,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION,
	    on_connection, s, MHD_OPTION_UNESCAPE_CALLBACK, unescape_path, NULL,
	    MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1, MHD_OPTION_ARRAY, tls,
	    MHD_OPTION_END);
}

struct http_server *
http_server_start(const struct server_config *cfg, struct tls_server *tls,
                  const struct http_route *routes, size_t route_count)
{
	struct http_server *s = calloc(1, sizeof(*s));

	if (s == NULL)
		goto fail;
	s->listener = MHD_INVALID_SOCKET;
	s->tls = tls;
	s->routes = routes;
	s->route_count = route_count;
	s->body_max_bytes = cfg->body_max_bytes;
	s->trust_forwarded_for = cfg->trust_forwarded_for;
	s->rate_limit_rps = cfg->rate_limit_rps;
	atomic_init(&s->in_flight, 0);
	atomic_init(&s->draining, 0);
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
	/* Both IPv6 and IPv4 where the host has IPv6, IPv4 alone where it does not. */
	s->daemon = daemon_start(s, cfg, MHD_USE_DUAL_STACK);
	if (s->daemon == NULL)
		s->daemon = daemon_start(s, cfg, 0);
	if (s->daemon == NULL)
		goto fail;
	return s;
fail:
	log_msg(LOG_ERROR, "cannot start the server on port %u", cfg->port);
	if (s != NULL) {
		read_deadline_stop(s->reader);
		rate_limit_free(s->limiter);
		http_metrics_free(s->metrics);
		free(s);
	}
	return NULL;
}

unsigned int
http_server_drain(struct http_server *s, unsigned int timeout_ms)
{
	struct timespec started, pause = {0, 5 * 1000 * 1000};
	/*
	 * Only the first drain quiesces. The listening socket is shut down at
	 * once, so new connections are refused, but closed only after
	 * MHD_stop_daemon(): server threads may still hold it until then.
	 */
	if (atomic_exchange(&s->draining, 1) == 0) {
		s->listener = MHD_quiesce_daemon(s->daemon);
		if (s->listener != MHD_INVALID_SOCKET)
			shutdown(s->listener, SHUT_RDWR);
	}
	clock_gettime(CLOCK_MONOTONIC, &started);
	while (atomic_load(&s->in_flight) > 0 && elapsed_ms(&started) < timeout_ms)
		nanosleep(&pause, NULL);
	return atomic_load(&s->in_flight);
}

void
http_server_stop(struct http_server *s)
{
	if (s == NULL)
		return;
	MHD_stop_daemon(s->daemon);
	if (s->listener != MHD_INVALID_SOCKET)
		close(s->listener);
	read_deadline_stop(s->reader);
	rate_limit_free(s->limiter);
	http_metrics_free(s->metrics);
	free(s);
}
