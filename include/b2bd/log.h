/* log: one line per event, in logfmt, to stderr. Never pass a secret. */
#ifndef B2BD_LOG_H
#define B2BD_LOG_H

#include <stdio.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Sets the lowest level written (default LOG_INFO) and the stream (default stderr). */
void log_init(enum log_level min, FILE *out);

/* True if a line at lvl would be written (to skip costly argument preparation). */
int log_enabled(enum log_level lvl);

/* Parses "debug", "info", "warn", "error"; returns -1 if none. */
int log_level_parse(const char *s);

/* Writes one line: `ts=<RFC 3339 UTC, ms> level=<lvl> mod=<mod> event=<event> <rest>`
 * where rest is the printf-formatted fmt (key=value pairs). Thread-safe: each line is
 * written with one call. */
void log_write(enum log_level lvl, const char *mod, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Quotes s as a logfmt value into buf: wrapped in double quotes when it holds spaces,
 * `=` or quotes; control characters and non-ASCII bytes written as \xNN; cut to fit
 * buf with "..." at the end. Returns buf. */
const char *log_quote(char *buf, size_t size, const char *s);

#define log_debug(mod, ev, ...) log_write(LOG_DEBUG, mod, ev, __VA_ARGS__)
#define log_info(mod, ev, ...) log_write(LOG_INFO, mod, ev, __VA_ARGS__)
#define log_warn(mod, ev, ...) log_write(LOG_WARN, mod, ev, __VA_ARGS__)
#define log_error(mod, ev, ...) log_write(LOG_ERROR, mod, ev, __VA_ARGS__)

#endif
