/* ctl_send: b2bctl's one way to send commands and wait for their results. */
#include "b2bd/ctl_send.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b2bd/ctl_common.h"
#include "b2bd/kafka.h"
#include "b2bd/trace.h"
#include "b2bd/util.h"

struct ctl_send {
    const struct b2bd_config *cfg;
    rd_kafka_t *producer;
    rd_kafka_t *reader;       /* NULL: not waiting for results */
    ctl_send_result_fn on_result;
    void *arg;
    json_t *waiting;          /* canonical command_id -> tag (a JSON integer) */
    long missing;
    const char *to;           /* every command's topic suffix (NULL: its type's) */
    char traceparent[56];     /* the run's trace: sent with every command */
    char trace_id[33];
};

void ctl_send_to(struct ctl_send *s, const char *suffix)
{
    s->to = suffix;
}

/* A command id as b2bd reports it: a UUID in lower case (the contract's canonical form);
 * other ids are compared the same way, ASCII case folded. Caller frees. */
static char *ctl_send_id(const char *id)
{
    char *c = strdup(id);
    if (!c)
        abort();
    for (char *p = c; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return c;
}

struct ctl_send *ctl_send_open(const struct b2bd_config *cfg, ctl_send_result_fn on_result,
                               void *arg)
{
    struct ctl_send *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->cfg = cfg;
    s->on_result = on_result;
    s->arg = arg;
    s->waiting = json_object();
    trace_new(s->traceparent);
    memcpy(s->trace_id, s->traceparent + 3, 32);
    s->trace_id[32] = '\0';
    if (on_result && !(s->reader = ctl_reader_open(cfg, "results", 1))) {
        ctl_send_close(s);
        return NULL;
    }
    struct b2bd_err err;
    if (!(s->producer = kafka_producer_new(cfg, NULL, &err))) {
        fprintf(stderr, "b2bctl: %s\n", err.msg);
        ctl_send_close(s);
        return NULL;
    }
    return s;
}

/* Takes one result: the first for a command waited for goes to on_result. Returns 1 if
 * it was such a result, else 0. */
static int ctl_send_take(struct ctl_send *s, const rd_kafka_message_t *m)
{
    if (m->err)
        return 0;
    json_t *r = json_loadb(m->payload, m->len, 0, NULL);
    const char *id = json_string_value(json_object_get(r, "command_id"));
    int taken = 0;
    if (id) {
        char *key = ctl_send_id(id);
        json_t *tag = json_object_get(s->waiting, key);
        if (tag) {
            size_t t = (size_t)json_integer_value(tag);
            json_object_del(s->waiting, key);
            s->missing--;
            s->on_result(s->arg, t, r);
            taken = 1;
        }
        free(key);
    }
    json_decref(r);
    return taken;
}

/* Takes results for up to timeout_ms (0: only those already fetched). Returns how many
 * were for commands waited for. */
static int ctl_send_poll(struct ctl_send *s, int timeout_ms)
{
    int n = 0;
    rd_kafka_message_t *m;
    while ((m = rd_kafka_consumer_poll(s->reader, timeout_ms))) {
        n += ctl_send_take(s, m);
        rd_kafka_message_destroy(m);
        timeout_ms = 0;
    }
    return n;
}

rd_kafka_resp_err_t ctl_send_command(struct ctl_send *s, const json_t *cmd, const char *text,
                                     size_t len, size_t tag)
{
    char *own = NULL;
    if (!text) {
        own = json_dumps(cmd, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!own)
            return RD_KAFKA_RESP_ERR__INVALID_ARG;
        text = own;
        len = strlen(own);
    }
    char *key = ctl_command_key(cmd);
    char *topic = config_topic(s->cfg, s->to ? s->to
                                             : ctl_command_topic(json_string_value(json_object_get(cmd, "type"))));
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(1);
    rd_kafka_header_add(hdrs, "traceparent", -1, s->traceparent, -1);
    rd_kafka_resp_err_t e = ctl_produce_with(s->producer, topic, key, key ? strlen(key) : 0, text, len,
                                             hdrs);
    free(topic);
    free(key);
    free(own);
    const char *id = json_string_value(json_object_get(cmd, "command_id"));
    if (!e && s->reader && id) {
        char *cid = ctl_send_id(id);
        if (!json_object_get(s->waiting, cid)) {
            json_object_set_new(s->waiting, cid, json_integer((json_int_t)tag));
            s->missing++;
        }
        free(cid);
    }
    if (s->reader)
        ctl_send_poll(s, 0);
    return e;
}

const char *ctl_send_trace_id(const struct ctl_send *s)
{
    return s->trace_id;
}

int ctl_send_flush(struct ctl_send *s)
{
    rd_kafka_flush(s->producer, 30000);
    return rd_kafka_outq_len(s->producer);
}

long ctl_send_wait(struct ctl_send *s, long timeout_s, bool idle, void (*tick)(void *arg))
{
    if (!s->reader)
        return 0;
    int64_t until = util_now_ms() + timeout_s * 1000;
    while (s->missing > 0 && util_now_ms() < until && !ctl_interrupted) {
        if (ctl_send_poll(s, 100) > 0 && idle)
            until = util_now_ms() + timeout_s * 1000;
        if (tick)
            tick(s->arg);
    }
    return s->missing;
}

long ctl_send_missing(const struct ctl_send *s)
{
    return s->missing;
}

void ctl_send_close(struct ctl_send *s)
{
    if (!s)
        return;
    if (s->producer)
        rd_kafka_destroy(s->producer);
    ctl_reader_close(s->reader);
    json_decref(s->waiting);
    free(s);
}

static void ctl_send_keep(void *arg, size_t tag, json_t *result)
{
    (void)tag;
    json_t **found = arg;
    *found = json_incref(result);
}

json_t *ctl_send_and_wait(const struct b2bd_config *cfg, const json_t *cmd, long timeout_s)
{
    json_t *found = NULL;
    struct ctl_send *s = ctl_send_open(cfg, ctl_send_keep, &found);
    if (!s)
        return NULL;
    rd_kafka_resp_err_t e = ctl_send_command(s, cmd, NULL, 0, 0);
    if (!e && ctl_send_flush(s) > 0)
        e = RD_KAFKA_RESP_ERR__MSG_TIMED_OUT;
    if (e) {
        fprintf(stderr, "b2bctl: the command was not delivered: %s\n", rd_kafka_err2str(e));
        ctl_send_close(s);
        json_decref(found);
        return NULL;
    }
    ctl_send_wait(s, timeout_s, false, NULL);
    ctl_send_close(s);
    if (!found) {
        const char *id = json_string_value(json_object_get(cmd, "command_id"));
        fprintf(stderr, "b2bctl: no result for command %s within %ld s\n", id ? id : "?", timeout_s);
    }
    return found;
}
