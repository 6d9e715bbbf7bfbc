/*
 * AWS X-Ray segment documents for one request a daemon served: the JSON of
 * X-Ray's segment document format, framed for the X-Ray daemon's UDP
 * protocol. A document that does not fit in one datagram is split as X-Ray
 * allows (the call's subsegment sent on its own), then its long strings are
 * trimmed; one that still does not fit is not sent at all, never sent broken.
 */
#ifndef COMMON_XRAY_SEGMENT_H
#define COMMON_XRAY_SEGMENT_H

#include <stddef.h>

#include "trace.h"

/* The X-Ray daemon's header, before every document in a datagram. */
#define XRAY_DAEMON_HEADER "{\"format\":\"json\",\"version\":1}\n"

/* Longest string field once trimmed (URL, user agent, error message), in bytes. */
#define XRAY_TRIMMED_STRING_MAX 256

/* The largest XRAY_SEGMENT_MAX_BYTES: one UDP datagram over IPv4 holds 65,507 bytes. */
#define XRAY_DATAGRAM_LIMIT 65000

/* One request a daemon served, as its segment records it; every pointer borrowed. */
struct xray_request {
	const char *name;              /* the segment's name: the service */
	const char *origin;            /* "AWS::ECS::Container" on ECS; NULL elsewhere */
	const char *version;           /* service.version */
	const struct trace *trace;     /* trace id, this hop's span id, the parent's */
	double start_s;                /* epoch seconds when the request arrived */
	double end_s;                  /* epoch seconds when its answer was known */
	const char *method;            /* may be NULL */
	const char *url;               /* may be NULL */
	const char *client_ip;         /* may be NULL */
	int forwarded;                 /* client_ip came from X-Forwarded-For */
	const char *user_agent;        /* may be NULL */
	int status;                    /* 0 when no answer was sent (the client left) */
	size_t bytes;                  /* the answer's body bytes */
	const char *request_id;        /* annotation request_id */
	const struct trace_call *call; /* the call the request made; NULL when none */
};

/* What the documents of one request took; xray_documents() ORs them into *how. */
enum xray_shape {
	XRAY_SPLIT = 1,   /* the subsegment went in a document of its own */
	XRAY_TRIMMED = 2, /* long strings were cut to XRAY_TRIMMED_STRING_MAX */
};

enum xray_documents_result {
	XRAY_DOCUMENTS_OK,        /* *count datagrams, each with the header, at most max bytes */
	XRAY_DOCUMENTS_TOO_LARGE, /* even split and trimmed, a document exceeds max */
};

/* One datagram: the daemon's header and one document; data borrowed from xray_documents' out. */
struct xray_datagram {
	const char *data;
	size_t len;
};

/*
 * Writes the datagrams for r into out (room for 2 * max bytes, the caller's):
 * one (the segment with its subsegment), or two when that exceeds max bytes
 * (the segment, then the subsegment on its own). dg[0..*count) point into out.
 * The JSON is written directly, not built and dumped: a segment per request
 * must cost no allocation.
 */
enum xray_documents_result xray_documents(const struct xray_request *r, size_t max, char *out,
                                          struct xray_datagram dg[2], size_t *count,
                                          unsigned int *how);

/*
 * Writes r's usual datagram, the one xray_documents() tries first (the
 * segment with its subsegment, no string cut), into out (max bytes) and
 * returns its length; 0, with out's contents undefined, when it exceeds max,
 * and xray_documents() must choose the shape.
 */
size_t xray_document_whole(const struct xray_request *r, size_t max, char *out);

#endif
