/* http: the operations endpoint (libmicrohttpd): /metrics, /healthz and /readyz. */
#ifndef B2BD_HTTP_H
#define B2BD_HTTP_H

#include "b2bd/err.h"
#include "b2bd/metrics.h"

struct http_server;

/* Listens on listen ("host:port", "[v6addr]:port"; port 0 picks a free one) in a thread
 * of its own, serving GET and HEAD of
 *   /metrics  bm's registry in the Prometheus text format 0.0.4;
 *   /healthz  200 "ok" while the process runs;
 *   /readyz   200 "ready", or 503 with the reason (metrics_ready()).
 * Other paths: 404; other methods: 405. Returns NULL with err when the address does not
 * parse or cannot be bound. */
struct http_server *http_start(const char *listen, struct b2bd_metrics *bm, struct b2bd_err *err);

/* The port listened on (the chosen one when 0 was asked). */
int http_port(const struct http_server *s);

/* Stops listening, finishes the requests in hand, frees. NULL is a no-op. */
void http_stop(struct http_server *s);

#endif
