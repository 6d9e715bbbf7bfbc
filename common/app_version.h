/* Which build answered: the X-App-Version value every answer carries. */
#ifndef COMMON_APP_VERSION_H
#define COMMON_APP_VERSION_H

#include "metrics.h"

/* Longest version accepted, without the terminating NUL. */
#define APP_VERSION_MAX 64

/*
 * Reads APP_VERSION, or keeps the value built in (make APP_VERSION=...).
 * Returns 0, or -1 after printing what is wrong: a version must be 1 to
 * APP_VERSION_MAX characters from [A-Za-z0-9._+-], so that it fits a header,
 * a log line and a metrics label unescaped.
 */
int app_version_load(void);

/* The version; borrowed, valid for the life of the process. */
const char *app_version(void);

/* Registers app_build_info{service,version} 1 with registry; service is borrowed. 0 or -1. */
int app_version_metrics_register(struct metrics *registry, const char *service);

#endif
