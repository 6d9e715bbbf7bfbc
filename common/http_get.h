/*
 * A minimal HTTP/1.0 GET for the two fetches a daemon makes of itself or its
 * host: --healthcheck and the ECS task metadata. Bounded in time and size, and
 * free of libcurl so the responder's image does not need it.
 */
#ifndef COMMON_HTTP_GET_H
#define COMMON_HTTP_GET_H

#include <stddef.h>

#include <gnutls/gnutls.h>

/*
 * Fetches http://ipv4:port/path within timeout_ms (https:// when tls is not
 * NULL: those credentials are presented as the client's, borrowed, and the
 * server is not verified), keeping at most max_bytes
 * of the answer's body. Returns the HTTP status, or -1 when there is no
 * answer. When body is not NULL and a status is returned, *body is a
 * NUL-terminated copy of the body the caller frees.
 */
int http_get(const char *ipv4, unsigned int port, const char *path, int timeout_ms,
             gnutls_certificate_credentials_t tls, size_t max_bytes, char **body);

/*
 * --healthcheck: GET /health on 127.0.0.1:port within 1.5 s, over TLS with tls
 * as the client's credentials when not NULL; returns the exit status, 0 when 200.
 */
int healthcheck_run(unsigned int port, gnutls_certificate_credentials_t tls);

#endif
