/* JSON log lines: one per request on stdout, diagnostics on stderr. */
#ifndef COMMON_LOG_H
#define COMMON_LOG_H

#include <stdarg.h>
#include <stddef.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* What one request line says; every string is borrowed for the call. */
/*
 * Size of an error text a function fills for its caller to report
 * (char err[ERROR_MAX], passed with sizeof(err)); docs/hacking.md.
 */
#define ERROR_MAX 512

struct log_request {
	const char *method;
	const char *path;
	unsigned int status;
	size_t bytes;
	double duration_ms;
	const char *request_id;
	const char *trace_id;
	const char *upstream_served_by; /* "" or NULL when the request asked no upstream */
	const char *upstream_version;   /* "" or NULL when the request asked no upstream */
};

/* Sets the service name written on every line (borrowed: must outlive logging) and the lowest level
 * written. */
void log_init(const char *service, enum log_level level);

/* The service name given to log_init(). */
const char *log_service_name(void);

/* Parses debug, info, warn or error; returns 0, or -1 for anything else. */
int log_level_parse(const char *name, enum log_level *level);

/* Writes a diagnostic line to stderr when level is at least the configured one. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The same as log_msg(), for callers that already hold a va_list (libmicrohttpd's logger). */
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* Writes one request line to stdout (at info level). */
void log_request(const struct log_request *r);

#endif
