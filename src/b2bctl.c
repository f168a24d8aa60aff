/* b2bctl: the operator's command-line tool: send commands, follow topics, read access. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "b2bd/config.h"
#include "b2bd/db.h"
#include "b2bd/decode.h"
#include "b2bd/kafka.h"
#include "b2bd/log.h"
#include "b2bd/util.h"

extern char **environ;

static volatile sig_atomic_t interrupted;
static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: b2bctl [--config FILE] COMMAND ...\n"
            "commands:\n"
            "  send [--wait] [--timeout S] FILE   produce the commands of a JSON Lines file\n"
            "                                     (- for stdin) to their topics, with the\n"
            "                                     contract's keys; --wait reads b2b.results\n"
            "                                     until every command has its result and\n"
            "                                     prints a summary (exit 1 if any rejected)\n"
            "  tail [--max N] [--timeout S] TOPIC print the messages of an output topic\n"
            "                                     (results, events.access, dlq, ...) from\n"
            "                                     the beginning, one JSON line each\n"
            "  access SHOP CUSTOMER               a customer's companies, locations, roles\n"
            "Settings as for b2bd (--config FILE and B2BD_* variables; only the ones a\n"
            "command needs must be set).\n");
}

/* The contract's key of a command: shop_id/company_id, shop_id/customer_id or shop_id. */
static char *command_key(json_t *cmd)
{
    const char *type = json_string_value(json_object_get(cmd, "type"));
    const char *shop = json_string_value(json_object_get(cmd, "shop_id"));
    json_t *p = json_object_get(cmd, "payload");
    if (!type || !shop)
        return NULL;
    const char *second = NULL;
    if (!strcmp(type, "shop.upsert") || !strcmp(type, "template.update"))
        second = NULL;
    else if (!strcmp(type, "customer.upsert") || !strcmp(type, "order.upsert"))
        second = json_string_value(json_object_get(p, "customer_id"));
    else
        second = json_string_value(json_object_get(p, "company_id"));
    struct sbuf b = {0};
    sbuf_adds(&b, shop);
    if (second) {
        sbuf_adds(&b, "/");
        sbuf_adds(&b, second);
    }
    return b.s;
}

static const char *command_topic(const char *type)
{
    static const char *const direct[] = {"assign", "revoke", "migrate", "notify"};
    for (size_t i = 0; i < 4; i++)
        if (type && !strcmp(type, direct[i])) {
            static char buf[32];
            snprintf(buf, sizeof buf, "commands.%s", direct[i]);
            return buf;
        }
    return "commands.sync";
}

/* Reads an output topic from the beginning (all partitions, no group). */
static rd_kafka_t *open_reader(const struct b2bd_config *cfg, const char *suffix)
{
    char why[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char group[64];
    char id[37];
    util_uuid_v4(id);
    snprintf(group, sizeof group, "b2bctl-%s", id);
    if (rd_kafka_conf_set(conf, "bootstrap.servers", cfg->kafka_bootstrap, why, sizeof why) ||
        rd_kafka_conf_set(conf, "group.id", group, why, sizeof why) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", why, sizeof why) ||
        rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", why, sizeof why)) {
        fprintf(stderr, "b2bctl: %s\n", why);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_kafka; i++)
        rd_kafka_conf_set(conf, cfg->kafka[i].key, cfg->kafka[i].value, why, sizeof why);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
    if (!rk) {
        fprintf(stderr, "b2bctl: %s\n", why);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    char *topic = config_topic(cfg, suffix);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
    rd_kafka_topic_destroy(rkt);
    if (e || md->topic_cnt != 1 || md->topics[0].err) {
        fprintf(stderr, "b2bctl: no topic %s: %s\n", topic,
                rd_kafka_err2str(e ? e : md->topic_cnt ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC));
        if (md)
            rd_kafka_metadata_destroy(md);
        free(topic);
        rd_kafka_destroy(rk);
        return NULL;
    }
    rd_kafka_topic_partition_list_t *parts =
        rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++)
        rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[i].id)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    rd_kafka_metadata_destroy(md);
    free(topic);
    return rk;
}

struct pending {
    char **ids;
    size_t n, cap;
};

static int cmd_send(const struct b2bd_config *cfg, int argc, char **argv)
{
    int wait = 0;
    long timeout_s = 120;
    static const struct option opts[] = {{"wait", no_argument, NULL, 'w'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {NULL, 0, NULL, 0}};
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "wt:", opts, NULL)) != -1) {
        if (o == 'w')
            wait = 1;
        else if (o == 't')
            timeout_s = strtol(optarg, NULL, 10);
        else
            return 2;
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    const char *path = argv[optind];
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) {
        perror(path);
        return 1;
    }
    struct b2bd_err err;
    rd_kafka_t *reader = wait ? open_reader(cfg, "results") : NULL;
    if (wait && !reader)
        return 1;
    rd_kafka_t *rk = kafka_producer_new(cfg, NULL, &err);
    if (!rk) {
        fprintf(stderr, "b2bctl: %s\n", err.msg);
        return 1;
    }
    struct pending pend = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long lineno = 0, sent = 0, bad = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        lineno++;
        json_error_t je;
        json_t *cmd = json_loadb(line, (size_t)len, 0, &je);
        if (!cmd) {
            if (strspn(line, " \t\r\n") == (size_t)len)
                continue;
            fprintf(stderr, "b2bctl: %s:%ld: not JSON: %s\n", path, lineno, je.text);
            bad++;
            continue;
        }
        char *key = command_key(cmd);
        const char *id = json_string_value(json_object_get(cmd, "command_id"));
        char *topic = config_topic(cfg, command_topic(json_string_value(json_object_get(cmd, "type"))));
        rd_kafka_resp_err_t e;
        while ((e = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key ? strlen(key) : 0),
                                      RD_KAFKA_V_VALUE(line, (size_t)len),
                                      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END)) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 100);
        if (e) {
            fprintf(stderr, "b2bctl: %s:%ld: %s\n", path, lineno, rd_kafka_err2str(e));
            bad++;
        } else {
            sent++;
            if (wait && id) {
                if (pend.n == pend.cap) {
                    pend.cap = pend.cap ? pend.cap * 2 : 256;
                    pend.ids = realloc(pend.ids, pend.cap * sizeof *pend.ids);
                }
                pend.ids[pend.n++] = strdup(id);
            }
        }
        free(topic);
        free(key);
        json_decref(cmd);
        rd_kafka_poll(rk, 0);
    }
    free(line);
    if (f != stdin)
        fclose(f);
    rd_kafka_flush(rk, 30000);
    if (rd_kafka_outq_len(rk) > 0) {
        fprintf(stderr, "b2bctl: %d messages not delivered\n", rd_kafka_outq_len(rk));
        bad++;
    }
    rd_kafka_destroy(rk);
    printf("sent=%ld unreadable_lines=%ld\n", sent, bad);
    if (!wait)
        return bad ? 1 : 0;

    /* wait for one result per command id; count by status and error code */
    json_t *seen = json_object(), *codes = json_object();
    long applied = 0, rejected = 0, waiting = (long)pend.n;
    json_t *want = json_object();
    for (size_t i = 0; i < pend.n; i++) {
        json_object_set_new(want, pend.ids[i], json_true());
        free(pend.ids[i]);
    }
    free(pend.ids);
    waiting = (long)json_object_size(want);
    int64_t deadline = util_now_ms() + timeout_s * 1000;
    while (waiting > 0 && util_now_ms() < deadline && !interrupted) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(reader, 200);
        if (!m)
            continue;
        if (!m->err) {
            json_t *r = json_loadb(m->payload, m->len, 0, NULL);
            const char *id = json_string_value(json_object_get(r, "command_id"));
            if (id && json_object_get(want, id) && !json_object_get(seen, id)) {
                json_object_set_new(seen, id, json_true());
                waiting--;
                const char *status = json_string_value(json_object_get(r, "status"));
                if (status && !strcmp(status, "applied")) {
                    applied++;
                } else {
                    rejected++;
                    const char *code = json_string_value(
                        json_object_get(json_object_get(r, "error"), "code"));
                    json_int_t c = json_integer_value(json_object_get(codes, code ? code : "?"));
                    json_object_set_new(codes, code ? code : "?", json_integer(c + 1));
                }
            }
            json_decref(r);
        }
        rd_kafka_message_destroy(m);
    }
    printf("results: applied=%ld rejected=%ld missing=%ld\n", applied, rejected, waiting);
    const char *code;
    json_t *cnt;
    json_object_foreach(codes, code, cnt)
        printf("  rejected %s: %lld\n", code, (long long)json_integer_value(cnt));
    json_decref(seen);
    json_decref(codes);
    json_decref(want);
    rd_kafka_consumer_close(reader);
    rd_kafka_destroy(reader);
    return (bad || rejected || waiting) ? 1 : 0;
}

static int cmd_tail(const struct b2bd_config *cfg, int argc, char **argv)
{
    long max = -1, timeout_s = 5;
    static const struct option opts[] = {{"max", required_argument, NULL, 'm'},
                                         {"timeout", required_argument, NULL, 't'},
                                         {NULL, 0, NULL, 0}};
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "m:t:", opts, NULL)) != -1) {
        if (o == 'm')
            max = strtol(optarg, NULL, 10);
        else if (o == 't')
            timeout_s = strtol(optarg, NULL, 10);
        else
            return 2;
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    rd_kafka_t *rk = open_reader(cfg, argv[optind]);
    if (!rk)
        return 1;
    long n = 0;
    int64_t idle_until = util_now_ms() + timeout_s * 1000;
    while ((max < 0 || n < max) && util_now_ms() < idle_until && !interrupted) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (!m->err) {
            printf("%.*s\n", (int)m->len, (const char *)m->payload);
            n++;
            idle_until = util_now_ms() + timeout_s * 1000;
        }
        rd_kafka_message_destroy(m);
    }
    fflush(stdout);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return 0;
}

static int cmd_access(const struct b2bd_config *cfg, int argc, char **argv)
{
    if (argc != 3) {
        usage(stderr);
        return 2;
    }
    struct b2bd_db db;
    struct b2bd_err err;
    db_init(&db, cfg->pg_dsn, cfg->pg_password);
    if (db_connect(&db, &err) < 0) {
        fprintf(stderr, "b2bctl: %s\n", err.msg);
        db_free(&db);
        return 1;
    }
    static const char sql[] =
        "SELECT k.company_id, co.name, r.location_id, l.name, r.role FROM contacts k"
        " JOIN companies co ON co.shop_id = k.shop_id AND co.company_id = k.company_id"
        " LEFT JOIN roles r ON r.shop_id = k.shop_id AND r.company_id = k.company_id"
        "  AND r.customer_id = k.customer_id"
        " LEFT JOIN locations l ON l.shop_id = r.shop_id AND l.location_id = r.location_id"
        " WHERE k.shop_id = $1 AND k.customer_id = $2 ORDER BY 1, 3";
    const char *v[] = {argv[1], argv[2]};
    PGresult *res = db_query(&db, sql, 2, v, NULL, NULL, &err);
    if (!res) {
        fprintf(stderr, "b2bctl: %s\n", err.msg);
        db_free(&db);
        return 1;
    }
    if (PQntuples(res) == 0)
        printf("%s/%s: no company (D2C)\n", argv[1], argv[2]);
    for (int i = 0; i < PQntuples(res); i++) {
        if (PQgetisnull(res, i, 2))
            printf("company %s (%s): No access\n", PQgetvalue(res, i, 0), PQgetvalue(res, i, 1));
        else
            printf("company %s (%s): location %s (%s): %s\n", PQgetvalue(res, i, 0),
                   PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
                   PQgetvalue(res, i, 4));
    }
    PQclear(res);
    db_free(&db);
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int i = 1;
    if (i + 1 < argc && !strcmp(argv[i], "--config")) {
        path = argv[i + 1];
        i += 2;
    }
    if (i >= argc || !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
        usage(i >= argc ? stderr : stdout);
        return i >= argc ? 2 : 0;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    log_init(LOG_WARN, stderr);
    /* b2bctl needs only some settings: fill the required ones it may not use */
    struct b2bd_config cfg;
    struct b2bd_err err;
    const char *cmd = argv[i];
    size_t n_env = 0;
    while (environ[n_env])
        n_env++;
    char **envp = calloc(n_env + 3, sizeof *envp);
    envp[0] = "B2BD_KAFKA_BOOTSTRAP=127.0.0.1:9092";
    envp[1] = "B2BD_PG_DSN=dbname=b2bd";
    memcpy(envp + 2, environ, n_env * sizeof *envp);
    int rc = config_load(path, envp, &cfg, &err);
    free(envp);
    if (rc < 0) {
        fprintf(stderr, "b2bctl: configuration: %s %s\n", err.field, err.msg);
        return 2;
    }
    if (!strcmp(cmd, "send"))
        rc = cmd_send(&cfg, argc - i, argv + i);
    else if (!strcmp(cmd, "tail"))
        rc = cmd_tail(&cfg, argc - i, argv + i);
    else if (!strcmp(cmd, "access"))
        rc = cmd_access(&cfg, argc - i, argv + i);
    else {
        usage(stderr);
        rc = 2;
    }
    config_free(&cfg);
    return rc;
}
