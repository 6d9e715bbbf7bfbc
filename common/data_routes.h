/* The routes both daemons serve the same way: POST /data, GET /data and GET /health. */
#ifndef COMMON_DATA_ROUTES_H
#define COMMON_DATA_ROUTES_H

#include "http_server.h"
#include "store.h"

/* What the data routes work on; the daemon owns it and passes it as the routes' arg. */
struct data_service {
	struct store store;
	const char *stored_message; /* "Data stored successfully in Service A"; borrowed */
};

/* POST /data: validates the body and appends it to the store (201, 400, 507). */
void data_post(struct http_exchange *ex, void *service);

/* GET /data: {"stored_data":[...]} straight from the store, without copying. */
void data_get(struct http_exchange *ex, void *service);

/* Adds the store's gauges to /metrics and EMF; call once before serving. */
void data_metrics_register(struct data_service *svc);

/* GET /health: {"status":"ok"}, depending on nothing else. */
void health_get(struct http_exchange *ex, void *unused);

#endif
