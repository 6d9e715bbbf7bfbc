/* The routes both daemons serve the same way: POST /data, GET /data, GET /health, GET /metrics. */
#ifndef COMMON_DATA_ROUTES_H
#define COMMON_DATA_ROUTES_H

#include "config.h"
#include "http_server.h"
#include "metrics.h"
#include "store.h"

/* What the data routes work on; each daemon's main owns it and passes it as the routes' arg. */
struct data_service {
	struct store store;
	const char *stored_message; /* "Data stored successfully in Service A"; borrowed */
	struct metrics *registry;   /* where the store's gauges are registered; borrowed */
};

/*
 * Reserves the store with cfg's limits and registers its gauges with registry
 * (borrowed, must outlive svc); stored_message is borrowed. Returns 0, or -1
 * after printing why (at start-up, a configuration error).
 */
int data_service_init(struct data_service *svc, const char *stored_message,
                      const struct server_config *cfg, struct metrics *registry);

/* Unregisters the gauges and releases the store. */
void data_service_destroy(struct data_service *svc);

/* POST /data: validates the body and appends it to the store (201, 400, 507). */
void data_post(struct http_exchange *ex, void *service);

/* GET /data: {"stored_data":[...]} straight from the store, without copying. */
void data_get(struct http_exchange *ex, void *service);

/* GET /health: {"status":"ok"}, depending on nothing else. */
void health_get(struct http_exchange *ex, void *unused);

/* GET /metrics: every source registered with registry (the route's arg). */
void metrics_get(struct http_exchange *ex, void *registry);

#endif
