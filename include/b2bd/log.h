/* log: one line per event, in logfmt, to stderr. Never pass a secret. */
#ifndef B2BD_LOG_H
#define B2BD_LOG_H

#include <stddef.h>
#include <stdio.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Sets the lowest level written (default LOG_INFO) and the stream (default stderr). */
void log_init(enum log_level min, FILE *out);

/* True if a line at lvl would be written (to skip costly argument preparation). */
int log_enabled(enum log_level lvl);

/* Parses "debug", "info", "warn", "error"; returns -1 if none. */
int log_level_parse(const char *s);

/* One key=value pair of a line. Callers build them with the LOG_* constructors below and
 * never format a value themselves: the logger writes and escapes every one. */
enum log_ftype { LOG_F_STR, LOG_F_STRN, LOG_F_INT, LOG_F_UINT, LOG_F_DBL };

struct log_field {
    const char *key;
    enum log_ftype type;
    size_t n; /* LOG_F_STRN: the length of v.s */
    union {
        const char *s;
        long long i;
        unsigned long long u;
        double d;
    } v;
};

/* A string, written bare when it is made of printable ASCII other than `=`, `"` and `\`,
 * else in double quotes with `"` and `\` escaped by a backslash and every other byte below
 * 0x20 or from 0x7f (controls, DEL, any non-ASCII byte, valid UTF-8 or not) as \xNN: a
 * value never breaks its line nor starts another field. "" is written `key=""`, NULL
 * `key=` (nothing after the `=`). */
#define LOG_STR(k, x) ((struct log_field){.key = (k), .type = LOG_F_STR, .v.s = (x)})
/* The first len bytes of s (which may hold NULs: written \x00). */
#define LOG_STRN(k, x, len) \
    ((struct log_field){.key = (k), .type = LOG_F_STRN, .n = (len), .v.s = (x)})
#define LOG_INT(k, x) ((struct log_field){.key = (k), .type = LOG_F_INT, .v.i = (x)})
#define LOG_UINT(k, x) ((struct log_field){.key = (k), .type = LOG_F_UINT, .v.u = (x)})
/* The shortest of %.15g and %.17g that reads back as x; nan, inf, -inf as such. */
#define LOG_DBL(k, x) ((struct log_field){.key = (k), .type = LOG_F_DBL, .v.d = (x)})

/* A value's written form (quotes included) longer than this is cut, on a whole escape,
 * and ends with `...` (inside its quotes). */
#define LOG_VALUE_MAX 1024
/* Names (mod, event, keys) longer than this are cut. */
#define LOG_NAME_MAX 64

/* Writes one line: `ts=<RFC 3339 UTC, ms> level=<lvl> mod=<mod> event=<event>` then
 * ` key=value` for each of the n fields, in order. mod, event and keys are meant to be
 * constants of [a-z0-9_]; any byte outside [A-Za-z0-9_.-] is written `_`, and a NULL or
 * empty one `-`. Thread-safe: each line is written with one call. */
void log_fields(enum log_level lvl, const char *mod, const char *event,
                const struct log_field *f, size_t n);

/* log_kv(LOG_WARN, "relay", "fetch_failed", LOG_STR("error", msg), LOG_INT("tries", n)):
 * one or more fields; log_event for a line without any. */
#define log_kv(lvl, mod, event, ...)                                                        \
    log_fields((lvl), (mod), (event), (const struct log_field[]){__VA_ARGS__},              \
               sizeof((const struct log_field[]){__VA_ARGS__}) / sizeof(struct log_field))
#define log_event(lvl, mod, event) log_fields((lvl), (mod), (event), NULL, 0)

#define log_debug(mod, ev, ...) log_kv(LOG_DEBUG, mod, ev, __VA_ARGS__)
#define log_info(mod, ev, ...) log_kv(LOG_INFO, mod, ev, __VA_ARGS__)
#define log_warn(mod, ev, ...) log_kv(LOG_WARN, mod, ev, __VA_ARGS__)
#define log_error(mod, ev, ...) log_kv(LOG_ERROR, mod, ev, __VA_ARGS__)

#endif
