/* ctl_topics: b2bctl topics apply: the contract's topics from topics/manifest.json, through the Kafka admin API. */
#include "b2bd/ctl_topics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "b2bd/ctl_cli.h"
#include "b2bd/ctl_common.h"
#include "b2bd/kafka.h"

json_t *ctl_topics_plan(const json_t *manifest, const json_t *entry, const char *prefix, int n_brokers)
{
    const char *suffix = json_string_value(json_object_get(entry, "suffix"));
    json_int_t parts = json_integer_value(json_object_get(entry, "partitions"));
    if (!suffix || parts <= 0)
        return NULL;
    json_t *rf_j = json_object_get(entry, "replication_factor");
    if (!rf_j)
        rf_j = json_object_get(json_object_get(manifest, "defaults"), "replication_factor");
    json_int_t rf = json_is_integer(rf_j) ? json_integer_value(rf_j) : 1;
    if (n_brokers > 0 && rf > n_brokers)
        rf = n_brokers;
    if (rf < 1)
        rf = 1;
    json_t *config = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)json_object_get(entry, "config"), k, v) {
        if (!json_is_string(v))
            continue;
        if (!strcmp(k, "min.insync.replicas")) {
            long m = strtol(json_string_value(v), NULL, 10);
            if (m > rf) {
                char buf[24];
                snprintf(buf, sizeof buf, "%lld", (long long)rf);
                json_object_set_new(config, k, json_string(buf));
                continue;
            }
        }
        json_object_set(config, k, v);
    }
    size_t n = strlen(prefix) + strlen(suffix) + 1;
    char *name = malloc(n);
    snprintf(name, n, "%s%s", prefix, suffix);
    json_t *plan = json_pack("{s:s, s:I, s:I, s:o}", "name", name, "partitions", parts,
                             "replication_factor", rf, "config", config);
    free(name);
    return plan;
}

const char *ctl_topics_manifest(const char *given)
{
    if (given)
        return given;
    static const char *const paths[] = {"topics/manifest.json", CTL_TOPICS_INSTALLED_MANIFEST,
                                        CTL_TOPICS_SOURCE_MANIFEST};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
        if (access(paths[i], R_OK) == 0)
            return paths[i];
    return CTL_TOPICS_INSTALLED_MANIFEST;  /* none: the error names the installed one */
}

static int topics_apply(const struct b2bd_config *cfg, const char *manifest_path, long timeout_s, int json_out)
{
    json_error_t je;
    json_t *manifest = json_load_file(manifest_path, 0, &je);
    if (!manifest || !json_is_array(json_object_get(manifest, "topics"))) {
        fprintf(stderr, "b2bctl: %s: %s\n", manifest_path, manifest ? "no topics list" : je.text);
        json_decref(manifest);
        return 2;
    }
    static const char *const no_defaults[] = {NULL};
    struct b2bd_err kerr;
    rd_kafka_t *rk = kafka_client_new(cfg, RD_KAFKA_PRODUCER, no_defaults, &kerr);
    char why[512];
    if (!rk) {
        fprintf(stderr, "b2bctl: %s\n", kerr.msg);
        json_decref(manifest);
        return 2;
    }
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, (int)(timeout_s * 1000));
    if (e) {
        fprintf(stderr, "b2bctl: cluster metadata: %s\n", rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        json_decref(manifest);
        return 1;
    }
    int n_brokers = md->broker_cnt;
    json_t *report = json_array();
    size_t idx;
    json_t *entry;
    rd_kafka_NewTopic_t **create = calloc(json_array_size(json_object_get(manifest, "topics")) + 1,
                                          sizeof *create);
    size_t n_create = 0;
    json_array_foreach(json_object_get(manifest, "topics"), idx, entry) {
        json_t *plan = ctl_topics_plan(manifest, entry, cfg->topic_prefix, n_brokers);
        if (!plan)
            continue;
        const char *name = json_string_value(json_object_get(plan, "name"));
        const struct rd_kafka_metadata_topic *found = NULL;
        for (int t = 0; t < md->topic_cnt; t++)
            if (!strcmp(md->topics[t].topic, name) && !md->topics[t].err)
                found = &md->topics[t];
        if (found) {
            json_object_set_new(plan, "state", json_string("exists"));
            json_object_set_new(plan, "actual_partitions", json_integer(found->partition_cnt));
            if (found->partition_cnt != json_integer_value(json_object_get(plan, "partitions")))
                json_object_set_new(plan, "note", json_sprintf("the manifest says %lld partitions; not changed",
                                                               (long long)json_integer_value(json_object_get(plan, "partitions"))));
        } else {
            rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(
                name, (int)json_integer_value(json_object_get(plan, "partitions")),
                (int)json_integer_value(json_object_get(plan, "replication_factor")), why, sizeof why);
            if (!nt) {
                json_object_set_new(plan, "state", json_string("failed"));
                json_object_set_new(plan, "error", json_string(why));
            } else {
                const char *k;
                json_t *v;
                json_object_foreach(json_object_get(plan, "config"), k, v)
                    rd_kafka_NewTopic_set_config(nt, k, json_string_value(v));
                create[n_create++] = nt;
                json_object_set_new(plan, "state", json_string("pending"));
            }
        }
        json_array_append_new(report, plan);
    }
    rd_kafka_metadata_destroy(md);

    if (n_create) {
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
        rd_kafka_AdminOptions_set_request_timeout(ao, (int)(timeout_s * 1000), why, sizeof why);
        rd_kafka_AdminOptions_set_operation_timeout(ao, (int)(timeout_s * 1000), why, sizeof why);
        rd_kafka_CreateTopics(rk, create, n_create, ao, q);
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, (int)(timeout_s * 1000) + 5000);
        const char *all_err = NULL;
        char all_buf[512];
        const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
        if (!ev) {
            all_err = "no answer from the cluster";
        } else if (rd_kafka_event_error(ev)) {
            snprintf(all_buf, sizeof all_buf, "%s", rd_kafka_event_error_string(ev));
            all_err = all_buf;
        }
        size_t n_res = 0;
        const rd_kafka_topic_result_t **tr = res && !all_err ? rd_kafka_CreateTopics_result_topics(res, &n_res) : NULL;
        json_array_foreach(report, idx, entry) {
            if (strcmp(json_string_value(json_object_get(entry, "state")), "pending"))
                continue;
            const char *name = json_string_value(json_object_get(entry, "name"));
            const char *state = "failed", *err = all_err ? all_err : "no result for this topic";
            for (size_t t = 0; t < n_res; t++) {
                if (strcmp(rd_kafka_topic_result_name(tr[t]), name))
                    continue;
                rd_kafka_resp_err_t te = rd_kafka_topic_result_error(tr[t]);
                if (!te) {
                    state = "created";
                    err = NULL;
                } else if (te == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                    state = "exists";
                    err = NULL;
                } else {
                    err = rd_kafka_topic_result_error_string(tr[t]);
                    if (!err)
                        err = rd_kafka_err2str(te);
                }
            }
            json_object_set_new(entry, "state", json_string(state));
            if (err)
                json_object_set_new(entry, "error", json_string(err));
        }
        if (ev)
            rd_kafka_event_destroy(ev);
        rd_kafka_AdminOptions_destroy(ao);
        rd_kafka_queue_destroy(q);
        rd_kafka_NewTopic_destroy_array(create, n_create);
    }
    free(create);
    rd_kafka_destroy(rk);

    long n_exists = 0, n_created = 0, n_failed = 0;
    json_array_foreach(report, idx, entry) {
        const char *state = json_string_value(json_object_get(entry, "state"));
        n_exists += !strcmp(state, "exists");
        n_created += !strcmp(state, "created");
        n_failed += !strcmp(state, "failed");
    }
    if (json_out) {
        ctl_print_json(json_pack("{s:s, s:s, s:i, s:I, s:I, s:I, s:o}", "manifest", manifest_path, "prefix",
                                 cfg->topic_prefix, "brokers", n_brokers, "exists", (json_int_t)n_exists,
                                 "created", (json_int_t)n_created, "failed", (json_int_t)n_failed,
                                 "topics", report));
    } else {
        json_array_foreach(report, idx, entry) {
            const char *state = json_string_value(json_object_get(entry, "state"));
            printf("%-40s %-7s partitions %lld, replication factor %lld", json_string_value(json_object_get(entry, "name")),
                   state, (long long)json_integer_value(json_object_get(entry, json_object_get(entry, "actual_partitions") ? "actual_partitions" : "partitions")),
                   (long long)json_integer_value(json_object_get(entry, "replication_factor")));
            if (json_object_get(entry, "note"))
                printf(" (%s)", json_string_value(json_object_get(entry, "note")));
            if (json_object_get(entry, "error"))
                printf(": %s", json_string_value(json_object_get(entry, "error")));
            putchar('\n');
        }
        printf("%ld exist, %ld created, %ld failed (%d brokers)\n", n_exists, n_created, n_failed, n_brokers);
        json_decref(report);
    }
    json_decref(manifest);
    return n_failed ? 1 : 0;
}

int ctl_topics_apply_run(const struct b2bd_config *cfg, const struct ctl_args *a)
{
    long timeout_s = ctl_opt_long(a, "timeout", 15);
    if (timeout_s <= 0)
        timeout_s = 15;
    return topics_apply(cfg, ctl_topics_manifest(ctl_opt(a, "manifest")), timeout_s, ctl_flag(a, "json"));
}
