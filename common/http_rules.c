/* The route table and the rules applied to a request before its handler runs. */
#include "http_rules.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>

const struct http_route *
http_route_find(const struct http_route *routes, size_t count, const char *path)
{
	size_t i;

	for (i = 0; i < count; i++)
		if (strcmp(routes[i].path, path) == 0)
			return &routes[i];
	return NULL;
}

http_handler
http_route_handler(const struct http_route *route, const char *method)
{
	if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
		return route->get;
	if (strcmp(method, "POST") == 0)
		return route->post;
	return NULL;
}

const char *
http_route_allow(const struct http_route *route)
{
	if (route->get == NULL)
		return "POST";
	return route->post == NULL ? "GET, HEAD" : "GET, HEAD, POST";
}

int
http_request_id_is_sane(const char *id, size_t max)
{
	size_t n = 0;

	if (id == NULL)
		return 0;
	for (; id[n] != '\0'; n++) {
		char c = id[n];

		if (n >= max || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		                  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return n > 0;
}

int
http_content_type_is_json(const char *value)
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
 * The last address of X-Forwarded-For is the one the trusted proxy added;
 * earlier ones are the client's own claims.
 */
void
http_client_key(const char *forwarded_for, const struct sockaddr *peer, char *key, size_t size)
{
	static const char unknown[] = "unknown";
	const char *last, *text = NULL;

	if (forwarded_for != NULL) {
		last = strrchr(forwarded_for, ',');
		last = last != NULL ? last + 1 : forwarded_for;
		while (*last == ' ')
			last++;
		http_copy_bytes(key, size, last, strcspn(last, " "));
		return;
	}
	if (peer != NULL && peer->sa_family == AF_INET)
		text = inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, key,
		                 (socklen_t)size);
	else if (peer != NULL && peer->sa_family == AF_INET6)
		text = inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, key,
		                 (socklen_t)size);
	if (text == NULL)
		http_copy_bytes(key, size, unknown, sizeof(unknown) - 1);
}

void
http_copy_bytes(char *dst, size_t size, const char *src, size_t n)
{
	if (size == 0)
		return;
	if (n >= size)
		n = size - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

size_t
http_path_unescape(char *path)
{
	char *in = path, *out = path;
	unsigned int v;

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
	return (size_t)(out - path);
}
