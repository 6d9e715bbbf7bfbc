/* The metrics registry, Prometheus rendering, histograms, and the EMF writer thread. */
#include "metrics.h"

#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

#define EMF_VALUES   32
#define EMF_LINE_MAX 8192

static const double bucket_bounds[METRICS_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
};
static const char *const bucket_labels[METRICS_BUCKETS + 1] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1",    "0.25",  "0.5",    "1",     "2.5",  "+Inf",
};

struct source {
	metrics_render_fn render;
	metrics_emf_fn emf;
	void *arg;
};

struct metrics_emf {
	size_t count;
	const char *names[EMF_VALUES];
	const char *units[EMF_VALUES];
	double values[EMF_VALUES];
};

/* The thread that writes EMF lines, when METRICS_EMF is on. */
struct emf_writer {
	pthread_t thread;
	pthread_mutex_t lock; /* guards stopping */
	pthread_cond_t wake;
	int running;
	int stopping;
	unsigned int interval_s;
	const char *ns;
	const char *service;
};

struct metrics {
	pthread_mutex_t lock; /* guards sources: rendering may meet a late registration */
	struct source *sources;
	size_t count;
	size_t cap;
	struct emf_writer emf;
};

struct metrics *
metrics_new(void)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	pthread_mutex_init(&m->lock, NULL);
	pthread_mutex_init(&m->emf.lock, NULL);
	pthread_cond_init(&m->emf.wake, NULL);
	return m;
}

void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	metrics_emf_stop(m);
	pthread_cond_destroy(&m->emf.wake);
	pthread_mutex_destroy(&m->emf.lock);
	pthread_mutex_destroy(&m->lock);
	free(m->sources);
	free(m);
}

int
metrics_register(struct metrics *m, metrics_render_fn render, metrics_emf_fn emf, void *arg)
{
	struct source *grown;
	int rc = -1;

	pthread_mutex_lock(&m->lock);
	if (m->count == m->cap) {
		grown = realloc(m->sources, (m->cap + 8) * sizeof(*grown));
		if (grown == NULL) {
			log_msg(LOG_ERROR, "out of memory registering a metrics source");
			goto out;
		}
		m->sources = grown;
		m->cap += 8;
	}
	m->sources[m->count++] = (struct source){render, emf, arg};
	rc = 0;
out:
	pthread_mutex_unlock(&m->lock);
	return rc;
}

void
metrics_unregister(struct metrics *m, const void *arg)
{
	size_t i, kept = 0;

	assert(arg != NULL);
	pthread_mutex_lock(&m->lock);
	for (i = 0; i < m->count; i++)
		if (m->sources[i].arg != arg)
			m->sources[kept++] = m->sources[i];
	m->count = kept;
	pthread_mutex_unlock(&m->lock);
}

void
metrics_render(struct metrics *m, struct buffer *out)
{
	size_t i;

	pthread_mutex_lock(&m->lock);
	for (i = 0; i < m->count; i++)
		if (m->sources[i].render != NULL)
			m->sources[i].render(out, m->sources[i].arg);
	pthread_mutex_unlock(&m->lock);
}

void
metrics_printf(struct buffer *out, const char *fmt, ...)
{
	va_list ap;

	/* Text past the page's maximum is dropped, as the header says. */
	va_start(ap, fmt);
	buffer_vprintf(out, fmt, ap);
	va_end(ap);
}

void
histogram_observe(struct histogram *h, double seconds)
{
	size_t i = 0;

	while (i < METRICS_BUCKETS && seconds > bucket_bounds[i])
		i++;
	atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, (unsigned long long)(seconds * 1e6),
	                          memory_order_relaxed);
}

void
histogram_render(struct buffer *out, const char *name, const char *labels,
                 const struct histogram *h)
{
	unsigned long long cumulative = 0;
	const char *sep = labels[0] != '\0' ? "," : "";
	size_t i;

	for (i = 0; i <= METRICS_BUCKETS; i++) {
		cumulative += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
		metrics_printf(out, "%s_bucket{%s%sle=\"%s\"} %llu\n", name, labels, sep,
		               bucket_labels[i], cumulative);
	}
	/* A series without labels is written without braces. */
	metrics_printf(out, "%s_sum%s%s%s %.6f\n", name, *labels ? "{" : "", labels,
	               *labels ? "}" : "",
	               (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6);
	metrics_printf(out, "%s_count%s%s%s %llu\n", name, *labels ? "{" : "", labels,
	               *labels ? "}" : "", cumulative);
}

void
metrics_emf_value(struct metrics_emf *emf, const char *name, const char *unit, double value)
{
	if (emf->count == EMF_VALUES)
		return;
	emf->names[emf->count] = name;
	emf->units[emf->count] = unit;
	emf->values[emf->count] = value;
	emf->count++;
}

/* Writes a whole EMF line; a lost line must never stop the daemon, so a failed write is dropped. */
static void
emf_line_write(const struct buffer *line)
{
	if (write(STDOUT_FILENO, line->data, line->len) < 0)
		return;
}

/*
 * Writes one EMF record: the figures both as CloudWatch metric definitions and
 * as values, on one line, or nothing when it would pass EMF_LINE_MAX.
 */
static void
emf_write(struct metrics *m)
{
	struct metrics_emf emf = {0};
	struct buffer line;
	int ok;
	size_t i;

	pthread_mutex_lock(&m->lock);
	for (i = 0; i < m->count; i++)
		if (m->sources[i].emf != NULL)
			m->sources[i].emf(&emf, m->sources[i].arg);
	pthread_mutex_unlock(&m->lock);
	buffer_init(&line, EMF_LINE_MAX);
	ok = buffer_printf(&line,
	                   "{\"_aws\":{\"Timestamp\":%lld,\"CloudWatchMetrics\":[{\"Namespace\":"
	                   "\"%s\",\"Dimensions\":[[\"Service\"]],\"Metrics\":[",
	                   clock_epoch_ms(), m->emf.ns) == BUFFER_OK;
	for (i = 0; ok && i < emf.count; i++)
		ok = buffer_printf(&line, "%s{\"Name\":\"%s\",\"Unit\":\"%s\"}", i > 0 ? "," : "",
		                   emf.names[i], emf.units[i]) == BUFFER_OK;
	ok = ok && buffer_printf(&line, "]}]},\"Service\":\"%s\"", m->emf.service) == BUFFER_OK;
	for (i = 0; ok && i < emf.count; i++)
		ok = buffer_printf(&line, ",\"%s\":%.6g", emf.names[i], emf.values[i]) == BUFFER_OK;
	ok = ok && buffer_append(&line, "}\n", 2) == BUFFER_OK;
	if (ok)
		emf_line_write(&line);
	buffer_free(&line);
}

/* The EMF thread: a line every interval, and a last one when told to stop. */
static void *
emf_loop(void *arg)
{
	struct metrics *m = arg;
	struct timespec until;
	int stop = 0;

	while (!stop) {
		until = clock_after(CLOCK_REALTIME, (long long)m->emf.interval_s * 1000);
		pthread_mutex_lock(&m->emf.lock);
		while (!m->emf.stopping &&
		       pthread_cond_timedwait(&m->emf.wake, &m->emf.lock, &until) == 0)
			;
		stop = m->emf.stopping;
		pthread_mutex_unlock(&m->emf.lock);
		emf_write(m);
	}
	return NULL;
}

int
metrics_emf_start(struct metrics *m, unsigned int interval_s, const char *ns, const char *service)
{
	m->emf.interval_s = interval_s;
	m->emf.ns = ns;
	m->emf.service = service;
	if (pthread_create(&m->emf.thread, NULL, emf_loop, m) != 0)
		return -1;
	m->emf.running = 1;
	return 0;
}

void
metrics_emf_stop(struct metrics *m)
{
	if (!m->emf.running)
		return;
	pthread_mutex_lock(&m->emf.lock);
	m->emf.stopping = 1;
	pthread_cond_signal(&m->emf.wake);
	pthread_mutex_unlock(&m->emf.lock);
	pthread_join(m->emf.thread, NULL);
	m->emf.running = 0;
}
