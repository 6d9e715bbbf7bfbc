/* JSON log lines, each written with a single write(2) so lines from threads never interleave. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "json_escape.h"

#define LOG_LINE_MAX 2048

static const char *log_service = "daemon";
static enum log_level log_threshold = LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void
log_init(const char *service, enum log_level level)
{
	log_service = service;
	log_threshold = level;
}

const char *
log_service_name(void)
{
	return log_service;
}

int
log_level_parse(const char *name, enum log_level *level)
{
	size_t i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcasecmp(name, level_names[i]) == 0) {
			*level = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

/*
 * Starts a line with the time, level and service; returns its length. The
 * date and time up to the second are formatted once a second per thread:
 * at tens of thousands of lines a second, gmtime and strftime would show.
 */
static size_t
line_start(char *line, enum log_level level)
{
	static _Thread_local time_t stamp_second = -1;
	static _Thread_local char stamp[32];
	struct timespec now;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &now);
	if (now.tv_sec != stamp_second) {
		gmtime_r(&now.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
		stamp_second = now.tv_sec;
	}
	return (size_t)snprintf(line, LOG_LINE_MAX,
	                        "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"service\":\"%s\"",
	                        stamp, now.tv_nsec / 1000000, level_names[level], log_service);
}

/* Closes the line and writes it whole, cutting what does not fit. */
static void
line_write(int fd, char *line, size_t len)
{
	if (len > LOG_LINE_MAX - 3)
		len = LOG_LINE_MAX - 3;
	line[len++] = '}';
	line[len++] = '\n';
	/* A lost log line must never stop the daemon, so a failed write is dropped. */
	if (write(fd, line, len) < 0)
		return;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX], text[1024];
	size_t len;

	if (level < log_threshold)
		return;
	vsnprintf(text, sizeof(text), fmt, ap);
	/* libmicrohttpd ends its messages with a newline; the line is the record. */
	len = strlen(text);
	while (len > 0 && text[len - 1] == '\n')
		text[--len] = '\0';
	len = line_start(line, level);
	len += (size_t)snprintf(line + len, LOG_LINE_MAX - len, ",\"msg\":\"");
	len = json_escape(line, LOG_LINE_MAX - 4, len, text);
	line[len++] = '"';
	line_write(STDERR_FILENO, line, len);
}

void
log_request(const struct log_request *r)
{
	char line[LOG_LINE_MAX];
	size_t len;

	if (LOG_INFO < log_threshold)
		return;
	len = line_start(line, LOG_INFO);
	len += (size_t)snprintf(line + len, LOG_LINE_MAX - len, ",\"method\":\"");
	len = json_escape(line, 64 + len, len, r->method);
	len += (size_t)snprintf(line + len, LOG_LINE_MAX - len, "\",\"path\":\"");
	len = json_escape(line, LOG_LINE_MAX - 256, len, r->path);
	len += (size_t)snprintf(
	    line + len, LOG_LINE_MAX - len,
	    "\",\"status\":%u,\"bytes\":%zu,\"duration_ms\":%.3f,\"request_id\":\"", r->status,
	    r->bytes, r->duration_ms);
	len = json_escape(line, LOG_LINE_MAX - 64, len, r->request_id);
	len += (size_t)snprintf(line + len, LOG_LINE_MAX - len, "\",\"trace_id\":\"");
	len = json_escape(line, LOG_LINE_MAX - 4, len, r->trace_id);
	line[len++] = '"';
	if (r->upstream_served_by != NULL && r->upstream_version != NULL &&
	    (r->upstream_served_by[0] != '\0' || r->upstream_version[0] != '\0')) {
		len +=
		    (size_t)snprintf(line + len, LOG_LINE_MAX - len, ",\"upstream_served_by\":\"");
		len = json_escape(line, LOG_LINE_MAX - 64, len, r->upstream_served_by);
		len +=
		    (size_t)snprintf(line + len, LOG_LINE_MAX - len, "\",\"upstream_version\":\"");
		len = json_escape(line, LOG_LINE_MAX - 4, len, r->upstream_version);
		line[len++] = '"';
	}
	line_write(STDOUT_FILENO, line, len);
}
