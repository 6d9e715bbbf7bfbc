/* PEM settings read from a file or from the environment, and the TLS figures in /metrics. */
#include "tls.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/x509.h>

#include "buffer.h"
#include "metrics.h"

#define SETTING_NAME_MAX 64
#define EXPIRY_MAX       8

/* Certificate expiry per setting: filled at start-up, updated by reloads. */
static struct {
	const char *setting;
	atomic_llong not_after;
} expiries[EXPIRY_MAX];
static atomic_size_t expiry_count;
static atomic_ullong reloads[2]; /* failed, ok */
static atomic_ullong refusals[TLS_REFUSED_COUNT];
static const char *const refusal_names[TLS_REFUSED_COUNT] = {"missing", "expired", "not_yet_valid",
                                                             "untrusted", "other"};

/* Writes the _PEM twin of a _FILE setting's name into twin; returns 0, or -1 when it has none. */
static int
twin_name(const char *setting, char *twin, size_t size)
{
	size_t n = strlen(setting);

	if (n < 5 || strcmp(setting + n - 5, "_FILE") != 0 || n >= size)
		return -1;
	snprintf(twin, size, "%.*s_PEM", (int)(n - 5), setting);
	return 0;
}

static const char *
env_value(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && *v != '\0' ? v : NULL;
}

int
tls_pem_is_set(const char *setting)
{
	char twin[SETTING_NAME_MAX];

	return env_value(setting) != NULL ||
	       (twin_name(setting, twin, sizeof(twin)) == 0 && env_value(twin) != NULL);
}

/* Reads a whole file of at most TLS_PEM_MAX_BYTES into out; returns 0, or -1 with errno set. */
static int
file_read(const char *path, struct buffer *out)
{
	char chunk[4096];
	FILE *f = fopen(path, "rb");
	size_t n;
	int status = 0;

	if (f == NULL)
		return -1;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (buffer_append(out, chunk, n) != BUFFER_OK) {
			errno = EFBIG;
			status = -1;
			break;
		}
	if (status == 0 && ferror(f)) {
		errno = EIO;
		status = -1;
	}
	fclose(f);
	return status;
}

int
tls_pem_read(const char *setting, struct tls_pem *pem, char *err, size_t errlen)
{
	char twin[SETTING_NAME_MAX];
	const char *path = env_value(setting), *text = NULL;
	struct buffer b;
	int rc;

	memset(pem, 0, sizeof(*pem));
	pem->setting = setting;
	if (twin_name(setting, twin, sizeof(twin)) == 0)
		text = env_value(twin);
	if (path != NULL && text != NULL) {
		snprintf(err, errlen, "%s and %s are both set: set one", setting, twin);
		return -1;
	}
	if (path == NULL && text == NULL)
		return 0;
	/* Room for one byte over the limit, which tells a text that is too large, or the NUL. */
	buffer_init(&b, TLS_PEM_MAX_BYTES + 1);
	if (text != NULL)
		rc = buffer_append(&b, text, strlen(text)) == BUFFER_OK ? 0 : -1;
	else
		rc = file_read(path, &b);
	if (rc == 0 && b.len > TLS_PEM_MAX_BYTES)
		rc = -1;
	if (rc < 0) {
		if (text == NULL && b.len <= TLS_PEM_MAX_BYTES && errno != EFBIG)
			snprintf(err, errlen, "%s=%s cannot be read: %s", setting, path,
			         strerror(errno));
		else
			snprintf(err, errlen, "%s is larger than 1 MiB",
			         text != NULL ? twin : setting);
		buffer_free(&b);
		return -1;
	}
	/* NUL-terminated, as libmicrohttpd takes its key and certificate. */
	buffer_append(&b, "", 1);
	pem->text = b.data;
	pem->len = b.len - 1;
	return 0;
}

gnutls_datum_t
tls_pem_datum(const struct tls_pem *pem)
{
	gnutls_datum_t d = {(unsigned char *)pem->text, (unsigned int)pem->len};

	return d;
}

void
tls_pem_free(struct tls_pem *pem)
{
	free(pem->text);
	pem->text = NULL;
	pem->len = 0;
}

int
tls_pem_expiry(const struct tls_pem *pem, time_t *not_after, char *err, size_t errlen)
{
	gnutls_datum_t data = tls_pem_datum(pem);
	gnutls_x509_crt_t *certs = NULL;
	unsigned int count = 0, i;
	time_t t;
	int rc;

	rc = gnutls_x509_crt_list_import2(&certs, &count, &data, GNUTLS_X509_FMT_PEM, 0);
	if (rc < 0 || count == 0) {
		snprintf(err, errlen, "%s holds no PEM certificate: %s", pem->setting,
		         rc < 0 ? gnutls_strerror(rc) : "none found");
		count = 0;
		rc = -1;
	}
	for (i = 0; i < count; i++) {
		t = gnutls_x509_crt_get_expiration_time(certs[i]);
		if (i == 0 || t < *not_after)
			*not_after = t;
		gnutls_x509_crt_deinit(certs[i]);
	}
	gnutls_free(certs);
	return rc < 0 ? -1 : 0;
}

void
tls_expiry_publish(const char *setting, time_t not_after)
{
	size_t i, n = atomic_load(&expiry_count);

	for (i = 0; i < n; i++)
		if (strcmp(expiries[i].setting, setting) == 0) {
			atomic_store(&expiries[i].not_after, (long long)not_after);
			return;
		}
	/* New settings appear only at start-up, before any thread renders /metrics. */
	if (n == EXPIRY_MAX)
		return;
	expiries[n].setting = setting;
	atomic_store(&expiries[n].not_after, (long long)not_after);
	atomic_store(&expiry_count, n + 1);
}

void
tls_refusal_count(enum tls_refusal why)
{
	atomic_fetch_add(&refusals[why], 1);
}

void
tls_reload_count(int ok)
{
	atomic_fetch_add(&reloads[ok ? 1 : 0], 1);
}

static void
render_tls(struct buffer *out, void *unused)
{
	size_t i, n = atomic_load(&expiry_count);

	(void)unused;
	if (n == 0)
		return;
	metrics_printf(out, "# HELP tls_certificate_expiry_timestamp_seconds When the earliest "
	                    "certificate of a setting expires (Unix time).\n"
	                    "# TYPE tls_certificate_expiry_timestamp_seconds gauge\n");
	for (i = 0; i < n; i++)
		metrics_printf(out,
		               "tls_certificate_expiry_timestamp_seconds{setting=\"%s\"} %lld\n",
		               expiries[i].setting, atomic_load(&expiries[i].not_after));
	metrics_printf(out,
	               "# HELP tls_reloads_total Certificate reloads on SIGHUP, by result.\n"
	               "# TYPE tls_reloads_total counter\n"
	               "tls_reloads_total{result=\"ok\"} %llu\n"
	               "tls_reloads_total{result=\"failed\"} %llu\n",
	               atomic_load(&reloads[1]), atomic_load(&reloads[0]));
	metrics_printf(out, "# HELP tls_client_certificates_refused_total Client certificates "
	                    "refused at the handshake, by reason.\n"
	                    "# TYPE tls_client_certificates_refused_total counter\n");
	for (i = 0; i < TLS_REFUSED_COUNT; i++)
		metrics_printf(out, "tls_client_certificates_refused_total{reason=\"%s\"} %llu\n",
		               refusal_names[i], atomic_load(&refusals[i]));
}

int
tls_metrics_register(struct metrics *registry)
{
	return metrics_register(registry, render_tls, NULL, NULL);
}
