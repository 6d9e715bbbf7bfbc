/* The libcurl multi loop that calls the responder for every GET / in flight. */
#include "upstream.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buffer.h"
#include "../common/log.h"

#define REQUEST_ID_MAX 64
#define POLL_MS        1000

/* A call asked for by a server thread, waiting for the upstream thread to start it. */
struct request {
	struct request *next;
	void *arg;
	char request_id[REQUEST_ID_MAX + 1];
};

/* A call in flight; owned by the upstream thread, reused for later calls. */
struct transfer {
	struct transfer *next; /* in the active or the idle list */
	CURL *easy;
	struct curl_slist *headers;
	struct buffer body;
	int too_large;
	void *arg;
	char errbuf[CURL_ERROR_SIZE];
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
	struct transfer *active; /* upstream thread only */
	struct transfer *idle;   /* upstream thread only */
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

/* Gives a transfer with an easy handle set up for the responder, reusing an idle one when there is
 * one. */
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
	    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, u->cfg.timeout_ms) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, u->cfg.connect_timeout_ms) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_DNS_CACHE_TIMEOUT, u->cfg.dns_cache_s) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)u->cfg.max_bytes) !=
	        CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, t) != CURLE_OK ||
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

/* Says what the call gave: the span of stored_data when it is usable, why not otherwise. */
static void
judge(struct upstream *u, struct transfer *t, CURLcode code, struct upstream_result *r)
{
	char why[256];
	long status = 0;
	int found;

	if (code != CURLE_OK) {
		if (t->too_large || code == CURLE_FILESIZE_EXCEEDED)
			snprintf(r->reason, sizeof(r->reason),
			         "answer larger than UPSTREAM_MAX_BYTES (%zu bytes)",
			         u->cfg.max_bytes);
		else
			snprintf(r->reason, sizeof(r->reason), "%s",
			         t->errbuf[0] != '\0' ? t->errbuf : curl_easy_strerror(code));
		return;
	}
	if (curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK ||
	    status != 200) {
		snprintf(r->reason, sizeof(r->reason), "HTTP %ld from %s", status, u->url);
		return;
	}
	found = json_scan_member(r->body, r->body_len, "stored_data", &r->stored_data, why,
	                         sizeof(why));
	if (found < 0)
		snprintf(r->reason, sizeof(r->reason), "invalid JSON from %s: %s", u->url, why);
	else if (found == 0 || r->stored_data.type != '[')
		snprintf(r->reason, sizeof(r->reason), "answer from %s has no stored_data array",
		         u->url);
	else
		r->ok = 1;
}

/* Ends a call: hands the result to done() and keeps the transfer for the next call. */
static void
transfer_finish(struct upstream *u, struct transfer *t, CURLcode code)
{
	struct upstream_result r;
	struct transfer **p;

	memset(&r, 0, sizeof(r));
	r.body = buffer_steal(&t->body, &r.body_len);
	judge(u, t, code, &r);
	u->done(&r, u->context, t->arg);
	for (p = &u->active; *p != NULL; p = &(*p)->next) {
		if (*p == t) {
			*p = t->next;
			break;
		}
	}
	curl_slist_free_all(t->headers);
	t->headers = NULL;
	t->too_large = 0;
	t->errbuf[0] = '\0';
	t->next = u->idle;
	u->idle = t;
}

/* Ends a request that never got as far as a transfer. */
static void
request_fail(struct upstream *u, void *arg, const char *why)
{
	struct upstream_result r;

	memset(&r, 0, sizeof(r));
	snprintf(r.reason, sizeof(r.reason), "%s", why);
	u->done(&r, u->context, arg);
}

/* Turns a queued request into a transfer in the multi handle. */
static void
request_start(struct upstream *u, struct request *q)
{
	char header[32 + REQUEST_ID_MAX];
	struct transfer *t = transfer_get(u);
	struct curl_slist *h;

	if (t == NULL) {
		request_fail(u, q->arg, "out of memory starting the call");
		return;
	}
	t->arg = q->arg;
	snprintf(header, sizeof(header), "X-Request-Id: %s", q->request_id);
	h = curl_slist_append(NULL, header);
	if (h == NULL || curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, h) != CURLE_OK ||
	    curl_multi_add_handle(u->multi, t->easy) != CURLM_OK) {
		curl_slist_free_all(h);
		t->next = u->idle;
		u->idle = t;
		request_fail(u, q->arg, "could not start the call");
		return;
	}
	t->headers = h;
	t->next = u->active;
	u->active = t;
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

/* The upstream thread: starts queued calls, drives them, ends them. */
static void *
upstream_loop(void *arg)
{
	struct upstream *u = arg;
	struct request *q, *next;
	struct CURLMsg *msg;
	int running, left, stopping;

	for (;;) {
		for (q = queue_take(u, &stopping); q != NULL; q = next) {
			next = q->next;
			if (stopping)
				request_fail(u, q->arg, "the caller is shutting down");
			else
				request_start(u, q);
			free(q);
		}
		if (stopping)
			break;
		if (curl_multi_perform(u->multi, &running) != CURLM_OK)
			log_msg(LOG_ERROR, "curl_multi_perform failed");
		while ((msg = curl_multi_info_read(u->multi, &left)) != NULL) {
			struct transfer *t = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
			curl_multi_remove_handle(u->multi, msg->easy_handle);
			transfer_finish(u, t, msg->data.result);
		}
		if (curl_multi_poll(u->multi, NULL, 0, POLL_MS, NULL) != CURLM_OK)
			log_msg(LOG_ERROR, "curl_multi_poll failed");
	}
	while (u->active != NULL) {
		curl_multi_remove_handle(u->multi, u->active->easy);
		snprintf(u->active->errbuf, sizeof(u->active->errbuf),
		         "the caller is shutting down");
		transfer_finish(u, u->active, CURLE_ABORTED_BY_CALLBACK);
	}
	return NULL;
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
	n = strlen(cfg->base_url) + sizeof("/data");
	u->url = malloc(n);
	if (u->url == NULL)
		goto fail;
	snprintf(u->url, n, "%s/data", cfg->base_url);
	u->multi = curl_multi_init();
	if (u->multi == NULL)
		goto fail;
	pthread_mutex_init(&u->lock, NULL);
	if (pthread_create(&u->thread, NULL, upstream_loop, u) != 0) {
		pthread_mutex_destroy(&u->lock);
		goto fail;
	}
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
upstream_fetch(struct upstream *u, const char *request_id, void *request)
{
	struct request *q = calloc(1, sizeof(*q));

	if (q == NULL) {
		request_fail(u, request, "out of memory queueing the call");
		return;
	}
	q->arg = request;
	snprintf(q->request_id, sizeof(q->request_id), "%s", request_id);
	pthread_mutex_lock(&u->lock);
	q->next = u->queue;
	u->queue = q;
	pthread_mutex_unlock(&u->lock);
	curl_multi_wakeup(u->multi);
}

void
upstream_stop(struct upstream *u)
{
	struct transfer *t;

	if (u == NULL)
		return;
	pthread_mutex_lock(&u->lock);
	u->stopping = 1;
	pthread_mutex_unlock(&u->lock);
	curl_multi_wakeup(u->multi);
	pthread_join(u->thread, NULL);
	while ((t = u->idle) != NULL) {
		u->idle = t->next;
		transfer_free(t);
	}
	curl_multi_cleanup(u->multi);
	pthread_mutex_destroy(&u->lock);
	free(u->url);
	free(u);
}
