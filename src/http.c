/* http: the operations endpoint (libmicrohttpd): /metrics, /healthz and /readyz. */
#include "b2bd/http.h"

#include <netdb.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "b2bd/log.h"
#include "b2bd/util.h"

struct http_server {
    struct MHD_Daemon *mhd;
    struct b2bd_metrics *bm;
    int port;
    atomic_int running;   /* started: messages are about connections, not the start */
    char last_error[200]; /* libmicrohttpd's last message, while starting */
};

static void http_log(void *cls, const char *fmt, va_list ap)
{
    struct http_server *s = cls;
    char msg[200];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    if (!atomic_load(&s->running)) { /* starting: kept for the error */
        snprintf(s->last_error, sizeof s->last_error, "%s", msg);
        return;
    }
    log_debug("http", "server_message", LOG_STR("msg", msg)); /* a passing problem */
}

static enum MHD_Result http_reply(struct MHD_Connection *c, unsigned int status,
                                  const char *content_type, struct sbuf *body)
{
    size_t len = body->len;
    char *text = body->s ? body->s : strdup("");
    if (!text)
        abort();
    body->s = NULL;
    body->len = body->cap = 0;
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result http_handle(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version,
                                   const char *upload_data, size_t *upload_data_size,
                                   void **req_cls)
{
    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)req_cls;
    static const char TEXT[] = "text/plain; charset=utf-8";
    struct http_server *s = cls;
    struct sbuf body = {0};
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        sbuf_adds(&body, "method not allowed\n");
        return http_reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, TEXT, &body);
    }
    if (strcmp(url, "/metrics") == 0) {
        char why[120];
        metrics_ready(s->bm, util_now_ms(), why, sizeof why); /* refreshes b2bd_ready */
        metrics_render(s->bm->reg, &body);
        return http_reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", &body);
    }
    if (strcmp(url, "/healthz") == 0) {
        sbuf_adds(&body, "ok\n");
        return http_reply(c, MHD_HTTP_OK, TEXT, &body);
    }
    if (strcmp(url, "/readyz") == 0) {
        char why[120];
        int ready = metrics_ready(s->bm, util_now_ms(), why, sizeof why);
        sbuf_addf(&body, "%s%s\n", ready ? "" : "not ready: ", why);
        return http_reply(c, ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, TEXT, &body);
    }
    sbuf_adds(&body, "not found: /metrics, /healthz, /readyz\n");
    return http_reply(c, MHD_HTTP_NOT_FOUND, TEXT, &body);
}

/* Splits "host:port" or "[v6]:port" and resolves it (numeric port). */
static struct addrinfo *http_resolve(const char *listen, struct b2bd_err *err)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    const char *h = listen;
    size_t hlen = colon ? (size_t)(colon - listen) : 0;
    if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (!colon || hlen == 0 || hlen >= sizeof host || !colon[1] ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1) || atol(colon + 1) > 65535) {
        b2bd_err_set(err, B2BD_ERR_CONFIG, "http_listen", "expected host:port or [ipv6]:port, got \"%s\"",
                     listen);
        return NULL;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int e = getaddrinfo(host, colon + 1, &hints, &ai);
    if (e != 0) {
        b2bd_err_set(err, B2BD_ERR_IO, "http_listen", "cannot resolve %s: %s", host, gai_strerror(e));
        return NULL;
    }
    return ai;
}

struct http_server *http_start(const char *listen, struct b2bd_metrics *bm, struct b2bd_err *err)
{
    struct addrinfo *ai = http_resolve(listen, err);
    if (!ai)
        return NULL;
    struct http_server *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->bm = bm;
    unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, http_handle, s,
                              MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                              MHD_OPTION_EXTERNAL_LOGGER, http_log, s,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned int)32,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
                              MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->mhd) {
        b2bd_err_set(err, B2BD_ERR_IO, "http_listen", "cannot listen on %s: %s", listen,
                     s->last_error[0] ? s->last_error : "libmicrohttpd failed to start");
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    atomic_store(&s->running, 1);
    return s;
}

int http_port(const struct http_server *s)
{
    return s ? s->port : 0;
}

void http_stop(struct http_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->mhd);
    free(s);
}
