/* The metrics registry, Prometheus rendering, histograms, and the EMF writer thread. */
#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

#define SOURCES_MAX  8
#define PAGE_MAX     (1 << 20)
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

static struct source sources[SOURCES_MAX];
static size_t source_count;

static struct {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	int running;
	int stopping;
	unsigned int interval_s;
	const char *ns;
	const char *service;
} emf_writer = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

void
metrics_register(metrics_render_fn render, metrics_emf_fn emf, void *arg)
{
	if (source_count == SOURCES_MAX)
		return;
	sources[source_count++] = (struct source){render, emf, arg};
}

void
metrics_printf(struct buffer *out, const char *fmt, ...)
{
	char line[512], *text = line;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		/* A long block of lines: format it again into a buffer that fits. */
		text = malloc((size_t)n + 1);
		if (text == NULL)
			return;
		va_start(ap, fmt);
		vsnprintf(text, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	buffer_append(out, text, (size_t)n);
	if (text != line)
		free(text);
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
metrics_get(struct http_exchange *ex, void *unused)
{
	struct buffer page;
	char *text;
	size_t i, len;

	(void)unused;
	buffer_init(&page, PAGE_MAX);
	for (i = 0; i < source_count; i++)
		if (sources[i].render != NULL)
			sources[i].render(&page, sources[i].arg);
	text = buffer_steal(&page, &len);
	http_reply_take(ex, 200, text, len);
	http_set_content_type(ex, "text/plain; version=0.0.4; charset=utf-8");
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

/* Writes one EMF record: the figures both as CloudWatch metric definitions and as values. */
static void
emf_write(void)
{
	struct metrics_emf emf = {0};
	char line[EMF_LINE_MAX];
	struct timespec now;
	size_t i, len;

	for (i = 0; i < source_count; i++)
		if (sources[i].emf != NULL)
			sources[i].emf(&emf, sources[i].arg);
	clock_gettime(CLOCK_REALTIME, &now);
	len =
	    (size_t)snprintf(line, sizeof(line),
	                     "{\"_aws\":{\"Timestamp\":%lld,\"CloudWatchMetrics\":[{\"Namespace\":"
	                     "\"%s\",\"Dimensions\":[[\"Service\"]],\"Metrics\":[",
	                     (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000, emf_writer.ns);
	for (i = 0; i < emf.count && len < sizeof(line); i++)
		len += (size_t)snprintf(line + len, sizeof(line) - len,
		                        "%s{\"Name\":\"%s\",\"Unit\":\"%s\"}", i > 0 ? "," : "",
		                        emf.names[i], emf.units[i]);
	if (len < sizeof(line))
		len += (size_t)snprintf(line + len, sizeof(line) - len, "]}]},\"Service\":\"%s\"",
		                        emf_writer.service);
	for (i = 0; i < emf.count && len < sizeof(line); i++)
		len += (size_t)snprintf(line + len, sizeof(line) - len, ",\"%s\":%.6g",
		                        emf.names[i], emf.values[i]);
	if (len + 2 >= sizeof(line))
		return; /* cannot happen with the figures registered here; never write half a record
		         */
	line[len++] = '}';
	line[len++] = '\n';
	if (write(STDOUT_FILENO, line, len) < 0)
		return;
}

static void *
emf_loop(void *unused)
{
	struct timespec until;
	int stop = 0;

	(void)unused;
	while (!stop) {
		until = clock_after(CLOCK_REALTIME, (long long)emf_writer.interval_s * 1000);
		pthread_mutex_lock(&emf_writer.lock);
		while (!emf_writer.stopping &&
		       pthread_cond_timedwait(&emf_writer.wake, &emf_writer.lock, &until) == 0)
			;
		stop = emf_writer.stopping;
		pthread_mutex_unlock(&emf_writer.lock);
		emf_write();
	}
	return NULL;
}

int
metrics_emf_start(unsigned int interval_s, const char *ns, const char *service)
{
	emf_writer.interval_s = interval_s;
	emf_writer.ns = ns;
	emf_writer.service = service;
	if (pthread_create(&emf_writer.thread, NULL, emf_loop, NULL) != 0)
		return -1;
	emf_writer.running = 1;
	return 0;
}

void
metrics_emf_stop(void)
{
	if (!emf_writer.running)
		return;
	pthread_mutex_lock(&emf_writer.lock);
	emf_writer.stopping = 1;
	pthread_cond_signal(&emf_writer.wake);
	pthread_mutex_unlock(&emf_writer.lock);
	pthread_join(emf_writer.thread, NULL);
	emf_writer.running = 0;
}
