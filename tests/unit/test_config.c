/* test_config: defaults, the file format, environment overrides, errors, redaction. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "b2bd/config.h"

static char tmpdir[] = "/tmp/b2bd-test-config-XXXXXX";
static int file_seq;

/* Writes content to a new file in tmpdir; returns its path (static buffer per call slot). */
static const char *write_file(const char *content)
{
    static char paths[8][512];
    char *path = paths[file_seq % 8];
    snprintf(path, 512, "%s/f%d.conf", tmpdir, file_seq++);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    assert_int_equal(fclose(f), 0);
    return path;
}

static int group_setup(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* The two required settings, from the environment. */
static char *const env_required[] = {"B2BD_KAFKA_BOOTSTRAP=localhost:9092",
                                     "B2BD_PG_DSN=dbname=b2b", NULL};

/* Loads and expects failure; returns the error for checks. */
static struct b2bd_err load_fails(const char *path, char *const *envp)
{
    struct b2bd_config cfg;
    struct b2bd_err err;
    int rc = config_load(path, envp, &cfg, &err);
    if (rc == 0)
        fail_msg("config_load succeeded, expected an error");
    assert_int_not_equal(err.code, B2BD_OK);
    /* a configuration's failure is never told in a command's words (INVALID...) */
    assert_false(b2bd_code_is_rejection(err.code));
    assert_false(b2bd_code_is_dead_letter(err.code));
    assert_true(strlen(err.msg) > 0);
    /* On failure, nothing is left allocated. */
    assert_null(cfg.kafka_bootstrap);
    assert_null(cfg.kafka);
    return err;
}

static void load_ok(const char *path, char *const *envp, struct b2bd_config *cfg)
{
    struct b2bd_err err;
    if (config_load(path, envp, cfg, &err) != 0)
        fail_msg("config_load failed: field=%s msg=%s", err.field, err.msg);
}

static void test_defaults(void **state)
{
    (void)state;
    struct b2bd_config cfg;
    load_ok(NULL, env_required, &cfg);
    assert_string_equal(cfg.kafka_bootstrap, "localhost:9092");
    assert_string_equal(cfg.pg_dsn, "dbname=b2b");
    assert_null(cfg.smtp_url);
    assert_null(cfg.smtp_from);
    assert_string_equal(cfg.smtp_starttls, "try");
    assert_string_equal(cfg.topic_prefix, "b2b.");
    assert_string_equal(cfg.group_id, "b2bd");
    assert_non_null(cfg.templates_dir);
    const char *t = strstr(cfg.templates_dir, "templates");
    assert_non_null(t);
    assert_string_equal(t, "templates");
    assert_null(cfg.pg_password_file);
    assert_null(cfg.smtp_password_file);
    assert_null(cfg.smtp_ca_file);
    assert_null(cfg.pg_password);
    assert_null(cfg.smtp_password);
    assert_string_equal(cfg.http_listen, "127.0.0.1:9187");
    assert_string_equal(cfg.role, "all");
    assert_int_equal(cfg.log_level, LOG_INFO);
    assert_int_equal(cfg.max_message_bytes, 1048576);
    assert_int_equal(cfg.batch_max, 500);
    assert_int_equal(cfg.batch_linger_ms, 0);
    assert_int_equal(cfg.notifier_retry_initial_ms, 60000);
    assert_int_equal(cfg.notifier_retry_max_ms, 3600000);
    assert_int_equal(cfg.notifier_give_up_s, 432000);
    assert_int_equal(cfg.notifier_concurrency, 4);
    assert_int_equal(cfg.n_kafka, 0);
    config_free(&cfg);
    assert_null(cfg.kafka_bootstrap);
    config_free(&cfg); /* freeing twice is harmless: the struct was zeroed */
}

static void test_file_parsed(void **state)
{
    (void)state;
    const char *path = write_file(
        "# b2bd test configuration\n"
        "\n"
        "   # indented comment\n"
        "kafka_bootstrap=broker1:9092,broker2:9092\n"
        "pg_dsn   =   host=db dbname=b2b user=b2bd   \n"
        "\tsmtp_url\t=\t\"smtp://mail:25\"\t\n"
        "smtp_from = \"B2B Shop <shop@example.com>\"\n"
        "topic_prefix = \"test.\\\"q\\\\.\"\n"
        "group_id = g#1\r\n" /* no inline comments */
        "templates_dir = /srv/templates\n"
        "log_level = debug\n"
        "max_message_bytes = 2048\n"
        "batch_max = 10\n"
        "batch_linger_ms = 7\n"
        "notifier_retry_initial_ms = 1000\n"
        "notifier_retry_max_ms = 20000\n"
        "notifier_give_up_s = 300\n"
        "notifier_concurrency = 8\n"
        "http_listen = 0.0.0.0:9999\n"
        "role = notifier\n"
        "kafka.security.protocol = SASL_SSL\n"
        "kafka.sasl.mechanisms = PLAIN\n"
        "kafka.client.id = \"b2bd # one\"\n");

    struct b2bd_config cfg;
    load_ok(path, NULL, &cfg);
    assert_string_equal(cfg.kafka_bootstrap, "broker1:9092,broker2:9092");
    assert_string_equal(cfg.pg_dsn, "host=db dbname=b2b user=b2bd");
    assert_string_equal(cfg.smtp_url, "smtp://mail:25");
    assert_string_equal(cfg.smtp_from, "B2B Shop <shop@example.com>");
    assert_string_equal(cfg.topic_prefix, "test.\"q\\.");
    assert_string_equal(cfg.group_id, "g#1");
    assert_string_equal(cfg.templates_dir, "/srv/templates");
    assert_int_equal(cfg.log_level, LOG_DEBUG);
    assert_int_equal(cfg.max_message_bytes, 2048);
    assert_int_equal(cfg.batch_max, 10);
    assert_int_equal(cfg.batch_linger_ms, 7);
    assert_int_equal(cfg.notifier_retry_initial_ms, 1000);
    assert_int_equal(cfg.notifier_retry_max_ms, 20000);
    assert_int_equal(cfg.notifier_give_up_s, 300);
    assert_int_equal(cfg.notifier_concurrency, 8);
    assert_string_equal(cfg.http_listen, "0.0.0.0:9999");
    assert_string_equal(cfg.role, "notifier");
    assert_int_equal(cfg.n_kafka, 3);
    assert_string_equal(cfg.kafka[0].key, "security.protocol");
    assert_string_equal(cfg.kafka[0].value, "SASL_SSL");
    assert_string_equal(cfg.kafka[1].key, "sasl.mechanisms");
    assert_string_equal(cfg.kafka[1].value, "PLAIN");
    assert_string_equal(cfg.kafka[2].key, "client.id");
    assert_string_equal(cfg.kafka[2].value, "b2bd # one");
    config_free(&cfg);
}

static void test_file_last_value_wins_and_empty_values(void **state)
{
    (void)state;
    const char *path = write_file("kafka_bootstrap = a:1\n"
                                  "pg_dsn = dbname=x\n"
                                  "batch_max = 7\n"
                                  "batch_max = 9\n"
                                  "smtp_url = smtp://first\n"
                                  "smtp_url =\n"
                                  "topic_prefix = \"\"\n"
                                  "kafka.client.id = one\n"
                                  "kafka.client.id = two\n");
    struct b2bd_config cfg;
    load_ok(path, NULL, &cfg);
    assert_int_equal(cfg.batch_max, 9);
    assert_null(cfg.smtp_url);               /* empty unsets an optional key */
    assert_string_equal(cfg.topic_prefix, ""); /* a prefix may be empty */
    assert_int_equal(cfg.n_kafka, 1);
    assert_string_equal(cfg.kafka[0].value, "two");
    config_free(&cfg);
}

static void test_unknown_key(void **state)
{
    (void)state;
    const char *path = write_file("# comment\nkafka_bootstrap = a:1\nno_such_key = 1\n");
    struct b2bd_err err = load_fails(path, env_required);
    assert_int_equal(err.code, B2BD_ERR_CONFIG);
    assert_string_equal(b2bd_code_name(err.code), "CONFIG_ERROR");
    assert_string_equal(err.field, "no_such_key");
    char where[600];
    snprintf(where, sizeof where, "%s:3", path);
    assert_non_null(strstr(err.msg, where));
    assert_non_null(strstr(err.msg, "unknown key"));

    /* Keys are case-sensitive; env-style names are not file keys. */
    path = write_file("BATCH_MAX = 1\n");
    err = load_fails(path, env_required);
    assert_string_equal(err.field, "BATCH_MAX");
}

static void test_missing_equals(void **state)
{
    (void)state;
    const char *path = write_file("kafka_bootstrap = a:1\nbatch_max 5\n");
    struct b2bd_err err = load_fails(path, env_required);
    char where[600];
    snprintf(where, sizeof where, "%s:2", path);
    assert_non_null(strstr(err.msg, where));

    path = write_file(" = value\n");
    err = load_fails(path, env_required);
    snprintf(where, sizeof where, "%s:1", path);
    assert_non_null(strstr(err.msg, where));
}

static void test_bad_quotes(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "smtp_from = \"unterminated\n",
        "smtp_from = \"bad \\n escape\"\n",
        "smtp_from = \"closed\" trailing\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char content[256];
        snprintf(content, sizeof content, "# x\n%s", bad[i]);
        const char *path = write_file(content);
        struct b2bd_err err = load_fails(path, env_required);
        assert_string_equal(err.field, "smtp_from");
        char where[600];
        snprintf(where, sizeof where, "%s:2", path);
        assert_non_null(strstr(err.msg, where));
    }
}

static void test_kafka_prefix_without_name(void **state)
{
    (void)state;
    const char *path = write_file("kafka. = x\n");
    struct b2bd_err err = load_fails(path, env_required);
    assert_string_equal(err.field, "kafka.");
    char *const env[] = {"B2BD_KAFKA_BOOTSTRAP=a:1", "B2BD_PG_DSN=x", "B2BD_KAFKA__=1", NULL};
    err = load_fails(NULL, env);
    assert_string_equal(err.field, "B2BD_KAFKA__");
}

static void test_unreadable_file(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/does-not-exist.conf", tmpdir);
    struct b2bd_err err = load_fails(path, env_required);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, strerror(ENOENT)));
    assert_int_equal(err.code, B2BD_ERR_IO);
    assert_string_equal(b2bd_code_name(err.code), "IO_ERROR");

    /* A directory is not a readable file either. */
    err = load_fails(tmpdir, env_required);
    assert_non_null(strstr(err.msg, tmpdir));
    assert_int_equal(err.code, B2BD_ERR_IO);
}

/* Each bad value, for each way of setting it, is rejected naming the key. */
static void test_numbers_rejected(void **state)
{
    (void)state;
    static const struct {
        const char *key;
        const char *value;
    } bad[] = {
        {"batch_max", "abc"},
        {"batch_max", "12x"},
        {"batch_max", "-1"},
        {"batch_max", "0"},
        {"batch_max", "99999999999999999999999"},
        {"batch_max", "-99999999999999999999999"},
        {"batch_max", ""},
        {"batch_max", "+5"},
        {"batch_max", "0x10"},
        {"batch_max", "1.5"},
        {"batch_linger_ms", "-1"},
        {"max_message_bytes", "0"},
        {"max_message_bytes", "abc"},
        {"notifier_retry_initial_ms", "-5"},
        {"notifier_retry_max_ms", "1e6"},
        {"notifier_give_up_s", "0"},
        {"notifier_concurrency", "0"},
        {"notifier_concurrency", "100000"},
        {"log_level", "verbose"},
        {"log_level", ""},
        {"role", "both"},
        {"smtp_starttls", "yes"},
        {"role", ""},
        {"group_id", ""},
        {"templates_dir", ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        /* From the file: field = key, message has file:line. */
        char content[256];
        snprintf(content, sizeof content, "kafka_bootstrap = a:1\n%s = %s\n", bad[i].key,
                 bad[i].value);
        const char *path = write_file(content);
        struct b2bd_err err = load_fails(path, env_required);
        assert_string_equal(err.field, bad[i].key);
        char where[600];
        snprintf(where, sizeof where, "%s:2", path);
        if (!strstr(err.msg, where))
            fail_msg("%s=%s: message without %s: %s", bad[i].key, bad[i].value, where,
                     err.msg);
        assert_non_null(strstr(err.msg, bad[i].key));

        /* From the environment: the message names the variable. */
        char var[128], upper[64];
        size_t j = 0;
        for (; bad[i].key[j]; j++)
            upper[j] = (char)(bad[i].key[j] >= 'a' && bad[i].key[j] <= 'z'
                                  ? bad[i].key[j] - 32
                                  : bad[i].key[j]);
        upper[j] = '\0';
        snprintf(var, sizeof var, "B2BD_%s=%s", upper, bad[i].value);
        char *const env[] = {"B2BD_KAFKA_BOOTSTRAP=a:1", "B2BD_PG_DSN=x", var, NULL};
        err = load_fails(NULL, env);
        assert_string_equal(err.field, bad[i].key);
        char varname[128];
        snprintf(varname, sizeof varname, "B2BD_%s", upper);
        assert_non_null(strstr(err.msg, varname));
    }
}

static void test_numbers_accepted(void **state)
{
    (void)state;
    char *const env[] = {"B2BD_KAFKA_BOOTSTRAP=a:1",
                         "B2BD_PG_DSN=x",
                         "B2BD_BATCH_MAX=1",
                         "B2BD_BATCH_LINGER_MS=60000",
                         "B2BD_NOTIFIER_GIVE_UP_S=2147483647",
                         "B2BD_MAX_MESSAGE_BYTES=007",
                         "B2BD_LOG_LEVEL=WARN",
                         NULL};
    struct b2bd_config cfg;
    load_ok(NULL, env, &cfg);
    assert_int_equal(cfg.batch_max, 1);
    assert_int_equal(cfg.batch_linger_ms, 60000);
    assert_int_equal(cfg.notifier_give_up_s, 2147483647L);
    assert_int_equal(cfg.max_message_bytes, 7);
    assert_int_equal(cfg.log_level, LOG_WARN);
    config_free(&cfg);
}

static void test_required_missing(void **state)
{
    (void)state;
    char *const no_kafka[] = {"B2BD_PG_DSN=dbname=x", NULL};
    struct b2bd_err err = load_fails(NULL, no_kafka);
    assert_string_equal(err.field, "kafka_bootstrap");
    assert_non_null(strstr(err.msg, "B2BD_KAFKA_BOOTSTRAP"));

    char *const no_pg[] = {"B2BD_KAFKA_BOOTSTRAP=a:1", NULL};
    err = load_fails(NULL, no_pg);
    assert_string_equal(err.field, "pg_dsn");

    char *const empty_pg[] = {"B2BD_KAFKA_BOOTSTRAP=a:1", "B2BD_PG_DSN=", NULL};
    err = load_fails(NULL, empty_pg);
    assert_string_equal(err.field, "pg_dsn");

    err = load_fails(NULL, NULL);
    assert_string_equal(err.field, "kafka_bootstrap");

    const char *path = write_file("kafka_bootstrap = a:1\n");
    err = load_fails(path, NULL);
    assert_string_equal(err.field, "pg_dsn");
}

static void test_env_beats_file(void **state)
{
    (void)state;
    const char *path2 = write_file("kafka_bootstrap = file:9092\n"
                                   "pg_dsn = dbname=file\n"
                                   "topic_prefix = file.\n"
                                   "batch_max = 10\n"
                                   "smtp_from = file@example.com\n"
                                   "log_level = error\n");
    char *const env[] = {"PATH=/usr/bin",
                         "B2BD_KAFKA_BOOTSTRAP=env:9092",
                         "B2BD_PG_DSN=dbname=env",
                         "B2BD_TOPIC_PREFIX=env.",
                         "B2BD_BATCH_MAX=20",
                         "B2BD_SMTP_FROM=env@example.com",
                         "B2BD_SMTP_URL=smtp://env:25",
                         "B2BD_LOG_LEVEL=debug",
                         "B2BD_NOTIFIER_RETRY_INITIAL_MS=100",
                         "B2BD_NOTIFIER_RETRY_MAX_MS=1000",
                         "B2BD_NOTIFIER_GIVE_UP_S=5",
                         "B2BD_ROLE=worker",
                         "B2BD_HTTP_LISTEN=:0",
                         /* Not keys: other tools' variables, ignored. */
                         "B2BD_SOURCE_DIR=/src",
                         "B2BD_BUILD_DIR=/build",
                         "B2BD_=x",
                         "B2BD_NOPE",
                         "b2bd_batch_max=30",
                         "B2BD_batch_max=40",
                         "B2BD_PG_DSN_EXTRA=1",
                         NULL};
    struct b2bd_config cfg;
    load_ok(path2, env, &cfg);
    assert_string_equal(cfg.kafka_bootstrap, "env:9092");
    assert_string_equal(cfg.pg_dsn, "dbname=env");
    assert_string_equal(cfg.topic_prefix, "env.");
    assert_int_equal(cfg.batch_max, 20);
    assert_string_equal(cfg.smtp_from, "env@example.com");
    assert_string_equal(cfg.smtp_url, "smtp://env:25");
    assert_int_equal(cfg.log_level, LOG_DEBUG);
    assert_int_equal(cfg.notifier_retry_initial_ms, 100);
    assert_int_equal(cfg.notifier_retry_max_ms, 1000);
    assert_int_equal(cfg.notifier_give_up_s, 5);
    assert_string_equal(cfg.role, "worker");
    assert_string_equal(cfg.http_listen, ":0");
    assert_int_equal(cfg.n_kafka, 0);
    config_free(&cfg);
}

static void test_env_kafka_mapping(void **state)
{
    (void)state;
    char *const env[] = {"B2BD_KAFKA_BOOTSTRAP=a:1",
                         "B2BD_PG_DSN=x",
                         "B2BD_KAFKA__SESSION_TIMEOUT_MS=6000",
                         "B2BD_KAFKA__SECURITY_PROTOCOL=SASL_SSL",
                         "B2BD_KAFKA__SASL_PASSWORD=p=a b",
                         NULL};
    struct b2bd_config cfg;
    load_ok(NULL, env, &cfg);
    assert_string_equal(cfg.kafka_bootstrap, "a:1"); /* B2BD_KAFKA_BOOTSTRAP is a key */
    assert_int_equal(cfg.n_kafka, 3);
    assert_string_equal(cfg.kafka[0].key, "session.timeout.ms");
    assert_string_equal(cfg.kafka[0].value, "6000");
    assert_string_equal(cfg.kafka[1].key, "security.protocol");
    assert_string_equal(cfg.kafka[1].value, "SASL_SSL");
    assert_string_equal(cfg.kafka[2].key, "sasl.password");
    assert_string_equal(cfg.kafka[2].value, "p=a b");
    config_free(&cfg);
}

static void test_kafka_env_replaces_file(void **state)
{
    (void)state;
    const char *path = write_file("kafka_bootstrap = a:1\n"
                                  "pg_dsn = x\n"
                                  "kafka.session.timeout.ms = 10000\n"
                                  "kafka.client.id = from-file\n"
                                  "kafka.Some_Odd.Name = kept as is\n");
    char *const env[] = {"B2BD_KAFKA__SESSION_TIMEOUT_MS=6000",
                         "B2BD_KAFKA__STATISTICS_INTERVAL_MS=0", NULL};
    struct b2bd_config cfg;
    load_ok(path, env, &cfg);
    assert_int_equal(cfg.n_kafka, 4);
    assert_string_equal(cfg.kafka[0].key, "session.timeout.ms");
    assert_string_equal(cfg.kafka[0].value, "6000");
    assert_string_equal(cfg.kafka[1].key, "client.id");
    assert_string_equal(cfg.kafka[1].value, "from-file");
    assert_string_equal(cfg.kafka[2].key, "Some_Odd.Name");
    assert_string_equal(cfg.kafka[2].value, "kept as is");
    assert_string_equal(cfg.kafka[3].key, "statistics.interval.ms");
    assert_string_equal(cfg.kafka[3].value, "0");
    config_free(&cfg);
}

static void test_password_files(void **state)
{
    (void)state;
    const char *pg = write_file("pg-s3cret\n");
    char pgpath[512];
    snprintf(pgpath, sizeof pgpath, "%s", pg);
    const char *smtp = write_file("smtp pass \"x\"\r\n\n");
    char content[1200];
    snprintf(content, sizeof content, "kafka_bootstrap = a:1\npg_dsn = host=db\n"
                                      "pg_password_file = %s\n",
             pgpath);
    const char *path = write_file(content);
    char smtpvar[600];
    snprintf(smtpvar, sizeof smtpvar, "B2BD_SMTP_PASSWORD_FILE=%s", smtp);
    char *const env[] = {smtpvar, NULL};
    struct b2bd_config cfg;
    load_ok(path, env, &cfg);
    assert_string_equal(cfg.pg_password_file, pgpath);
    assert_string_equal(cfg.pg_password, "pg-s3cret");
    assert_string_equal(cfg.smtp_password, "smtp pass \"x\"");

    /* Never dumped. */
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    config_dump(&cfg, f);
    fclose(f);
    assert_null(strstr(out, "s3cret"));
    assert_null(strstr(out, "smtp pass"));
    assert_non_null(strstr(out, pgpath)); /* the path is not a secret */
    free(out);
    config_free(&cfg);

    /* Missing and empty files are errors naming the key. */
    char missing[600];
    snprintf(missing, sizeof missing, "B2BD_PG_PASSWORD_FILE=%s/none", tmpdir);
    char *const env2[] = {"B2BD_KAFKA_BOOTSTRAP=a:1", "B2BD_PG_DSN=x", missing, NULL};
    struct b2bd_err err = load_fails(NULL, env2);
    assert_string_equal(err.field, "pg_password_file");
    assert_non_null(strstr(err.msg, strerror(ENOENT)));
    assert_int_equal(err.code, B2BD_ERR_IO);

    const char *empty = write_file("\n");
    char emptyvar[600];
    snprintf(emptyvar, sizeof emptyvar, "B2BD_SMTP_PASSWORD_FILE=%s", empty);
    char *const env3[] = {"B2BD_KAFKA_BOOTSTRAP=a:1", "B2BD_PG_DSN=x", emptyvar, NULL};
    err = load_fails(NULL, env3);
    assert_string_equal(err.field, "smtp_password_file");
    assert_int_equal(err.code, B2BD_ERR_CONFIG); /* the file is there: its content is wrong */
}

static void test_redact(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *want;
    } cases[] = {
        {"host=db dbname=b2b user=app password=SECRET",
         "host=db dbname=b2b user=app password=***"},
        {"password=SECRET host=db", "password=*** host=db"},
        {"host=db password = SECRET port=5432", "host=db password = *** port=5432"},
        {"host=db password='SEC RET \\' x' port=5432", "host=db password='***' port=5432"},
        {"host=db password=SEC\\ RET port=1", "host=db password=*** port=1"},
        {"host=db sslpassword=SECRET", "host=db sslpassword=***"},
        {"host=db dbname=b2b", "host=db dbname=b2b"},
        {"postgresql://app:SECRET@db:5432/b2b", "postgresql://app:***@db:5432/b2b"},
        {"postgres://app:SECRET@db/b2b?sslmode=require",
         "postgres://app:***@db/b2b?sslmode=require"},
        {"postgresql://app@db/b2b?password=SECRET&sslmode=disable",
         "postgresql://app@db/b2b?password=***&sslmode=disable"},
        {"postgresql://app:SE/CR@ET@h1:5432,h2:5432/b2b",
         "postgresql://app:***@h1:5432,h2:5432/b2b"},
        {"postgresql://:SECRET@db/b2b", "postgresql://:***@db/b2b"},
        {"postgresql://db/b2b", "postgresql://db/b2b"},
        {"postgresql://app@db/b2b", "postgresql://app@db/b2b"},
        {"smtp://mailer:SECRET@mail.example.com:587", "smtp://mailer:***@mail.example.com:587"},
        {"smtps://mailer%40example.com:SECRET@mail.example.com",
         "smtps://mailer%40example.com:***@mail.example.com"},
        {"smtp://mail:25", "smtp://mail:25"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = config_redact(cases[i].in);
        assert_non_null(got);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("config_redact(%s) = %s, want %s", cases[i].in, got, cases[i].want);
        assert_null(strstr(got, "SEC"));
        free(got);
    }
    char *n = config_redact(NULL);
    assert_string_equal(n, "");
    free(n);
}

static void test_dump_hides_secrets(void **state)
{
    (void)state;
    const char *path = write_file(
        "kafka_bootstrap = a:1\n"
        "pg_dsn = \"host=db user=app password=PGSECRET dbname=b2b\"\n"
        "smtp_url = smtps://mailer:SMTPSECRET@mail.example.com\n"
        "kafka.security.protocol = SASL_SSL\n"
        "kafka.sasl.password = KSECRET1\n"
        "kafka.ssl.key.password = KSECRET2\n"
        "kafka.ssl.key.pem = KSECRET3\n"
        "kafka.sasl.oauthbearer.config = principal=x secret=KSECRET4\n"
        "kafka.sasl.oauthbearer.client.secret = KSECRET5\n"
        "kafka.client.id = visible-id\n");
    struct b2bd_config cfg;
    load_ok(path, NULL, &cfg);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    config_dump(&cfg, f);
    fclose(f);
    assert_null(strstr(out, "SECRET"));
    assert_non_null(strstr(out, "pg_dsn=host=db user=app password=*** dbname=b2b\n"));
    assert_non_null(strstr(out, "smtp_url=smtps://mailer:***@mail.example.com\n"));
    assert_non_null(strstr(out, "kafka.security.protocol=SASL_SSL\n"));
    assert_non_null(strstr(out, "kafka.sasl.password=***\n"));
    assert_non_null(strstr(out, "kafka.client.id=visible-id\n"));
    assert_non_null(strstr(out, "batch_max=500\n"));
    assert_non_null(strstr(out, "log_level=info\n"));
    assert_non_null(strstr(out, "role=all\n"));
    assert_non_null(strstr(out, "smtp_from=\n"));

    /* Every key once, sorted, then the kafka.* properties in order. */
    static const char *const all[] = {
        "apply_workers", "batch_linger_ms", "batch_max", "bulk_assign", "group_id", "http_listen", "kafka_bootstrap",
        "log_level", "max_message_bytes", "notifier_concurrency", "notifier_give_up_s",
        "notifier_rate_per_s", "notifier_retry_initial_ms", "notifier_retry_max_ms", "pg_dsn", "pg_password_file",
        "role", "smtp_ca_file", "smtp_from", "smtp_password_file", "smtp_starttls", "smtp_url", "templates_dir",
        "topic_prefix", "kafka.security.protocol", "kafka.sasl.password",
        "kafka.ssl.key.password", "kafka.ssl.key.pem", "kafka.sasl.oauthbearer.config",
        "kafka.sasl.oauthbearer.client.secret", "kafka.client.id",
    };
    const char *p = out;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        size_t n = strlen(all[i]);
        if (strncmp(p, all[i], n) != 0 || p[n] != '=')
            fail_msg("line %zu: want %s, got %.40s", i, all[i], p);
        p = strchr(p, '\n');
        assert_non_null(p);
        p++;
    }
    assert_string_equal(p, "");
    free(out);
    config_free(&cfg);
}

static void test_topic(void **state)
{
    (void)state;
    struct b2bd_config cfg;
    load_ok(NULL, env_required, &cfg);
    char *t = config_topic(&cfg, "results");
    assert_string_equal(t, "b2b.results");
    free(t);
    t = config_topic(&cfg, "events.access");
    assert_string_equal(t, "b2b.events.access");
    free(t);
    config_free(&cfg);

    char *const env[] = {"B2BD_KAFKA_BOOTSTRAP=a:1", "B2BD_PG_DSN=x", "B2BD_TOPIC_PREFIX=t-1.",
                         NULL};
    load_ok(NULL, env, &cfg);
    t = config_topic(&cfg, "commands.dlq");
    assert_string_equal(t, "t-1.commands.dlq");
    free(t);
    config_free(&cfg);
}

/* The shipped example parses; with its `#key = value` lines uncommented (all but the
 * password files), it still parses and gives the built-in defaults. */
/* smtp_ca_file: from the file or B2BD_SMTP_CA_FILE (which wins); one that cannot be read
 * is an error at load, naming the key. */
static void test_smtp_ca_file(void **state)
{
    (void)state;
    char ca[512], ca2[512];
    snprintf(ca, sizeof ca, "%s", write_file("-----BEGIN CERTIFICATE-----\n"));
    snprintf(ca2, sizeof ca2, "%s", write_file("-----BEGIN CERTIFICATE-----\n"));
    char content[1200];
    snprintf(content, sizeof content, "kafka_bootstrap = a:1\npg_dsn = host=db\nsmtp_ca_file = %s\n",
             ca);
    const char *path = write_file(content);
    struct b2bd_config cfg;
    load_ok(path, NULL, &cfg);
    assert_string_equal(cfg.smtp_ca_file, ca);
    config_free(&cfg);
    char var[600];
    snprintf(var, sizeof var, "B2BD_SMTP_CA_FILE=%s", ca2);
    char *const env[] = {var, NULL};
    load_ok(path, env, &cfg);
    assert_string_equal(cfg.smtp_ca_file, ca2);
    config_free(&cfg);

    char missing[600];
    snprintf(missing, sizeof missing, "B2BD_SMTP_CA_FILE=%s/no-ca.pem", tmpdir);
    char *const env2[] = {"B2BD_KAFKA_BOOTSTRAP=a:1", "B2BD_PG_DSN=x", missing, NULL};
    struct b2bd_err err = load_fails(NULL, env2);
    assert_string_equal(err.field, "smtp_ca_file");
    assert_non_null(strstr(err.msg, strerror(ENOENT)));
}

static void test_example_file(void **state)
{
    (void)state;
#ifndef B2BD_SOURCE_DIR
    skip();
#else
    const char *example = B2BD_SOURCE_DIR "/config/b2bd.conf";
    struct b2bd_config cfg, def;
    load_ok(example, NULL, &cfg);
    assert_string_equal(cfg.kafka_bootstrap, "localhost:9092");
    config_free(&cfg);

    FILE *in = fopen(example, "r");
    assert_non_null(in);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    char line[1024];
    int uncommented = 0;
    while (fgets(line, sizeof line, in)) {
        if (line[0] == '#' && line[1] >= 'a' && line[1] <= 'z' && strstr(line, " = ") &&
            !strstr(line, "_password_file") && !strstr(line, "smtp_ca_file")) {
            fputs(line + 1, out);
            uncommented++;
        } else {
            fputs(line, out);
        }
    }
    fclose(in);
    fclose(out);
    assert_true(uncommented >= 15);
    const char *path = write_file(text);
    free(text);
    load_ok(path, NULL, &cfg);
    load_ok(NULL, env_required, &def);
    assert_string_equal(cfg.topic_prefix, def.topic_prefix);
    assert_string_equal(cfg.group_id, def.group_id);
    assert_string_equal(cfg.role, def.role);
    assert_string_equal(cfg.http_listen, def.http_listen);
    assert_int_equal(cfg.log_level, def.log_level);
    assert_int_equal(cfg.max_message_bytes, def.max_message_bytes);
    assert_int_equal(cfg.batch_max, def.batch_max);
    assert_int_equal(cfg.batch_linger_ms, def.batch_linger_ms);
    assert_int_equal(cfg.notifier_retry_initial_ms, def.notifier_retry_initial_ms);
    assert_int_equal(cfg.notifier_retry_max_ms, def.notifier_retry_max_ms);
    assert_int_equal(cfg.notifier_give_up_s, def.notifier_give_up_s);
    assert_int_equal(cfg.notifier_concurrency, def.notifier_concurrency);
    assert_true(cfg.n_kafka >= 5);
    config_free(&cfg);
    config_free(&def);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_parsed),
        cmocka_unit_test(test_file_last_value_wins_and_empty_values),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_missing_equals),
        cmocka_unit_test(test_bad_quotes),
        cmocka_unit_test(test_kafka_prefix_without_name),
        cmocka_unit_test(test_unreadable_file),
        cmocka_unit_test(test_numbers_rejected),
        cmocka_unit_test(test_numbers_accepted),
        cmocka_unit_test(test_required_missing),
        cmocka_unit_test(test_env_beats_file),
        cmocka_unit_test(test_env_kafka_mapping),
        cmocka_unit_test(test_kafka_env_replaces_file),
        cmocka_unit_test(test_password_files),
        cmocka_unit_test(test_redact),
        cmocka_unit_test(test_dump_hides_secrets),
        cmocka_unit_test(test_topic),
        cmocka_unit_test(test_smtp_ca_file),
        cmocka_unit_test(test_example_file),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
