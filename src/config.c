/* config: settings from defaults, a `key = value` file and B2BD_* environment variables. */
#include "b2bd/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "b2bd/util.h"

#ifndef B2BD_DATA_DIR
#define B2BD_DATA_DIR "/usr/local/share/b2bd"
#endif

#define ENV_PREFIX "B2BD_"
#define ENV_KAFKA_PREFIX "B2BD_KAFKA__"
#define FILE_KAFKA_PREFIX "kafka."
#define PASSWORD_FILE_MAX 4096

enum cfg_type { CFG_STRING, CFG_LONG, CFG_LOG_LEVEL };

enum {
    CFG_REQUIRED = 1, /* must be set, non-empty */
    CFG_SECRET = 2,   /* config_dump redacts it */
    CFG_NONEMPTY = 4, /* an empty value is an error (it has a default) */
};

struct cfg_key {
    const char *name;
    enum cfg_type type;
    const char *def;            /* default, as text; NULL: none (strings stay NULL) */
    size_t offset;              /* of the field in struct b2bd_config */
    int flags;
    long min, max;              /* CFG_LONG: accepted range */
    const char *const *choices; /* CFG_STRING: accepted values, NULL-terminated, or NULL */
};

static const char *const role_choices[] = {"all", "worker", "notifier", NULL};
static const char *const starttls_choices[] = {"off", "try", "required", NULL};
static const char *const on_off_choices[] = {"on", "off", NULL};

#define OFF(f) offsetof(struct b2bd_config, f)

/* Every key, sorted by name (looked up with bsearch; config_dump prints this order). */
static const struct cfg_key keys[] = {
    {"apply_workers", CFG_LONG, "2", OFF(apply_workers), 0, 1, 64, NULL},
    {"batch_linger_ms", CFG_LONG, "0", OFF(batch_linger_ms), 0, 0, 60000, NULL},
    {"batch_max", CFG_LONG, "500", OFF(batch_max), 0, 1, 1000000, NULL},
    {"bulk_assign", CFG_STRING, "on", OFF(bulk_assign), CFG_NONEMPTY, 0, 0, on_off_choices},
    {"group_id", CFG_STRING, "b2bd", OFF(group_id), CFG_NONEMPTY, 0, 0, NULL},
    {"http_listen", CFG_STRING, "127.0.0.1:9187", OFF(http_listen), CFG_NONEMPTY, 0, 0, NULL},
    {"kafka_bootstrap", CFG_STRING, NULL, OFF(kafka_bootstrap), CFG_REQUIRED, 0, 0, NULL},
    {"log_level", CFG_LOG_LEVEL, "info", OFF(log_level), 0, 0, 0, NULL},
    {"max_message_bytes", CFG_LONG, "1048576", OFF(max_message_bytes), 0, 1, 1000000000, NULL},
    {"notifier_concurrency", CFG_LONG, "4", OFF(notifier_concurrency), 0, 1, 1024, NULL},
    {"notifier_give_up_s", CFG_LONG, "432000", OFF(notifier_give_up_s), 0, 1, INT_MAX, NULL},
    {"notifier_rate_per_s", CFG_LONG, "0", OFF(notifier_rate_per_s), 0, 0, 1000000, NULL},
    {"notifier_retry_initial_ms", CFG_LONG, "60000", OFF(notifier_retry_initial_ms), 0, 1,
     INT_MAX, NULL},
    {"notifier_retry_max_ms", CFG_LONG, "3600000", OFF(notifier_retry_max_ms), 0, 1, INT_MAX,
     NULL},
    {"pg_dsn", CFG_STRING, NULL, OFF(pg_dsn), CFG_REQUIRED | CFG_SECRET, 0, 0, NULL},
    {"pg_password_file", CFG_STRING, NULL, OFF(pg_password_file), 0, 0, 0, NULL},
    {"role", CFG_STRING, "all", OFF(role), CFG_NONEMPTY, 0, 0, role_choices},
    {"smtp_ca_file", CFG_STRING, NULL, OFF(smtp_ca_file), 0, 0, 0, NULL},
    {"smtp_from", CFG_STRING, NULL, OFF(smtp_from), 0, 0, 0, NULL},
    {"smtp_password_file", CFG_STRING, NULL, OFF(smtp_password_file), 0, 0, 0, NULL},
    {"smtp_starttls", CFG_STRING, "try", OFF(smtp_starttls), CFG_NONEMPTY, 0, 0, starttls_choices},
    {"smtp_url", CFG_STRING, NULL, OFF(smtp_url), CFG_SECRET, 0, 0, NULL},
    /* Default computed in default_templates_dir(). */
    {"templates_dir", CFG_STRING, NULL, OFF(templates_dir), CFG_NONEMPTY, 0, 0, NULL},
    {"topic_prefix", CFG_STRING, "b2b.", OFF(topic_prefix), 0, 0, 0, NULL},
};

#define N_KEYS (sizeof keys / sizeof keys[0])

static int key_cmp(const void *name, const void *k)
{
    return strcmp((const char *)name, ((const struct cfg_key *)k)->name);
}

static const struct cfg_key *find_key(const char *name)
{
    return bsearch(name, keys, N_KEYS, sizeof keys[0], key_cmp);
}

static char **str_field(struct b2bd_config *cfg, const struct cfg_key *k)
{
    return (char **)((char *)cfg + k->offset);
}

static const char *const *cstr_field(const struct b2bd_config *cfg, const struct cfg_key *k)
{
    return (const char *const *)((const char *)cfg + k->offset);
}

static long *long_field(struct b2bd_config *cfg, const struct cfg_key *k)
{
    return (long *)((char *)cfg + k->offset);
}

static enum log_level *level_field(struct b2bd_config *cfg, const struct cfg_key *k)
{
    return (enum log_level *)((char *)cfg + k->offset);
}

static int oom(struct b2bd_err *err)
{
    b2bd_err_set(err, B2BD_ERR_INTERNAL, NULL, "out of memory");
    return -1;
}

/* Where a value came from, for error messages: "file:12" or "B2BD_BATCH_MAX". */
struct origin {
    const char *path; /* file, or NULL for the environment */
    int line;
    const char *env;  /* environment variable name (NULL-terminated copy) */
};

static void origin_text(const struct origin *o, char *buf, size_t size)
{
    if (o->path)
        snprintf(buf, size, "%s:%d", o->path, o->line);
    else if (o->env)
        snprintf(buf, size, "%s", o->env);
    else
        snprintf(buf, size, "default");
}

/* Strict decimal: optional '-', digits only, all consumed, no overflow. */
static int parse_long(const char *s, long *out)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return -1;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q))
            return -1;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno == ERANGE)
        return -2;
    if (*end)
        return -1;
    *out = v;
    return 0;
}

/* Sets key k from the text value; returns 0 or -1 with err set. */
static int set_value(struct b2bd_config *cfg, const struct cfg_key *k, const char *value,
                     const struct origin *o, struct b2bd_err *err)
{
    char where[300];
    origin_text(o, where, sizeof where);
    switch (k->type) {
    case CFG_STRING: {
        if (!*value && (k->flags & CFG_NONEMPTY)) {
            b2bd_err_set(err, B2BD_ERR_CONFIG, k->name, "%s: %s must not be empty", where,
                         k->name);
            return -1;
        }
        if (k->choices && *value) {
            int ok = 0;
            for (const char *const *c = k->choices; *c; c++)
                ok |= strcmp(*c, value) == 0;
            if (!ok) {
                char list[128] = "";
                for (const char *const *c = k->choices; *c; c++) {
                    strncat(list, c == k->choices ? "" : ", ", sizeof list - strlen(list) - 1);
                    strncat(list, *c, sizeof list - strlen(list) - 1);
                }
                b2bd_err_set(err, B2BD_ERR_CONFIG, k->name, "%s: %s must be one of %s, not \"%.64s\"",
                             where, k->name, list, value);
                return -1;
            }
        }
        char **f = str_field(cfg, k);
        char *copy = NULL;
        /* An empty value unsets an optional key without default; keeps "" otherwise. */
        if (*value || k->def) {
            copy = strdup(value);
            if (!copy)
                return oom(err);
        }
        free(*f);
        *f = copy;
        return 0;
    }
    case CFG_LONG: {
        long v = 0;
        int rc = parse_long(value, &v);
        if (rc == -1) {
            b2bd_err_set(err, B2BD_ERR_CONFIG, k->name, "%s: %s is not a whole number: \"%.64s\"",
                         where, k->name, value);
            return -1;
        }
        if (rc == -2 || v < k->min || v > k->max) {
            b2bd_err_set(err, B2BD_ERR_CONFIG, k->name,
                         "%s: %s must be between %ld and %ld, not \"%.64s\"", where, k->name,
                         k->min, k->max, value);
            return -1;
        }
        *long_field(cfg, k) = v;
        return 0;
    }
    case CFG_LOG_LEVEL: {
        int lvl = log_level_parse(value);
        if (lvl < 0) {
            b2bd_err_set(err, B2BD_ERR_CONFIG, k->name,
                         "%s: %s must be debug, info, warn or error, not \"%.64s\"", where,
                         k->name, value);
            return -1;
        }
        *level_field(cfg, k) = (enum log_level)lvl;
        return 0;
    }
    }
    return 0;
}

/* Sets a Kafka property; an existing one is replaced in place (one entry per name). */
static int set_kafka(struct b2bd_config *cfg, const char *name, const char *value,
                     struct b2bd_err *err)
{
    char *v = strdup(value);
    if (!v)
        return oom(err);
    for (size_t i = 0; i < cfg->n_kafka; i++) {
        if (strcmp(cfg->kafka[i].key, name) == 0) {
            free(cfg->kafka[i].value);
            cfg->kafka[i].value = v;
            return 0;
        }
    }
    char *k = strdup(name);
    struct b2bd_kv *grown = realloc(cfg->kafka, (cfg->n_kafka + 1) * sizeof *grown);
    if (!k || !grown) {
        free(k);
        free(v);
        if (grown)
            cfg->kafka = grown;
        return oom(err);
    }
    cfg->kafka = grown;
    cfg->kafka[cfg->n_kafka].key = k;
    cfg->kafka[cfg->n_kafka].value = v;
    cfg->n_kafka++;
    return 0;
}

static char *default_templates_dir(void)
{
#ifdef B2BD_SOURCE_DIR
    struct stat st;
    if (stat(B2BD_SOURCE_DIR "/config/templates", &st) == 0 && S_ISDIR(st.st_mode))
        return strdup(B2BD_SOURCE_DIR "/config/templates");
#endif
    return strdup(B2BD_DATA_DIR "/templates");
}

static int load_defaults(struct b2bd_config *cfg, struct b2bd_err *err)
{
    static const struct origin def = {NULL, 0, NULL};
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct cfg_key *k = &keys[i];
        if (k->def && set_value(cfg, k, k->def, &def, err) != 0)
            return -1;
    }
    cfg->templates_dir = default_templates_dir();
    if (!cfg->templates_dir)
        return oom(err);
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

/* Unquotes a "..." value in place (\" and \\ are the escapes). Returns 0, or -1 with a
 * reason. Values not starting with a quote are left as they are. */
static int unquote(char *v, const char **why)
{
    if (*v != '"')
        return 0;
    char *w = v;
    const char *r = v + 1;
    for (;;) {
        if (!*r) {
            *why = "unterminated quoted value";
            return -1;
        }
        if (*r == '"')
            break;
        if (*r == '\\') {
            if (r[1] != '"' && r[1] != '\\') {
                *why = "unknown escape in quoted value (only \\\" and \\\\)";
                return -1;
            }
            r++;
        }
        *w++ = *r++;
    }
    if (r[1]) {
        *why = "text after the closing quote";
        return -1;
    }
    *w = '\0';
    return 0;
}

static int load_file(struct b2bd_config *cfg, const char *path, struct b2bd_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        b2bd_err_set(err, B2BD_ERR_IO, NULL, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0, rc = 0;
    while ((n = getline(&buf, &cap, f)) >= 0) {
        lineno++;
        if ((size_t)n != strlen(buf)) {
            b2bd_err_set(err, B2BD_ERR_CONFIG, NULL, "%s:%d: NUL byte in line", path, lineno);
            rc = -1;
            break;
        }
        char *line = trim(buf);
        if (!*line || *line == '#')
            continue;
        char *eq = strchr(line, '=');
        if (!eq) {
            b2bd_err_set(err, B2BD_ERR_CONFIG, NULL, "%s:%d: expected `key = value`", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *key = trim(line);
        char *value = trim(eq + 1);
        struct origin o = {path, lineno, NULL};
        if (!*key) {
            b2bd_err_set(err, B2BD_ERR_CONFIG, NULL, "%s:%d: missing key before '='", path, lineno);
            rc = -1;
            break;
        }
        const char *why = NULL;
        if (unquote(value, &why) != 0) {
            b2bd_err_set(err, B2BD_ERR_CONFIG, key, "%s:%d: %s: %s", path, lineno, key, why);
            rc = -1;
            break;
        }
        if (strncmp(key, FILE_KAFKA_PREFIX, strlen(FILE_KAFKA_PREFIX)) == 0) {
            const char *prop = key + strlen(FILE_KAFKA_PREFIX);
            if (!*prop) {
                b2bd_err_set(err, B2BD_ERR_CONFIG, key, "%s:%d: missing Kafka property name after "
                             "\"kafka.\"", path, lineno);
                rc = -1;
                break;
            }
            if (set_kafka(cfg, prop, value, err) != 0) {
                rc = -1;
                break;
            }
            continue;
        }
        const struct cfg_key *k = find_key(key);
        if (!k) {
            b2bd_err_set(err, B2BD_ERR_CONFIG, key, "%s:%d: unknown key \"%.64s\"", path, lineno,
                         key);
            rc = -1;
            break;
        }
        if (set_value(cfg, k, value, &o, err) != 0) {
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        b2bd_err_set(err, B2BD_ERR_IO, NULL, "cannot read %s: %s", path, strerror(errno));
        rc = -1;
    }
    free(buf);
    fclose(f);
    return rc;
}

/* The key whose environment name (B2BD_ + upper-cased key) is name, or NULL. */
static const struct cfg_key *find_env_key(const char *name, size_t len)
{
    size_t plen = strlen(ENV_PREFIX);
    if (len <= plen || strncmp(name, ENV_PREFIX, plen) != 0)
        return NULL;
    const char *rest = name + plen;
    size_t rlen = len - plen;
    for (size_t i = 0; i < N_KEYS; i++) {
        const char *kn = keys[i].name;
        if (strlen(kn) != rlen)
            continue;
        size_t j = 0;
        while (j < rlen && rest[j] == toupper((unsigned char)kn[j]))
            j++;
        if (j == rlen)
            return &keys[i];
    }
    return NULL;
}

static int load_env(struct b2bd_config *cfg, char *const *envp, struct b2bd_err *err)
{
    if (!envp)
        return 0;
    size_t kplen = strlen(ENV_KAFKA_PREFIX);
    for (char *const *e = envp; *e; e++) {
        const char *entry = *e;
        const char *eq = strchr(entry, '=');
        if (!eq || strncmp(entry, ENV_PREFIX, strlen(ENV_PREFIX)) != 0)
            continue;
        size_t nlen = (size_t)(eq - entry);
        const char *value = eq + 1;
        char *name = strndup(entry, nlen);
        if (!name)
            return oom(err);
        int rc = 0;
        if (nlen >= kplen && strncmp(entry, ENV_KAFKA_PREFIX, kplen) == 0) {
            /* B2BD_KAFKA__SESSION_TIMEOUT_MS -> session.timeout.ms */
            char *prop = name + kplen;
            if (!*prop) {
                b2bd_err_set(err, B2BD_ERR_CONFIG, name, "%s: missing Kafka property name", name);
                rc = -1;
            } else {
                for (char *p = prop; *p; p++)
                    *p = *p == '_' ? '.' : (char)tolower((unsigned char)*p);
                rc = set_kafka(cfg, prop, value, err);
            }
        } else {
            const struct cfg_key *k = find_env_key(entry, nlen);
            if (k) { /* other B2BD_* variables belong to other tools: ignored */
                struct origin o = {NULL, 0, name};
                rc = set_value(cfg, k, value, &o, err);
            }
        }
        free(name);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* Reads a password file: the whole content, without the trailing newline(s). */
static int read_password_file(const char *key, const char *path, char **out,
                              struct b2bd_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        b2bd_err_set(err, B2BD_ERR_IO, key, "%s: cannot read %s: %s", key, path,
                     strerror(errno));
        return -1;
    }
    char *buf = malloc(PASSWORD_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        return oom(err);
    }
    size_t n = fread(buf, 1, PASSWORD_FILE_MAX + 1, f);
    int bad = ferror(f);
    int saved = errno;
    fclose(f);
    const char *problem = NULL;
    if (bad)
        problem = strerror(saved);
    else if (n > PASSWORD_FILE_MAX)
        problem = "file too large for a password";
    else if (memchr(buf, '\0', n))
        problem = "NUL byte in the file";
    if (!problem) {
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
            n--;
        if (n == 0)
            problem = "the file is empty";
    }
    if (problem) {
        explicit_bzero(buf, PASSWORD_FILE_MAX + 1);
        free(buf);
        b2bd_err_set(err, bad ? B2BD_ERR_IO : B2BD_ERR_CONFIG, key, "%s: cannot read %s: %s",
                     key, path, problem);
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

static int finish(struct b2bd_config *cfg, struct b2bd_err *err)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct cfg_key *k = &keys[i];
        if (!(k->flags & CFG_REQUIRED))
            continue;
        const char *v = *cstr_field(cfg, k);
        if (!v || !*v) {
            char env[64];
            size_t j = 0;
            for (const char *p = ENV_PREFIX; *p && j < sizeof env - 1; p++)
                env[j++] = *p;
            for (const char *p = k->name; *p && j < sizeof env - 1; p++)
                env[j++] = (char)toupper((unsigned char)*p);
            env[j] = '\0';
            b2bd_err_set(err, B2BD_ERR_CONFIG, k->name,
                         "%s is required: set it in the configuration file or in %s", k->name,
                         env);
            return -1;
        }
    }
    if (cfg->pg_password_file &&
        read_password_file("pg_password_file", cfg->pg_password_file, &cfg->pg_password, err))
        return -1;
    if (cfg->smtp_password_file &&
        read_password_file("smtp_password_file", cfg->smtp_password_file, &cfg->smtp_password,
                           err))
        return -1;
    /* a CA file that cannot be read would fail every send: say so at start */
    if (cfg->smtp_ca_file && access(cfg->smtp_ca_file, R_OK) != 0) {
        b2bd_err_set(err, B2BD_ERR_IO, "smtp_ca_file", "smtp_ca_file: cannot read %s: %s",
                     cfg->smtp_ca_file, strerror(errno));
        return -1;
    }
    return 0;
}

int config_load(const char *path, char *const *envp, struct b2bd_config *out,
                struct b2bd_err *err)
{
    memset(out, 0, sizeof *out);
    b2bd_err_clear(err);
    if (load_defaults(out, err) != 0 || (path && load_file(out, path, err) != 0) ||
        load_env(out, envp, err) != 0 || finish(out, err) != 0) {
        config_free(out);
        return -1;
    }
    return 0;
}

static void free_secret(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void config_free(struct b2bd_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < N_KEYS; i++) {
        if (keys[i].type != CFG_STRING)
            continue;
        char **f = str_field(cfg, &keys[i]);
        if (keys[i].flags & CFG_SECRET)
            free_secret(*f);
        else
            free(*f);
    }
    free_secret(cfg->pg_password);
    free_secret(cfg->smtp_password);
    for (size_t i = 0; i < cfg->n_kafka; i++) {
        free(cfg->kafka[i].key);
        free_secret(cfg->kafka[i].value);
    }
    free(cfg->kafka);
    memset(cfg, 0, sizeof *cfg);
}

char *config_topic(const struct b2bd_config *cfg, const char *suffix)
{
    const char *prefix = cfg && cfg->topic_prefix ? cfg->topic_prefix : "";
    if (!suffix)
        suffix = "";
    char *s = NULL;
    if (asprintf(&s, "%s%s", prefix, suffix) < 0)
        return NULL;
    return s;
}

static int kafka_secret(const char *name)
{
    return strstr(name, "password") || strstr(name, "secret") ||
           strstr(name, "sasl.oauthbearer.config") || strstr(name, "ssl.key");
}

void config_dump(const struct b2bd_config *cfg, FILE *f)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct cfg_key *k = &keys[i];
        const char *base = (const char *)cfg + k->offset;
        switch (k->type) {
        case CFG_STRING: {
            const char *v = *(const char *const *)(const void *)base;
            if (v && (k->flags & CFG_SECRET)) {
                char *r = config_redact(v);
                fprintf(f, "%s=%s\n", k->name, r ? r : "***");
                free(r);
            } else {
                fprintf(f, "%s=%s\n", k->name, v ? v : "");
            }
            break;
        }
        case CFG_LONG:
            fprintf(f, "%s=%ld\n", k->name, *(const long *)(const void *)base);
            break;
        case CFG_LOG_LEVEL: {
            static const char *const names[] = {"debug", "info", "warn", "error"};
            int lvl = (int)*(const enum log_level *)(const void *)base;
            fprintf(f, "%s=%s\n", k->name, lvl >= 0 && lvl < 4 ? names[lvl] : "?");
            break;
        }
        }
    }
    for (size_t i = 0; i < cfg->n_kafka; i++)
        fprintf(f, "kafka.%s=%s\n", cfg->kafka[i].key,
                kafka_secret(cfg->kafka[i].key) ? "***" : cfg->kafka[i].value);
}

/* --- config_redact ------------------------------------------------------------------ */

/* The text of b, owned by the caller ("" when empty). */
static char *sb_take(struct sbuf *b)
{
    sbuf_add(b, "", 0);
    return b->s;
}

static int is_password_name(const char *s, size_t n)
{
    static const char pw[] = "password";
    size_t m = sizeof pw - 1;
    for (size_t i = 0; i + m <= n; i++)
        if (strncasecmp(s + i, pw, m) == 0)
            return 1;
    return 0;
}

/* A URI: scheme "://" [user[:password]@] host... [?query]. */
static char *redact_uri(const char *s, const char *authority)
{
    struct sbuf b = {0};
    sbuf_add(&b, s, (size_t)(authority - s));
    /* The query (and the fragment) start at the first '?' or '#'. */
    const char *qpos = authority + strcspn(authority, "?#");
    /* User info ends at the last '@' before it (a raw '/' or '@' in a password stays
     * inside the redacted part). */
    const char *at = NULL;
    for (const char *p = authority; p < qpos; p++)
        if (*p == '@')
            at = p;
    const char *p = authority;
    if (at) {
        const char *colon = memchr(authority, ':', (size_t)(at - authority));
        if (colon) {
            sbuf_add(&b, authority, (size_t)(colon + 1 - authority));
            sbuf_adds(&b, "***");
            p = at;
        }
    }
    sbuf_add(&b, p, (size_t)(qpos - p));
    p = qpos;
    if (*p == '?') {
        /* Query parameters: any *password* value hidden. */
        sbuf_add(&b, p, 1);
        p++;
        while (*p && *p != '#') {
            size_t plen = strcspn(p, "&#");
            const char *eq = memchr(p, '=', plen);
            if (eq && is_password_name(p, (size_t)(eq - p))) {
                sbuf_add(&b, p, (size_t)(eq + 1 - p));
                sbuf_adds(&b, "***");
            } else {
                sbuf_add(&b, p, plen);
            }
            p += plen;
            if (*p == '&') {
                sbuf_add(&b, p, 1);
                p++;
            }
        }
    }
    sbuf_adds(&b, p);
    return sb_take(&b);
}

/* libpq's key = value form: values bare (backslash escapes) or in single quotes. */
static char *redact_kv(const char *s)
{
    struct sbuf b = {0};
    const char *p = s;
    while (*p) {
        /* Whitespace. */
        const char *start = p;
        while (isspace((unsigned char)*p))
            p++;
        sbuf_add(&b, start, (size_t)(p - start));
        if (!*p)
            break;
        /* Key. */
        const char *key = p;
        while (*p && *p != '=' && !isspace((unsigned char)*p))
            p++;
        size_t klen = (size_t)(p - key);
        while (isspace((unsigned char)*p))
            p++;
        if (*p != '=') {
            /* Not key=value: copy the word, go on. */
            sbuf_add(&b, key, (size_t)(p - key));
            continue;
        }
        p++;
        while (isspace((unsigned char)*p))
            p++;
        sbuf_add(&b, key, (size_t)(p - key));
        /* Value. */
        const char *val = p;
        if (*p == '\'') {
            p++;
            while (*p && *p != '\'') {
                if (*p == '\\' && p[1])
                    p++;
                p++;
            }
            if (*p == '\'')
                p++;
        } else {
            while (*p && !isspace((unsigned char)*p)) {
                if (*p == '\\' && p[1])
                    p++;
                p++;
            }
        }
        if (is_password_name(key, klen))
            sbuf_adds(&b, *val == '\'' ? "'***'" : "***");
        else
            sbuf_add(&b, val, (size_t)(p - val));
    }
    return sb_take(&b);
}

char *config_redact(const char *dsn_or_url)
{
    if (!dsn_or_url)
        return strdup("");
    const char *s = dsn_or_url;
    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then "://" */
    const char *p = s;
    if (isalpha((unsigned char)*p)) {
        while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
            p++;
        if (strncmp(p, "://", 3) == 0)
            return redact_uri(s, p + 3);
    }
    return redact_kv(s);
}
