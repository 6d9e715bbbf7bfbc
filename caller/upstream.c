/* The calls to the responder for every GET / in flight, in each server thread's event loop. */
#include "upstream.h"

#include <curl/curl.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "../common/buffer.h"
#include "../common/clock.h"
#include "../common/daemon.h"
#include "../common/log.h"
#include "../common/metrics.h"
#include "../common/random.h"
#include "breaker.h"
#include "judge.h"
#include "retry.h"
#include "upstream_metrics.h"

/* Socket events taken from the thread's epoll set per turn of its loop. */
#define EVENTS_PER_TURN 32

/* Body buffers a server thread keeps at most (within UPSTREAM_BODY_CACHE_BYTES). */
#define SPARE_BODIES 16

/*
 * The large body buffers a server thread keeps for its next calls. A body of
 * DAEMON_MMAP_THRESHOLD_BYTES or more is a mapping of its own: filling a new
 * one costs a page fault and a zeroed page every 4 KiB and an unmap when it is
 * freed, about a tenth of the caller's time at 10,000 objects a store. Smaller
 * ones come from malloc's free lists and are not kept. Per thread, because
 * bodies are received and freed on the thread that made the call.
 */
struct spare_bodies {
	int open;           /* this thread makes calls and has not aborted: it may keep bodies */
	size_t max_bytes;   /* UPSTREAM_BODY_CACHE_BYTES */
	size_t bytes;       /* kept, in all */
	unsigned int count; /* kept */
	char *data[SPARE_BODIES];
	size_t cap[SPARE_BODIES];
};

static _Thread_local struct spare_bodies spares;

/* A call in flight (or waiting to retry); owned by one server thread, reused for its later calls.
 */
struct transfer {
	struct transfer *next; /* in the active, waiting, queued or idle list */
	struct upstream *u;    /* borrowed */
	CURL *easy;
	struct curl_slist *headers;
	struct buffer body;
	int too_large;
	int in_multi; /* added to the multi handle: counts in `running` */
	void *arg;
	unsigned int attempt;  /* 1 for the first */
	long long started_ms;  /* when the call (its first attempt) started */
	long long retry_at_ms; /* when a waiting transfer starts again */
	unsigned int tls_seen; /* the TLS settings' generation the handle took */
	char errbuf[CURL_ERROR_SIZE];
	char served_by[SERVED_BY_MAX];
	char version[APP_VERSION_MAX + 1];
	struct trace_call call; /* the call as the request's trace records it */
};

/* What every server thread shares. */
struct upstream {
	struct upstream_config cfg;
	char *url;  /* base_url + "/data"; owned */
	char *host; /* the responder's name in base_url, which traces call it by; owned */
	upstream_done done;
	void *context;
	struct metrics *registry; /* where the call figures are registered; borrowed */
	struct http_loop loop;
	pthread_mutex_t lock; /* guards breaker and budget, which every thread uses */
	struct breaker breaker;
	struct retry_budget budget;
	struct upstream_metrics metrics;
};

/* One server thread's calls; touched by that thread only. */
struct upstream_worker {
	struct upstream *u;
	CURLM *multi;
	int epoll_fd;             /* the sockets libcurl asked to watch */
	long long timer_at_ms;    /* when libcurl wants its timeout action; -1 for never */
	int aborting;             /* ending every call at shutdown; later calls fail at once */
	struct transfer *active;  /* in the multi handle */
	struct transfer *waiting; /* backing off, soonest first */
	struct transfer *queued;  /* waiting for one of the UPSTREAM_CALLS_MAX, deadline first */
	unsigned int running;     /* transfers in the multi handle */
	struct transfer *idle;
	struct random rng; /* backoff jitter */
};

/* libcurl's write callback: keeps the answer, up to UPSTREAM_MAX_BYTES. */
static size_t
on_body(char *data, size_t size, size_t count, void *arg)
{
	struct transfer *t = arg;

	if (buffer_append(&t->body, data, size * count) != BUFFER_OK) {
		t->too_large = 1;
		return 0; /* makes libcurl end the call with CURLE_WRITE_ERROR */
	}
	return size * count;
}

/*
 * When line (len bytes, not NUL-terminated) is the header name ("x-name:",
 * lower case), copies the first word of its value, printable ASCII only, into
 * out (size bytes, NUL included).
 */
static void
header_word(const char *line, size_t len, const char *name, char *out, size_t size)
{
	size_t i = strlen(name), n = 0;

	if (len <= i || strncasecmp(line, name, i) != 0)
		return;
	while (i < len && line[i] == ' ')
		i++;
	for (; i < len && n < size - 1 && line[i] > ' ' && line[i] < 0x7f; i++)
		out[n++] = line[i];
	out[n] = '\0';
}

/*
 * Gives an empty body buffer a kept allocation of at least length bytes (the
 * smallest that fits), when the thread has one; returns 1 when it did.
 */
static int
spare_body_take(struct buffer *body, size_t length)
{
	unsigned int i, best = SPARE_BODIES;

	if (body->data != NULL || length < DAEMON_MMAP_THRESHOLD_BYTES)
		return 0;
	for (i = 0; i < spares.count; i++)
		if (spares.cap[i] >= length &&
		    (best == SPARE_BODIES || spares.cap[i] < spares.cap[best]))
			best = i;
	if (best == SPARE_BODIES)
		return 0;
	buffer_adopt(body, spares.data[best], spares.cap[best]);
	spares.bytes -= spares.cap[best];
	spares.count--;
	spares.data[best] = spares.data[spares.count];
	spares.cap[best] = spares.cap[spares.count];
	return 1;
}

void
upstream_body_free(void *body)
{
	size_t cap;

	if (body == NULL)
		return;
	cap = malloc_usable_size(body);
	if (!spares.open || cap < DAEMON_MMAP_THRESHOLD_BYTES || spares.count == SPARE_BODIES ||
	    cap > spares.max_bytes - spares.bytes) {
		free(body);
		return;
	}
	spares.data[spares.count] = body;
	spares.cap[spares.count++] = cap;
	spares.bytes += cap;
}

/* At shutdown, on the thread: frees what it kept and keeps nothing more. */
static void
spare_bodies_close(void)
{
	while (spares.count > 0)
		free(spares.data[--spares.count]);
	spares.bytes = 0;
	spares.open = 0;
}

/* libcurl's header callback: keeps the responder's X-Served-By and X-App-Version. */
static size_t
on_header(char *line, size_t size, size_t count, void *arg)
{
	struct transfer *t = arg;
	size_t len = size * count;
	curl_off_t length = 0;

	header_word(line, len, "x-served-by:", t->served_by, sizeof(t->served_by));
	header_word(line, len, "x-app-version:", t->version, sizeof(t->version));
	/*
	 * Headers done: room for the whole body at once, in a kept buffer when the
	 * thread has one that fits (refused past UPSTREAM_MAX_BYTES).
	 */
	if (len <= 2 &&
	    curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length) == CURLE_OK &&
	    length > 0 && (size_t)length <= t->body.max) {
		if (spare_body_take(&t->body, (size_t)length))
			atomic_fetch_add_explicit(&t->u->metrics.bodies_reused, 1,
			                          memory_order_relaxed);
		else
			(void)buffer_reserve(&t->body, (size_t)length);
	}
	return len;
}

/* Gives a transfer with an easy handle set up for the responder, reusing an idle one. */
static struct transfer *
transfer_get(struct upstream_worker *w)
{
	struct upstream *u = w->u;
	struct transfer *t = w->idle;
	CURL *e;

	if (t != NULL) {
		w->idle = t->next;
		return t;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	e = curl_easy_init();
	if (e == NULL) {
		free(t);
		return NULL;
	}
	t->easy = e;
	t->u = u;
	buffer_init(&t->body, u->cfg.max_bytes);
	/* Every option is checked: a silently ignored timeout would be a hang in production. */
	if (curl_easy_setopt(e, CURLOPT_URL, u->url) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_DNS_CACHE_TIMEOUT, u->cfg.dns_cache_s) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, u->cfg.connection_reuse ? 0L : 1L) !=
	        CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)u->cfg.max_bytes) !=
	        CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, t) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_HEADERDATA, t) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PRIVATE, t) != CURLE_OK) {
		log_msg(LOG_ERROR, "libcurl refused an option for %s", u->url);
		curl_easy_cleanup(e);
		free(t);
		return NULL;
	}
	return t;
}

static void
transfer_free(struct transfer *t)
{
	curl_easy_cleanup(t->easy);
	curl_slist_free_all(t->headers);
	buffer_free(&t->body);
	free(t);
}

/* Forgets what the last attempt received, so the transfer can be tried again or reused. */
static void
transfer_reset(struct transfer *t)
{
	buffer_free(&t->body);
	t->too_large = 0;
	t->errbuf[0] = '\0';
	t->served_by[0] = '\0';
	t->version[0] = '\0';
}

static void
list_remove(struct transfer **list, struct transfer *t)
{
	for (; *list != NULL; list = &(*list)->next) {
		if (*list == t) {
			*list = t->next;
			return;
		}
	}
}

/* When the call must have ended: UPSTREAM_TIMEOUT_MS after its first attempt started. */
static long long
call_deadline(const struct upstream *u, const struct transfer *t)
{
	return t->started_ms + u->cfg.timeout_ms;
}

/*
 * Adds an attempt to the multi handle, with a timeout that ends it by the
 * call's deadline. Returns 0, or -1 when libcurl refuses it.
 */
static int
attempt_start(struct upstream_worker *w, struct transfer *t, long long now)
{
	struct upstream *u = w->u;
	long long left = call_deadline(u, t) - now;
	long timeout = (long)(left < u->cfg.attempt_timeout_ms ? left : u->cfg.attempt_timeout_ms);

	if (timeout < 1)
		timeout = 1;
	if (upstream_tls_apply(u->cfg.tls, t->easy, &t->tls_seen) != CURLE_OK ||
	    curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, timeout) != CURLE_OK ||
	    curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT_MS,
	                     timeout < u->cfg.connect_timeout_ms
	                         ? timeout
	                         : u->cfg.connect_timeout_ms) != CURLE_OK ||
	    curl_multi_add_handle(w->multi, t->easy) != CURLM_OK)
		return -1;
	t->in_multi = 1;
	w->running++;
	t->next = w->active;
	w->active = t;
	return 0;
}

/*
 * Starts an attempt when fewer than UPSTREAM_CALLS_MAX are in the multi handle;
 * otherwise queues it, its deadline running. libcurl's own queue (past
 * CURLMOPT_MAX_TOTAL_CONNECTIONS) is not used: it starts a queued transfer on
 * a connection as soon as the previous one ends, so within one turn of the
 * loop a connection can receive several whole answers, and the answers
 * received before the turn hands them on are bounded only by the calls
 * waiting. With at most UPSTREAM_CALLS_MAX transfers in the multi handle,
 * at most that many answers are ever held by libcurl's side of the loop.
 */
static int
attempt_begin(struct upstream_worker *w, struct transfer *t, long long now)
{
	struct transfer **p;

	if (w->running < (unsigned long)w->u->cfg.calls_max)
		return attempt_start(w, t, now);
	/* Every call has the same timeout: the earlier it started, the sooner its deadline. */
	for (p = &w->queued; *p != NULL && (*p)->started_ms <= t->started_ms; p = &(*p)->next)
		;
	t->next = *p;
	*p = t;
	return 0;
}

/*
 * Schedules a failed attempt to be made again when retry_decide() and the
 * shared retry budget allow it; returns 1 when so, 0 when the call ends here.
 */
static int
retry_later(struct upstream_worker *w, struct transfer *t, enum upstream_outcome o, long status,
            long long now)
{
	struct upstream *u = w->u;
	struct failed_attempt f = {
	    .retryable = judge_retryable(o, status),
	    .attempt = t->attempt,
	    .retry_max = u->cfg.retry_max,
	    .base_ms = u->cfg.retry_backoff_ms,
	    .uniform = random_uniform(&w->rng),
	    .now_ms = now,
	    .deadline_ms = call_deadline(u, t),
	};
	long long wait = retry_decide(&f);
	struct transfer **p;
	int granted;

	if (wait < 0)
		return 0;
	pthread_mutex_lock(&u->lock);
	granted = retry_budget_withdraw(&u->budget);
	pthread_mutex_unlock(&u->lock);
	if (!granted)
		return 0;
	t->attempt++;
	t->retry_at_ms = now + wait;
	transfer_reset(t);
	for (p = &w->waiting; *p != NULL && (*p)->retry_at_ms <= t->retry_at_ms; p = &(*p)->next)
		;
	t->next = *p;
	*p = t;
	return 1;
}

/* Hands a call's result to done() and counts it. */
static void
call_end(struct upstream *u, struct upstream_result *r, enum upstream_outcome o, void *arg)
{
	upstream_metrics_count(&u->metrics, o);
	u->done(r, u->context, arg);
}

/* Tells the shared breaker how a call ended. */
static void
breaker_note(struct upstream *u, int succeeded, long long now)
{
	pthread_mutex_lock(&u->lock);
	breaker_record(&u->breaker, succeeded, now);
	pthread_mutex_unlock(&u->lock);
}

/* Ends an attempt: retries it, or ends the call and keeps the transfer for the next call. */
static void
attempt_finish(struct upstream_worker *w, struct transfer *t, CURLcode code)
{
	struct upstream *u = w->u;
	struct upstream_result r;
	curl_off_t total_us = 0;
	long long now = clock_ms();
	struct attempt_report report = {
	    .code = code,
	    .error = t->errbuf,
	    .status = 0,
	    .too_large = t->too_large,
	    .max_bytes = u->cfg.max_bytes,
	    .url = u->url,
	};
	enum upstream_outcome o;
	int ran = t->in_multi; /* a queued call that timed out never ran */

	if (ran) {
		list_remove(&w->active, t);
		t->in_multi = 0;
		w->running--;
	}
	/* A transfer that ended without an answer has no status. */
	if (code == CURLE_OK &&
	    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &report.status) != CURLE_OK)
		report.status = 0;
	memset(&r, 0, sizeof(r));
	r.body = buffer_steal(&t->body, &r.body_len);
	o = judge_attempt(&report, &r);
	if (ran && curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME_T, &total_us) == CURLE_OK)
		upstream_metrics_latency(&u->metrics, (double)total_us / 1e6);
	if (!w->aborting && retry_later(w, t, o, report.status, now)) {
		free(r.body);
		return;
	}
	if (!w->aborting)
		breaker_note(u, o == OUTCOME_OK, now);
	memcpy(r.served_by, t->served_by, sizeof(r.served_by));
	memcpy(r.version, t->version, sizeof(r.version));
	r.call = t->call;
	r.call.end_s = clock_epoch_seconds();
	r.call.status = (int)report.status;
	r.call.bytes = r.body_len;
	r.call.attempts = ran ? t->attempt : t->attempt - 1;
	if (o != OUTCOME_OK)
		snprintf(r.call.error, sizeof(r.call.error), "%s", r.reason);
	call_end(u, &r, o, t->arg);
	curl_slist_free_all(t->headers);
	t->headers = NULL;
	transfer_reset(t);
	t->next = w->idle;
	w->idle = t;
}

/* Ends a call that never got as far as an attempt; call is how its trace records it. */
static void
call_fail(struct upstream *u, void *arg, enum upstream_outcome o, const char *why,
          const struct trace_call *call)
{
	struct upstream_result r;

	memset(&r, 0, sizeof(r));
	snprintf(r.reason, sizeof(r.reason), "%s", why);
	r.call = *call;
	r.call.end_s = clock_epoch_seconds();
	snprintf(r.call.error, sizeof(r.call.error), "%s", why);
	call_end(u, &r, o, arg);
}

/* The request headers that carry the request id and trace context on; NULL when memory ran out. */
static struct curl_slist *
call_headers(const char *request_id, const struct trace *trace)
{
	char line[64 + TRACE_HEADER_MAX], value[TRACE_HEADER_MAX];
	struct curl_slist *h = NULL;

	snprintf(line, sizeof(line), "X-Request-Id: %s", request_id);
	h = curl_slist_append(h, line);
	trace_traceparent(trace, value);
	snprintf(line, sizeof(line), "traceparent: %s", value);
	h = h != NULL ? curl_slist_append(h, line) : NULL;
	trace_amzn(trace, value);
	snprintf(line, sizeof(line), "X-Amzn-Trace-Id: %s", value);
	h = h != NULL ? curl_slist_append(h, line) : NULL;
	return h;
}

void
upstream_fetch(struct upstream_worker *w, const char *request_id, const struct trace *trace,
               void *request)
{
	struct upstream *u = w->u;
	struct curl_slist *headers;
	struct transfer *t;
	struct trace child;
	struct trace_call call = {.name = u->host, .url = u->url};
	long long wait = 0, now = clock_ms();
	unsigned int failures = 0;
	char why[160];
	int allowed;

	/* The call is a span of its own: the responder's segment names it as its parent. */
	trace_child(trace, &child);
	memcpy(call.span_id, child.span_id, sizeof(call.span_id));
	call.start_s = clock_epoch_seconds();
	if (w->aborting) {
		call.breaker = breaker_state_name(atomic_load(&u->breaker.state));
		call_fail(u, request, OUTCOME_ERROR, "the caller is shutting down", &call);
		return;
	}
	/* This thread makes calls: it may keep their large bodies until it aborts. */
	if (!spares.open) {
		spares.open = 1;
		spares.max_bytes = u->cfg.body_cache_bytes;
	}
	pthread_mutex_lock(&u->lock);
	allowed = breaker_allow(&u->breaker, now, &wait);
	failures = u->breaker.failures;
	if (allowed)
		retry_budget_deposit(&u->budget);
	call.breaker = breaker_state_name(atomic_load(&u->breaker.state));
	pthread_mutex_unlock(&u->lock);
	call.breaker_allowed = allowed;
	if (!allowed) {
		snprintf(why, sizeof(why),
		         "circuit breaker open after %u failed calls in a row; next try in %lld ms",
		         failures, wait);
		call_fail(u, request, OUTCOME_BREAKER_OPEN, why, &call);
		return;
	}
	t = transfer_get(w);
	headers = t != NULL ? call_headers(request_id, &child) : NULL;
	if (t == NULL || headers == NULL) {
		if (t != NULL) {
			t->next = w->idle;
			w->idle = t;
		}
		breaker_note(u, 0, now);
		call_fail(u, request, OUTCOME_ERROR, "out of memory starting the call", &call);
		return;
	}
	t->arg = request;
	t->call = call;
	t->attempt = 1;
	t->started_ms = now;
	t->headers = headers;
	if (curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
	    attempt_begin(w, t, now) < 0) {
		curl_slist_free_all(t->headers);
		t->headers = NULL;
		t->next = w->idle;
		w->idle = t;
		breaker_note(u, 0, now);
		call_fail(u, request, OUTCOME_ERROR, "could not start the call", &call);
	}
}

/* Starts the retries whose backoff is over; returns the ms until the next one, or -1. */
static long
start_due_retries(struct upstream_worker *w, long long now)
{
	struct transfer *t;

	while ((t = w->waiting) != NULL && t->retry_at_ms <= now) {
		w->waiting = t->next;
		if (attempt_begin(w, t, now) < 0) {
			snprintf(t->errbuf, sizeof(t->errbuf), "could not start a retry");
			attempt_finish(w, t, CURLE_FAILED_INIT);
		}
	}
	return w->waiting != NULL ? (long)(w->waiting->retry_at_ms - now) : -1;
}

/*
 * Starts queued calls while fewer than UPSTREAM_CALLS_MAX run, and ends the
 * queued calls whose deadline has passed. Returns the ms until the next
 * queued deadline, or -1.
 */
static long
start_queued(struct upstream_worker *w, long long now)
{
	long long deadline;
	struct transfer *t;

	while ((t = w->queued) != NULL) {
		deadline = call_deadline(w->u, t);
		if (deadline > now && w->running >= (unsigned long)w->u->cfg.calls_max)
			return (long)(deadline - now);
		w->queued = t->next;
		if (deadline <= now) {
			snprintf(t->errbuf, sizeof(t->errbuf),
			         "Operation timed out after %lld milliseconds waiting for one of "
			         "UPSTREAM_CALLS_MAX (%ld) calls",
			         now - t->started_ms, w->u->cfg.calls_max);
			attempt_finish(w, t, CURLE_OPERATION_TIMEDOUT);
		} else if (attempt_start(w, t, now) < 0) {
			snprintf(t->errbuf, sizeof(t->errbuf), "could not start the call");
			attempt_finish(w, t, CURLE_FAILED_INIT);
		}
	}
	return -1;
}

/* Ends the attempts libcurl has finished. */
static void
finish_done(struct upstream_worker *w)
{
	struct transfer *t;
	struct CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(w->multi, &left)) != NULL) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		t = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
		curl_multi_remove_handle(w->multi, msg->easy_handle);
		attempt_finish(w, t, msg->data.result);
	}
}

/* libcurl's socket callback: keeps the thread's epoll set in step with what libcurl waits for. */
static int
on_socket(CURL *easy, curl_socket_t fd, int what, void *arg, void *socket_arg)
{
	struct upstream_worker *w = arg;
	struct epoll_event ev = {.data.fd = fd};

	(void)easy;
	(void)socket_arg;
	if (what == CURL_POLL_REMOVE) {
		/* libcurl may have closed the socket already, which removed it. */
		epoll_ctl(w->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
		return 0;
	}
	ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
	if (epoll_ctl(w->epoll_fd, EPOLL_CTL_MOD, fd, &ev) == 0 ||
	    (errno == ENOENT && epoll_ctl(w->epoll_fd, EPOLL_CTL_ADD, fd, &ev) == 0))
		return 0;
	log_msg(LOG_ERROR, "cannot watch a socket to the responder: %s", strerror(errno));
	return -1;
}

/* libcurl's timer callback: when it next wants curl_multi_socket_action(CURL_SOCKET_TIMEOUT). */
static int
on_timer(CURLM *multi, long timeout_ms, void *arg)
{
	struct upstream_worker *w = arg;

	(void)multi;
	w->timer_at_ms = timeout_ms < 0 ? -1 : clock_ms() + timeout_ms;
	return 0;
}

/* How libcurl is told what a socket is ready for, the way its own poll() use reads it. */
static int
socket_action_flags(uint32_t events)
{
	return ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_IN : 0) |
	       ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_OUT : 0);
}

/*
 * The thread's turn: hands libcurl the sockets that are ready and its due
 * timeout, ends what finished, starts due retries. Returns the ms until
 * something is due again, or -1.
 */
static long
worker_run(void *state, int ready)
{
	struct upstream_worker *w = state;
	struct epoll_event events[EVENTS_PER_TURN];
	long long now;
	long retry_ms, queued_ms;
	int n = 0, i, running;

	if (ready)
		n = epoll_wait(w->epoll_fd, events, EVENTS_PER_TURN, 0);
	for (i = 0; i < n; i++)
		if (curl_multi_socket_action(w->multi, events[i].data.fd,
		                             socket_action_flags(events[i].events),
		                             &running) != CURLM_OK)
			log_msg(LOG_ERROR, "curl_multi_socket_action failed");
	if (w->timer_at_ms >= 0 && w->timer_at_ms <= clock_ms()) {
		w->timer_at_ms = -1;
		if (curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running) !=
		    CURLM_OK)
			log_msg(LOG_ERROR, "curl_multi_socket_action failed");
	}
	finish_done(w);
	now = clock_ms();
	retry_ms = start_due_retries(w, now);
	queued_ms = start_queued(w, now);
	if (queued_ms >= 0 && (retry_ms < 0 || queued_ms < retry_ms))
		retry_ms = queued_ms;
	if (w->timer_at_ms < 0)
		return retry_ms;
	if (retry_ms < 0 || w->timer_at_ms - now < retry_ms)
		return w->timer_at_ms > now ? (long)(w->timer_at_ms - now) : 0;
	return retry_ms;
}

/* At shutdown: ends every attempt in flight or waiting, each call with an error. */
static void
worker_abort(void *state)
{
	struct upstream_worker *w = state;
	struct transfer *t;

	w->aborting = 1;
	while ((t = w->waiting) != NULL) {
		w->waiting = t->next;
		snprintf(t->errbuf, sizeof(t->errbuf), "the caller is shutting down");
		attempt_finish(w, t, CURLE_ABORTED_BY_CALLBACK);
	}
	while ((t = w->queued) != NULL) {
		w->queued = t->next;
		snprintf(t->errbuf, sizeof(t->errbuf), "the caller is shutting down");
		attempt_finish(w, t, CURLE_ABORTED_BY_CALLBACK);
	}
	while ((t = w->active) != NULL) {
		curl_multi_remove_handle(w->multi, t->easy);
		snprintf(t->errbuf, sizeof(t->errbuf), "the caller is shutting down");
		attempt_finish(w, t, CURLE_ABORTED_BY_CALLBACK);
	}
	spare_bodies_close();
}

static void
worker_free(void *state)
{
	struct upstream_worker *w = state;
	struct transfer *t;

	if (w == NULL)
		return;
	while ((t = w->idle) != NULL) {
		w->idle = t->next;
		transfer_free(t);
	}
	if (w->multi != NULL)
		curl_multi_cleanup(w->multi);
	if (w->epoll_fd >= 0)
		close(w->epoll_fd);
	free(w);
}

/* Makes one server thread's multi handle and epoll set; NULL after logging why. */
static void *
worker_new(void *arg, int *fd)
{
	struct upstream *u = arg;
	struct upstream_worker *w = calloc(1, sizeof(*w));

	if (w == NULL)
		goto fail;
	w->u = u;
	w->timer_at_ms = -1;
	random_seed(&w->rng, random_secure_seed());
	w->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	w->multi = curl_multi_init();
	/*
	 * libcurl's own cache size follows the number of transfers added, and when
	 * calls come and go it closes connections that the next call then opens again
	 * (a new TLS handshake each time over https). UPSTREAM_CALLS_MAX bounds the
	 * connections in use, so the calls in flight and the responder answers being
	 * received at once: further calls wait in libcurl's queue, deadlines running.
	 */
	if (w->epoll_fd < 0 || w->multi == NULL ||
	    curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, u->cfg.keepalive_max) != CURLM_OK ||
	    curl_multi_setopt(w->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, u->cfg.calls_max) !=
	        CURLM_OK ||
	    curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
	    curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w) != CURLM_OK ||
	    curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, on_timer) != CURLM_OK ||
	    curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w) != CURLM_OK)
		goto fail;
	*fd = w->epoll_fd;
	return w;
fail:
	log_msg(LOG_ERROR, "cannot set up calls to the responder for a server thread");
	worker_free(w);
	*fd = -1;
	return NULL;
}

/* The host name in url, as traces name the service it reaches; caller frees. NULL on failure. */
static char *
url_host(const char *url)
{
	CURLU *h = curl_url();
	char *host = NULL, *copy = NULL;

	if (h != NULL && curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		copy = strdup(host);
	curl_free(host);
	curl_url_cleanup(h);
	return copy;
}

struct upstream *
upstream_new(const struct upstream_config *cfg, struct metrics *registry, upstream_done done,
             void *context)
{
	struct upstream *u = calloc(1, sizeof(*u));
	size_t n;

	if (u == NULL)
		goto fail;
	u->cfg = *cfg;
	u->done = done;
	u->context = context;
	breaker_init(&u->breaker, cfg->breaker_threshold, cfg->breaker_cooldown_ms);
	retry_budget_init(&u->budget, cfg->retry_budget_percent);
	upstream_metrics_init(&u->metrics, &u->budget, &u->breaker);
	n = strlen(cfg->base_url) + sizeof("/data");
	u->url = malloc(n);
	if (u->url == NULL)
		goto fail;
	snprintf(u->url, n, "%s/data", cfg->base_url);
	u->host = url_host(cfg->base_url);
	if (u->host == NULL)
		goto fail;
	/* Registered before serving starts, so nothing renders the figures until then. */
	u->registry = registry;
	if (metrics_register(registry, upstream_metrics_render, upstream_metrics_emf, &u->metrics) <
	    0)
		goto fail;
	pthread_mutex_init(&u->lock, NULL);
	u->loop.attach = worker_new;
	u->loop.run = worker_run;
	u->loop.abort = worker_abort;
	u->loop.detach = worker_free;
	u->loop.arg = u;
	return u;
fail:
	log_msg(LOG_ERROR, "out of memory setting up calls to the responder");
	if (u != NULL) {
		free(u->url);
		free(u->host);
	}
	free(u);
	return NULL;
}

const struct http_loop *
upstream_loop(struct upstream *u)
{
	return &u->loop;
}

void
upstream_free(struct upstream *u)
{
	if (u == NULL)
		return;
	metrics_unregister(u->registry, &u->metrics);
	pthread_mutex_destroy(&u->lock);
	free(u->url);
	free(u->host);
	free(u);
}
