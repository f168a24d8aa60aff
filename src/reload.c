/* reload: takes the reloadable settings of a configuration loaded again on SIGHUP. */
#include "b2bd/reload.h"

#include <stdlib.h>
#include <string.h>

#include "b2bd/log.h"

/* The keys SIGHUP changes (man/b2bd.conf.5 says "Reloaded on SIGHUP" for exactly these:
 * tests/shipping/test_manpages.py compares). */
#define RELOADABLE(field) {#field, offsetof(struct b2bd_config, field)}
static const struct {
    const char *name;
    size_t offset; /* of a long in struct b2bd_config */
} reloadable[] = {
    /* and log_level (an enum: reload_apply's first step) */
    RELOADABLE(batch_linger_ms),
    RELOADABLE(batch_max),
    RELOADABLE(notifier_give_up_s),
    RELOADABLE(notifier_rate_per_s),
    RELOADABLE(notifier_retry_initial_ms),
    RELOADABLE(notifier_retry_max_ms),
};

static const char *level_text(enum log_level l)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    return (int)l >= 0 && (int)l < 4 ? names[l] : "?";
}

static int is_reloadable(const char *key, size_t len)
{
    if (len == strlen("log_level") && !strncmp(key, "log_level", len))
        return 1;
    for (size_t i = 0; i < sizeof reloadable / sizeof *reloadable; i++)
        if (strlen(reloadable[i].name) == len && !strncmp(key, reloadable[i].name, len))
            return 1;
    return 0;
}

/* config_dump's `key=value` lines of cfg, or NULL. Caller frees. */
static char *dump(const struct b2bd_config *cfg)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f)
        return NULL;
    config_dump(cfg, f);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* The value of `key=` in a dump (up to the newline), or NULL; *len gets its length. */
static const char *dump_value(const char *d, const char *key, size_t key_len, size_t *len)
{
    for (const char *line = d; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        if (n > key_len && line[key_len] == '=' && !strncmp(line, key, key_len)) {
            *len = n - key_len - 1;
            return line + key_len + 1;
        }
        line = nl ? nl + 1 : NULL;
    }
    return NULL;
}

/* Logs each key of b (or only in a) whose value differs in a and is not reloadable. */
static int restart_keys(const char *a, const char *b)
{
    int n = 0;
    for (int pass = 0; pass < 2; pass++) {
        const char *from = pass ? a : b, *other = pass ? b : a;
        for (const char *line = from; line && *line;) {
            const char *nl = strchr(line, '\n');
            size_t len = nl ? (size_t)(nl - line) : strlen(line);
            const char *eq = memchr(line, '=', len);
            if (eq && !is_reloadable(line, (size_t)(eq - line))) {
                size_t key_len = (size_t)(eq - line), vlen = 0;
                const char *v = dump_value(other, line, key_len, &vlen);
                size_t mine = len - key_len - 1;
                /* pass 0: changed or added keys; pass 1: removed ones (kafka.*) */
                if (pass == 0 ? !v || vlen != mine || memcmp(v, eq + 1, mine) : !v) {
                    log_warn("reload", "restart_needed", LOG_STRN("key", line, key_len),
                             LOG_STR("note", "changed: takes effect after a restart"));
                    n++;
                }
            }
            line = nl ? nl + 1 : NULL;
        }
    }
    return n;
}

int reload_apply(struct b2bd_config *cur, const struct b2bd_config *next, int *restart)
{
    int taken = 0;
    if (next->log_level != cur->log_level) {
        log_info("reload", "reloaded", LOG_STR("key", "log_level"),
                 LOG_STR("old", level_text(cur->log_level)),
                 LOG_STR("new", level_text(next->log_level)));
        __atomic_store_n(&cur->log_level, next->log_level, __ATOMIC_RELAXED);
        log_init(next->log_level, stderr);
        taken++;
    }
    for (size_t i = 0; i < sizeof reloadable / sizeof *reloadable; i++) {
        long *c = (long *)(void *)((char *)cur + reloadable[i].offset);
        long v = *(const long *)(const void *)((const char *)next + reloadable[i].offset);
        long old = __atomic_load_n(c, __ATOMIC_RELAXED);
        if (v == old)
            continue;
        __atomic_store_n(c, v, __ATOMIC_RELAXED);
        log_info("reload", "reloaded", LOG_STR("key", reloadable[i].name), LOG_INT("old", old),
                 LOG_INT("new", v));
        taken++;
    }
    char *a = dump(cur), *b = dump(next);
    int n = a && b ? restart_keys(a, b) : 0;
    free(a);
    free(b);
    if (restart)
        *restart = n;
    return taken;
}
