/* The libcurl multi loop that calls the responder for every GET / in flight. */
#include "upstream.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../common/buffer.h"
#include "../common/clock.h"
#include "../common/log.h"
#include "../common/metrics.h"
#include "breaker.h"
#include "retry.h"

#define POLL_MS 1000

/* How a call ended, for /metrics. */
enum outcome {
	OUTCOME_OK,
	OUTCOME_REFUSED,
	OUTCOME_TIMEOUT,
	OUTCOME_DNS,
	OUTCOME_HTTP_STATUS,
	OUTCOME_INVALID_BODY,
	OUTCOME_TOO_LARGE,
	OUTCOME_BREAKER_OPEN,
	OUTCOME_ERROR,
	OUTCOME_COUNT
};

static const char *const outcome_names[OUTCOME_COUNT] = {
    "ok",           "refused",   "timeout",      "dns",   "http_status",
    "invalid_body", "too_large", "breaker_open", "error",
};

/* A call asked for by a server thread, waiting for the upstream thread to start it. */
struct request {
	struct request *next;
	void *arg;
	struct curl_slist *headers; /* request id and trace context; owned */
};

/* A call in flight (or waiting to retry); owned by the upstream thread, reused for later calls. */
struct transfer {
	struct transfer *next; /* in the active, waiting or idle list */
	CURL *easy;
	struct curl_slist *headers;
	struct buffer body;
	int too_large;
	void *arg;
	unsigned int attempt;  /* 1 for the first */
	long long started_ms;  /* when the call (its first attempt) started */
	long long retry_at_ms; /* when a waiting transfer starts again */
	unsigned int tls_seen; /* the TLS settings' generation the handle took */
	char errbuf[CURL_ERROR_SIZE];
	char served_by[SERVED_BY_MAX];
};

struct upstream {
	struct upstream_config cfg;
	char *url; /* base_url + "/data"; owned */
	upstream_done done;
	void *context;
	CURLM *multi;
	pthread_t thread;
	pthread_mutex_t lock;  /* guards queue and stopping */
	struct request *queue; /* newest first */
	int stopping;
	int aborting;             /* upstream thread only: ending every call at shutdown */
	struct transfer *active;  /* upstream thread only */
	struct transfer *waiting; /* upstream thread only; backing off, soonest first */
	struct transfer *idle;    /* upstream thread only */
	uint64_t rng;             /* upstream thread only; backoff jitter */
	struct breaker breaker;
	struct retry_budget budget;
	atomic_ullong outcomes[OUTCOME_COUNT];
	struct histogram latency;
	unsigned long long emf_last[2]; /* calls and failures at the last EMF record */
};

/* A number in [0, 1) for backoff jitter (xorshift64*). */
static double
next_uniform(struct upstream *u)
{
	u->rng ^= u->rng >> 12;
	u->rng ^= u->rng << 25;
	u->rng ^= u->rng >> 27;
	return (double)((u->rng * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

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

/* libcurl's header callback: keeps the responder's X-Served-By, printable ASCII only. */
static size_t
on_header(char *line, size_t size, size_t count, void *arg)
{
	static const char name[] = "x-served-by:";
	struct transfer *t = arg;
	size_t len = size * count, i, n = 0;

	if (len > sizeof(name) - 1 && strncasecmp(line, name, sizeof(name) - 1) == 0) {
		for (i = sizeof(name) - 1; i < len && line[i] == ' '; i++)
			;
		for (; i < len && n < sizeof(t->served_by) - 1 && line[i] > ' ' && line[i] < 0x7f;
		     i++)
			t->served_by[n++] = line[i];
		t->served_by[n] = '\0';
	}
	return len;
}

/* Gives a transfer with an easy handle set up for the responder, reusing an idle one. */
static struct transfer *
transfer_get(struct upstream *u)
{
	struct transfer *t = u->idle;
	CURL *e;

	if (t != NULL) {
		u->idle = t->next;
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
	buffer_init(&t->body, u->cfg.max_bytes);
	/* Every option is checked: a silently ignored timeout would be a hang in production. */
	if (curl_easy_setopt(e, CURLOPT_URL, u->url) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_DNS_CACHE_TIMEOUT, u->cfg.dns_cache_s) != CURLE_OK ||
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

/*
 * Adds an attempt to the multi handle, with a timeout that ends it by the
 * call's deadline. Returns 0, or -1 when libcurl refuses it.
 */
static int
attempt_start(struct upstream *u, struct transfer *t, long long now)
{
	long long left = t->started_ms + u->cfg.timeout_ms - now;
	long timeout = (long)(left < u->cfg.attempt_timeout_ms ? left : u->cfg.attempt_timeout_ms);

	if (timeout < 1)
		timeout = 1;
	if (upstream_tls_apply(u->cfg.tls, t->easy, &t->tls_seen) != CURLE_OK ||
	    curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, timeout) != CURLE_OK ||
	    curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT_MS,
	                     timeout < u->cfg.connect_timeout_ms
	                         ? timeout
	                         : u->cfg.connect_timeout_ms) != CURLE_OK ||
	    curl_multi_add_handle(u->multi, t->easy) != CURLM_OK)
		return -1;
	t->next = u->active;
	u->active = t;
	return 0;
}

/* Says what an attempt gave: the span of stored_data when it is usable, why not otherwise. */
static enum outcome
judge(struct upstream *u, struct transfer *t, CURLcode code, struct upstream_result *r,
      long *status)
{
	char why[256];
	int found;

	*status = 0;
	if (code != CURLE_OK) {
		snprintf(r->reason, sizeof(r->reason), "%s",
		         t->errbuf[0] != '\0' ? t->errbuf : curl_easy_strerror(code));
		switch (code) {
		case CURLE_WRITE_ERROR:
		case CURLE_FILESIZE_EXCEEDED:
			if (!t->too_large && code == CURLE_WRITE_ERROR)
				return OUTCOME_ERROR;
			snprintf(r->reason, sizeof(r->reason),
			         "answer larger than UPSTREAM_MAX_BYTES (%zu bytes)",
			         u->cfg.max_bytes);
			return OUTCOME_TOO_LARGE;
		case CURLE_COULDNT_CONNECT:
			return OUTCOME_REFUSED;
		case CURLE_OPERATION_TIMEDOUT:
			return OUTCOME_TIMEOUT;
		case CURLE_COULDNT_RESOLVE_HOST:
			return OUTCOME_DNS;
		default:
			return OUTCOME_ERROR;
		}
	}
	if (curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, status) != CURLE_OK ||
	    *status != 200) {
		snprintf(r->reason, sizeof(r->reason), "HTTP %ld from %s", *status, u->url);
		return OUTCOME_HTTP_STATUS;
	}
	found = json_scan_member(r->body, r->body_len, "stored_data", &r->stored_data, why,
	                         sizeof(why));
	if (found < 0) {
		snprintf(r->reason, sizeof(r->reason), "invalid JSON from %s: %s", u->url, why);
		return OUTCOME_INVALID_BODY;
	}
	if (found == 0 || r->stored_data.type != '[') {
		snprintf(r->reason, sizeof(r->reason), "answer from %s has no stored_data array",
		         u->url);
		return OUTCOME_INVALID_BODY;
	}
	r->ok = 1;
	return OUTCOME_OK;
}

/*
 * Decides whether a failed attempt is tried again: only a refused connection
 * or a 503, within RETRY_MAX, within the budget, and only when the wait still
 * leaves time before the deadline. Schedules it and returns 1 when so.
 */
static int
retry_later(struct upstream *u, struct transfer *t, enum outcome o, long status, long long now)
{
	long long wait, deadline = t->started_ms + u->cfg.timeout_ms;
	struct transfer **p;

	if ((o != OUTCOME_REFUSED && !(o == OUTCOME_HTTP_STATUS && status == 503)) ||
	    t->attempt > u->cfg.retry_max)
		return 0;
	wait = retry_backoff_ms(t->attempt, u->cfg.retry_backoff_ms, next_uniform(u));
	/* An attempt that cannot get a few milliseconds before the deadline is not worth making. */
	if (now + wait + 5 >= deadline || !retry_budget_withdraw(&u->budget))
		return 0;
	t->attempt++;
	t->retry_at_ms = now + wait;
	transfer_reset(t);
	for (p = &u->waiting; *p != NULL && (*p)->retry_at_ms <= t->retry_at_ms; p = &(*p)->next)
		;
	t->next = *p;
	*p = t;
	return 1;
}

/* Hands a call's result to done() and counts it. */
static void
call_end(struct upstream *u, struct upstream_result *r, enum outcome o, void *arg)
{
	atomic_fetch_add(&u->outcomes[o], 1);
	u->done(r, u->context, arg);
}

/* Ends an attempt: retries it, or ends the call and keeps the transfer for the next call. */
static void
attempt_finish(struct upstream *u, struct transfer *t, CURLcode code)
{
	struct upstream_result r;
	curl_off_t total_us = 0;
	long long now = clock_ms();
	enum outcome o;
	long status;

	list_remove(&u->active, t);
	memset(&r, 0, sizeof(r));
	r.body = buffer_steal(&t->body, &r.body_len);
	o = judge(u, t, code, &r, &status);
	if (curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME_T, &total_us) == CURLE_OK)
		histogram_observe(&u->latency, (double)total_us / 1e6);
	if (!u->aborting && retry_later(u, t, o, status, now)) {
		free(r.body);
		return;
	}
	if (!u->aborting)
		breaker_record(&u->breaker, o == OUTCOME_OK, now);
	memcpy(r.served_by, t->served_by, sizeof(r.served_by));
	call_end(u, &r, o, t->arg);
	curl_slist_free_all(t->headers);
	t->headers = NULL;
	transfer_reset(t);
	t->next = u->idle;
	u->idle = t;
}

/* Ends a call that never got as far as an attempt. */
static void
call_fail(struct upstream *u, void *arg, enum outcome o, const char *why)
{
	struct upstream_result r;

	memset(&r, 0, sizeof(r));
	snprintf(r.reason, sizeof(r.reason), "%s", why);
	call_end(u, &r, o, arg);
}

/* Starts a queued call, unless the breaker is open; the transfer takes the request's headers. */
static void
request_start(struct upstream *u, struct request *q, long long now)
{
	struct transfer *t;
	long long wait = 0;
	char why[160];

	if (!breaker_allow(&u->breaker, now, &wait)) {
		snprintf(why, sizeof(why),
		         "circuit breaker open after %u failed calls in a row; next try in %lld ms",
		         u->breaker.failures, wait);
		call_fail(u, q->arg, OUTCOME_BREAKER_OPEN, why);
		return;
	}
	retry_budget_deposit(&u->budget);
	t = transfer_get(u);
	if (t == NULL) {
		breaker_record(&u->breaker, 0, now);
		call_fail(u, q->arg, OUTCOME_ERROR, "out of memory starting the call");
		return;
	}
	t->arg = q->arg;
	t->attempt = 1;
	t->started_ms = now;
	if (q->headers == NULL ||
	    curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, q->headers) != CURLE_OK ||
	    attempt_start(u, t, now) < 0) {
		t->next = u->idle;
		u->idle = t;
		breaker_record(&u->breaker, 0, now);
		call_fail(u, q->arg, OUTCOME_ERROR, "could not start the call");
		return;
	}
	t->headers = q->headers;
	q->headers = NULL;
}

/* Takes the queue, oldest first, so calls start in the order they were asked for. */
static struct request *
queue_take(struct upstream *u, int *stopping)
{
	struct request *q, *reversed = NULL, *next;

	pthread_mutex_lock(&u->lock);
	q = u->queue;
	u->queue = NULL;
	*stopping = u->stopping;
	pthread_mutex_unlock(&u->lock);
	for (; q != NULL; q = next) {
		next = q->next;
		q->next = reversed;
		reversed = q;
	}
	return reversed;
}

/* Starts the retries whose backoff is over; returns the ms until the next one, at most POLL_MS. */
static int
start_due_retries(struct upstream *u, long long now)
{
	struct transfer *t;

	while ((t = u->waiting) != NULL && t->retry_at_ms <= now) {
		u->waiting = t->next;
		if (attempt_start(u, t, now) < 0) {
			snprintf(t->errbuf, sizeof(t->errbuf), "could not start a retry");
			t->next = u->active;
			u->active = t;
			attempt_finish(u, t, CURLE_FAILED_INIT);
		}
	}
	if (u->waiting == NULL || u->waiting->retry_at_ms - now > POLL_MS)
		return POLL_MS;
	return (int)(u->waiting->retry_at_ms - now);
}

/* Ends every attempt still in flight or waiting; used when the caller shuts down. */
static void
abort_all(struct upstream *u)
{
	struct transfer *t;

	while ((t = u->waiting) != NULL) {
		u->waiting = t->next;
		t->next = u->active;
		u->active = t;
	}
	while ((t = u->active) != NULL) {
		curl_multi_remove_handle(u->multi, t->easy);
		snprintf(t->errbuf, sizeof(t->errbuf), "the caller is shutting down");
		attempt_finish(u, t, CURLE_ABORTED_BY_CALLBACK);
	}
}

/* The upstream thread: starts queued calls and due retries, drives them, ends them. */
static void *
upstream_loop(void *arg)
{
	struct upstream *u = arg;
	struct request *q, *next;
	struct CURLMsg *msg;
	int running, left, stopping, wait;

	for (;;) {
		for (q = queue_take(u, &stopping); q != NULL; q = next) {
			next = q->next;
			if (stopping)
				call_fail(u, q->arg, OUTCOME_ERROR, "the caller is shutting down");
			else
				request_start(u, q, clock_ms());
			curl_slist_free_all(q->headers);
			free(q);
		}
		if (stopping)
			break;
		wait = start_due_retries(u, clock_ms());
		if (curl_multi_perform(u->multi, &running) != CURLM_OK)
			log_msg(LOG_ERROR, "curl_multi_perform failed");
		while ((msg = curl_multi_info_read(u->multi, &left)) != NULL) {
			struct transfer *t = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
			curl_multi_remove_handle(u->multi, msg->easy_handle);
			attempt_finish(u, t, msg->data.result);
		}
		if (u->waiting != NULL)
			wait = start_due_retries(u, clock_ms());
		if (curl_multi_poll(u->multi, NULL, 0, wait, NULL) != CURLM_OK)
			log_msg(LOG_ERROR, "curl_multi_poll failed");
	}
	u->aborting = 1;
	abort_all(u);
	return NULL;
}

/* Prometheus text for calls to the responder: outcomes, latency, retries, the breaker. */
static void
render_metrics(struct buffer *out, void *arg)
{
	struct upstream *u = arg;
	size_t i;

	metrics_printf(out, "# HELP upstream_requests_total Calls to the responder by outcome.\n"
	                    "# TYPE upstream_requests_total counter\n");
	for (i = 0; i < OUTCOME_COUNT; i++)
		metrics_printf(out, "upstream_requests_total{outcome=\"%s\"} %llu\n",
		               outcome_names[i], atomic_load(&u->outcomes[i]));
	metrics_printf(out,
	               "# HELP upstream_request_duration_seconds Time one attempt to call the "
	               "responder took.\n# TYPE upstream_request_duration_seconds histogram\n");
	histogram_render(out, "upstream_request_duration_seconds", "", &u->latency);
	metrics_printf(
	    out,
	    "# HELP upstream_retries_total Attempts made again after a refused connection "
	    "or a 503.\n# TYPE upstream_retries_total counter\n"
	    "upstream_retries_total %llu\n"
	    "# HELP upstream_retry_budget_exhausted_total Retries not made for want of "
	    "budget.\n# TYPE upstream_retry_budget_exhausted_total counter\n"
	    "upstream_retry_budget_exhausted_total %llu\n"
	    "# HELP upstream_breaker_state 0 closed, 1 open, 2 half-open.\n"
	    "# TYPE upstream_breaker_state gauge\nupstream_breaker_state %d\n"
	    "# HELP upstream_breaker_transitions_total Times the breaker entered a state.\n"
	    "# TYPE upstream_breaker_transitions_total counter\n"
	    "upstream_breaker_transitions_total{state=\"closed\"} %llu\n"
	    "upstream_breaker_transitions_total{state=\"open\"} %llu\n"
	    "upstream_breaker_transitions_total{state=\"half_open\"} %llu\n",
	    atomic_load(&u->budget.retries), atomic_load(&u->budget.exhausted),
	    atomic_load(&u->breaker.state), atomic_load(&u->breaker.transitions[BREAKER_CLOSED]),
	    atomic_load(&u->breaker.transitions[BREAKER_OPEN]),
	    atomic_load(&u->breaker.transitions[BREAKER_HALF_OPEN]));
}

/* EMF figures: calls to the responder and failed calls since the last record. */
static void
emf_metrics(struct metrics_emf *emf, void *arg)
{
	struct upstream *u = arg;
	unsigned long long calls = 0, failures;
	size_t i;

	for (i = 0; i < OUTCOME_COUNT; i++)
		calls += atomic_load(&u->outcomes[i]);
	failures = calls - atomic_load(&u->outcomes[OUTCOME_OK]);
	metrics_emf_value(emf, "UpstreamCalls", "Count", (double)(calls - u->emf_last[0]));
	metrics_emf_value(emf, "UpstreamFailures", "Count", (double)(failures - u->emf_last[1]));
	metrics_emf_value(emf, "BreakerOpen", "Count",
	                  atomic_load(&u->breaker.state) == BREAKER_OPEN ? 1 : 0);
	u->emf_last[0] = calls;
	u->emf_last[1] = failures;
}

struct upstream *
upstream_start(const struct upstream_config *cfg, upstream_done done, void *context)
{
	struct upstream *u = calloc(1, sizeof(*u));
	size_t n;

	if (u == NULL)
		goto fail;
	u->cfg = *cfg;
	u->done = done;
	u->context = context;
	u->rng = (uint64_t)clock_ms() | 1;
	breaker_init(&u->breaker, cfg->breaker_threshold, cfg->breaker_cooldown_ms);
	retry_budget_init(&u->budget, cfg->retry_budget_percent);
	n = strlen(cfg->base_url) + sizeof("/data");
	u->url = malloc(n);
	if (u->url == NULL)
		goto fail;
	snprintf(u->url, n, "%s/data", cfg->base_url);
	u->multi = curl_multi_init();
	/*
	 * libcurl's own cache size follows the number of transfers added, and when
	 * calls come and go it closes connections that the next call then opens again
	 * (a new TLS handshake each time over https).
	 */
	if (u->multi == NULL ||
	    curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, cfg->keepalive_max) != CURLM_OK)
		goto fail;
	pthread_mutex_init(&u->lock, NULL);
	if (pthread_create(&u->thread, NULL, upstream_loop, u) != 0) {
		pthread_mutex_destroy(&u->lock);
		goto fail;
	}
	metrics_register(render_metrics, emf_metrics, u);
	return u;
fail:
	log_msg(LOG_ERROR, "cannot start the upstream thread");
	if (u != NULL) {
		if (u->multi != NULL)
			curl_multi_cleanup(u->multi);
		free(u->url);
		free(u);
	}
	return NULL;
}

void
upstream_fetch(struct upstream *u, const char *request_id, const struct trace *trace, void *request)
{
	struct request *q = calloc(1, sizeof(*q));
	char line[64 + TRACE_HEADER_MAX], value[TRACE_HEADER_MAX];
	struct curl_slist *h = NULL;

	if (q == NULL) {
		call_fail(u, request, OUTCOME_ERROR, "out of memory queueing the call");
		return;
	}
	/* Built here, on the server thread, where the request's own values are at hand. */
	snprintf(line, sizeof(line), "X-Request-Id: %s", request_id);
	h = curl_slist_append(h, line);
	trace_traceparent(trace, value);
	snprintf(line, sizeof(line), "traceparent: %s", value);
	h = h != NULL ? curl_slist_append(h, line) : NULL;
	trace_amzn(trace, value);
	snprintf(line, sizeof(line), "X-Amzn-Trace-Id: %s", value);
	h = h != NULL ? curl_slist_append(h, line) : NULL;
	q->arg = request;
	q->headers = h; /* NULL when memory ran out: the upstream thread fails the call */
	pthread_mutex_lock(&u->lock);
	if (u->stopping) {
		/* The thread is gone or going: nobody would ever answer a queued call. */
		pthread_mutex_unlock(&u->lock);
		curl_slist_free_all(q->headers);
		free(q);
		call_fail(u, request, OUTCOME_ERROR, "the caller is shutting down");
		return;
	}
	q->next = u->queue;
	u->queue = q;
	pthread_mutex_unlock(&u->lock);
	curl_multi_wakeup(u->multi);
}

void
upstream_stop(struct upstream *u)
{
	if (u == NULL)
		return;
	pthread_mutex_lock(&u->lock);
	u->stopping = 1;
	pthread_mutex_unlock(&u->lock);
	curl_multi_wakeup(u->multi);
	pthread_join(u->thread, NULL);
}

void
upstream_free(struct upstream *u)
{
	struct transfer *t;

	if (u == NULL)
		return;
	while ((t = u->idle) != NULL) {
		u->idle = t->next;
		transfer_free(t);
	}
	curl_multi_cleanup(u->multi);
	pthread_mutex_destroy(&u->lock);
	free(u->url);
	free(u);
}
