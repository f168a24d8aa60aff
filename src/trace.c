/* trace: W3C Trace Context carried from a command to every message it causes. */
#include "b2bd/trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <jansson.h>

/* The longest tracestate passed on (W3C: at least 512 characters must be kept). */
#define TRACE_STATE_MAX 8192

void trace_in_from_kafka(const rd_kafka_message_t *m, struct trace_in *in)
{
    memset(in, 0, sizeof *in);
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR || !h)
        return;
    const void *v;
    size_t len;
    if (rd_kafka_header_get(h, 0, "traceparent", &v, &len) == RD_KAFKA_RESP_ERR_NO_ERROR && v) {
        in->parent = v;
        in->parent_len = len;
        in->repeated = rd_kafka_header_get(h, 1, "traceparent", &v, &len) == RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    if (rd_kafka_header_get(h, 0, "tracestate", &v, &len) == RD_KAFKA_RESP_ERR_NO_ERROR && v &&
        rd_kafka_header_get(h, 1, "tracestate", &v, &len) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_header_get(h, 0, "tracestate", &v, &len);
        in->state = v;
        in->state_len = len;
    }
}

static bool trace_same(const char *a, size_t al, const char *b, size_t bl)
{
    return al == bl && (al == 0 || (a && b && memcmp(a, b, al) == 0));
}

bool trace_in_equal(const struct trace_in *a, const struct trace_in *b)
{
    return (a->parent == NULL) == (b->parent == NULL) && a->repeated == b->repeated &&
           trace_same(a->parent, a->parent_len, b->parent, b->parent_len) &&
           (a->state == NULL) == (b->state == NULL) &&
           trace_same(a->state, a->state_len, b->state, b->state_len);
}

/* n lower-case hex digits at s, not all '0'. */
static bool trace_hex(const char *s, size_t n, bool nonzero)
{
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        any |= c != '0';
    }
    return any || !nonzero;
}

bool trace_parse(const char *tp, size_t len, char trace_id[33], char flags[3])
{
    /* vv-<32>-<16>-ff: 55 characters */
    if (!tp || len < 55 || !trace_hex(tp, 2, false) || memcmp(tp, "ff", 2) == 0 || tp[2] != '-' ||
        !trace_hex(tp + 3, 32, true) || tp[35] != '-' || !trace_hex(tp + 36, 16, true) ||
        tp[52] != '-' || !trace_hex(tp + 53, 2, false))
        return false;
    bool v00 = memcmp(tp, "00", 2) == 0;
    if (v00 ? len != 55 : (len > 55 && tp[55] != '-'))
        return false;
    if (trace_id) {
        memcpy(trace_id, tp + 3, 32);
        trace_id[32] = '\0';
    }
    if (flags) {
        memcpy(flags, tp + 53, 2);
        flags[2] = '\0';
    }
    return true;
}

/* n random bytes as 2n lower-case hex digits (not all zero) and a NUL. */
static void trace_random_hex(char *out, size_t n)
{
    unsigned char b[16];
    for (;;) {
        if (getrandom(b, n, 0) != (ssize_t)n)
            abort(); /* the kernel's random source: never fails for 16 bytes */
        bool any = false;
        for (size_t i = 0; i < n; i++)
            any |= b[i] != 0;
        if (any)
            break;
    }
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

/* A tracestate that can be passed on: printable ASCII, not too long. */
static bool trace_state_ok(const char *s, size_t len)
{
    if (len > TRACE_STATE_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x20 || s[i] > 0x7e)
            return false;
    return true;
}

void trace_begin(const struct trace_in *in, struct trace_out *out)
{
    memset(out, 0, sizeof *out);
    char flags[3];
    if (!in->parent || in->repeated || !trace_parse(in->parent, in->parent_len, out->trace_id, flags)) {
        out->trace_id[0] = '\0';
        return;
    }
    char parent[17];
    trace_random_hex(parent, 8);
    snprintf(out->traceparent, sizeof out->traceparent, "00-%s-%s-%s", out->trace_id, parent, flags);
    json_t *h = json_pack("[[ss]]", "traceparent", out->traceparent);
    if (in->state && trace_state_ok(in->state, in->state_len))
        json_array_append_new(h, json_pack("[ss%]", "tracestate", in->state, in->state_len));
    out->headers = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    if (!out->headers)
        abort();
}

void trace_out_free(struct trace_out *out)
{
    free(out->headers);
    out->headers = NULL;
}

void trace_new(char traceparent[56])
{
    char id[33], parent[17];
    trace_random_hex(id, 16);
    trace_random_hex(parent, 8);
    snprintf(traceparent, 56, "00-%s-%s-01", id, parent);
}
