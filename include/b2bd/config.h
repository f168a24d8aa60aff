/* config: the daemon's settings, from a file and the environment. */
#ifndef B2BD_CONFIG_H
#define B2BD_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "b2bd/err.h"
#include "b2bd/log.h"

struct b2bd_kv {
    char *key;
    char *value;
};

/* One snapshot of the configuration. All strings owned; free with config_free().
 * An optional string without a default (smtp_url, smtp_from, *_password_file) is NULL
 * when not set; an empty value in the file or the environment also leaves it NULL. */
struct b2bd_config {
    char *kafka_bootstrap;          /* kafka_bootstrap, B2BD_KAFKA_BOOTSTRAP (required) */
    char *pg_dsn;                   /* pg_dsn, B2BD_PG_DSN (required; secret) */
    char *smtp_url;                 /* smtp_url, B2BD_SMTP_URL (secret: may hold a password) */
    char *smtp_from;                /* smtp_from, B2BD_SMTP_FROM */
    char *topic_prefix;             /* topic_prefix, B2BD_TOPIC_PREFIX, default "b2b." */
    char *group_id;                 /* group_id, B2BD_GROUP_ID, default "b2bd" */
    char *templates_dir;            /* templates_dir, default: the installed config/templates */
    char *pg_password_file;         /* pg_password_file: file holding the PostgreSQL password */
    char *smtp_password_file;       /* smtp_password_file: file holding the SMTP password */
    char *pg_password;              /* read from pg_password_file at load, or NULL (secret) */
    char *smtp_password;            /* read from smtp_password_file at load, or NULL (secret) */
    char *http_listen;              /* http_listen: metrics endpoint, default "127.0.0.1:9187" */
    char *role;                     /* role: "all" (default), "worker" or "notifier" */
    char *smtp_starttls;            /* smtp_starttls: off, try (default) or required, for smtp:// */
    char *smtp_ca_file;             /* smtp_ca_file: PEM file of the CAs that the SMTP server's
                                       certificate must chain to, instead of the system's */
    enum log_level log_level;       /* log_level: debug|info|warn|error, default info */
    long max_message_bytes;         /* max_message_bytes, default 1048576 */
    long batch_max;                 /* batch_max: commands per transaction, default 500 */
    long apply_workers;             /* apply_workers: a batch's partitions applied in
                                       parallel by this many connections, default 2 */
    char *bulk_assign;              /* bulk_assign: on (default) or off: runs of plain assigns
                                       and of revokes applied set-based (apply_bulk.c) */
    long batch_linger_ms;           /* batch_linger_ms, default 0 */
    long notifier_retry_initial_ms; /* default 60000 */
    long notifier_retry_max_ms;     /* default 3600000 */
    long notifier_give_up_s;        /* default 432000 */
    long notifier_concurrency;      /* default 4 */
    long notifier_rate_per_s;       /* emails per second per instance at most; 0: no limit */
    struct b2bd_kv *kafka;          /* kafka.* pass-through properties, in order */
    size_t n_kafka;
};

/* Loads defaults, then the file at path (may be NULL: no file), then the environment
 * (envp, NULL-terminated "NAME=value" strings, e.g. environ).
 *
 * File format: one `key = value` per line; `#` starts a comment line; blank lines are
 * ignored; values may be wrapped in double quotes (then \" and \\ are escapes).
 * Keys are the names above, or `kafka.<property>`, passed to librdkafka as is.
 * Environment: B2BD_<KEY upper-cased> overrides a key (B2BD_PG_DSN sets pg_dsn);
 * B2BD_KAFKA__<NAME> sets the Kafka property NAME lower-cased with `_` read as `.`.
 *
 * Other B2BD_* variables are ignored. A Kafka property set in both: the environment's
 * value replaces the file's (one entry). Numbers are whole decimal numbers in a range
 * per key. Last, pg_password_file / smtp_password_file are read (trailing newlines cut)
 * into pg_password / smtp_password.
 *
 * Returns 0, or -1 with err naming the key (err->field) and what is wrong: an unknown
 * key, a value that does not parse, a missing required setting; the message holds
 * file:line or the variable's name. On error *out holds nothing to free. */
int config_load(const char *path, char *const *envp, struct b2bd_config *out,
                struct b2bd_err *err);

void config_free(struct b2bd_config *cfg);

/* The full name of a topic: prefix + suffix ("b2b." + "results"). Caller frees. */
char *config_topic(const struct b2bd_config *cfg, const char *suffix);

/* Writes every setting as `key=value` lines to f, keys sorted, then the kafka.*
 * properties; secrets replaced by "***" (pg_dsn and smtp_url passwords; kafka.* whose
 * name holds password, secret, sasl.oauthbearer.config or ssl.key). pg_password and
 * smtp_password are never written. */
void config_dump(const struct b2bd_config *cfg, FILE *f);

/* Returns a copy of a connection string or URL with any password replaced by "***",
 * for logs. Caller frees. Allocation failure aborts (util's sbuf). */
char *config_redact(const char *dsn_or_url);

#endif
