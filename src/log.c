/* log: logfmt lines (ts, level, mod, event, then typed key=value pairs, each value escaped
 * here), one fwrite per line. */
#include "b2bd/log.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* The only globals: the lowest level written and the stream (NULL: stderr). */
static _Atomic int log_min = LOG_INFO;
static _Atomic(FILE *) log_out = NULL;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(enum log_level min, FILE *out)
{
    atomic_store(&log_min, (int)min);
    atomic_store(&log_out, out);
}

int log_enabled(enum log_level lvl)
{
    return (int)lvl >= atomic_load(&log_min);
}

int log_level_parse(const char *s)
{
    if (!s)
        return -1;
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return (int)i;
    return -1;
}

static const char *level_name(enum log_level lvl)
{
    if ((int)lvl >= 0 && (size_t)lvl < sizeof level_names / sizeof level_names[0])
        return level_names[lvl];
    return "error";
}

/* Writes the timestamp, e.g. 2026-11-27T04:35:59.123Z, into buf (at least 32 bytes). */
static void format_ts(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        ts.tv_sec = time(NULL);
        ts.tv_nsec = 0;
    }
    if (!gmtime_r(&ts.tv_sec, &tm)) {
        snprintf(buf, size, "1970-01-01T00:00:00.000Z");
        return;
    }
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03ldZ", (long)(ts.tv_nsec / 1000000));
}

/* Writes a name (mod, event, key): [A-Za-z0-9_.-] kept, any other byte `_`, NULL or empty
 * `-`, cut at LOG_NAME_MAX. Returns the bytes written. */
static size_t put_name(char *dst, const char *name)
{
    if (!name || !*name) {
        *dst = '-';
        return 1;
    }
    size_t len = 0;
    for (; name[len] && len < LOG_NAME_MAX; len++) {
        char c = name[len];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == '-';
        dst[len] = ok ? c : '_';
    }
    return len;
}

/* Whether the n bytes of s must be written in quotes. */
static int needs_quotes(const unsigned char *s, size_t n)
{
    if (n == 0)
        return 1;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= 0x20 || s[i] >= 0x7f || s[i] == '=' || s[i] == '"' || s[i] == '\\')
            return 1;
    return 0;
}

/* Writes the escaped form of c into piece; returns its length (1, 2 or 4). */
static size_t escape_char(unsigned char c, int quoted, char piece[4])
{
    static const char hex[] = "0123456789abcdef";
    if (quoted && (c == '"' || c == '\\')) {
        piece[0] = '\\';
        piece[1] = (char)c;
        return 2;
    }
    if (c < 0x20 || c >= 0x7f) {
        piece[0] = '\\';
        piece[1] = 'x';
        piece[2] = hex[c >> 4];
        piece[3] = hex[c & 15];
        return 4;
    }
    piece[0] = (char)c;
    return 1;
}

/* Writes the n bytes of s as a logfmt value into dst, at most LOG_VALUE_MAX bytes: the
 * whole value, or as many whole escapes as fit before "..." and the closing quote.
 * Returns the bytes written. */
static size_t put_value(char *dst, const unsigned char *s, size_t n)
{
    int quoted = needs_quotes(s, n);
    size_t q = quoted ? 1 : 0;
    char piece[4];
    size_t total = 2 * q;
    for (size_t i = 0; i < n && total <= LOG_VALUE_MAX; i++)
        total += escape_char(s[i], quoted, piece);
    int cut = total > LOG_VALUE_MAX;
    size_t len = 0;
    if (quoted)
        dst[len++] = '"';
    for (size_t i = 0; i < n; i++) {
        size_t k = escape_char(s[i], quoted, piece);
        if (cut && len + k + 3 + q > LOG_VALUE_MAX)
            break;
        memcpy(dst + len, piece, k);
        len += k;
    }
    if (cut) {
        memcpy(dst + len, "...", 3);
        len += 3;
    }
    if (quoted)
        dst[len++] = '"';
    return len;
}

/* The most bytes field f can take, ' ' and '=' included. */
static size_t field_room(const struct log_field *f)
{
    size_t value = 32; /* a number */
    if (f->type == LOG_F_STR || f->type == LOG_F_STRN) {
        size_t n = !f->v.s ? 0 : f->type == LOG_F_STRN ? f->n : strlen(f->v.s);
        value = n < LOG_VALUE_MAX / 4 ? 4 * n + 2 : LOG_VALUE_MAX;
    }
    return 2 + LOG_NAME_MAX + value;
}

/* Writes a double: %.15g when it reads back as d, else %.17g. */
static size_t put_double(char *dst, double d)
{
    char buf[40];
    snprintf(buf, sizeof buf, "%.15g", d);
    if (strtod(buf, NULL) != d && d == d)
        snprintf(buf, sizeof buf, "%.17g", d);
    size_t len = strlen(buf);
    memcpy(dst, buf, len);
    return len;
}

/* Writes " key=value" for f; returns the bytes written. */
static size_t put_field(char *dst, const struct log_field *f)
{
    size_t len = 0;
    dst[len++] = ' ';
    len += put_name(dst + len, f->key);
    dst[len++] = '=';
    char num[32];
    switch (f->type) {
    case LOG_F_STR:
    case LOG_F_STRN:
        if (f->v.s) /* NULL: nothing after the '=' */
            len += put_value(dst + len, (const unsigned char *)f->v.s,
                             f->type == LOG_F_STRN ? f->n : strlen(f->v.s));
        break;
    case LOG_F_INT:
        snprintf(num, sizeof num, "%lld", f->v.i);
        memcpy(dst + len, num, strlen(num));
        len += strlen(num);
        break;
    case LOG_F_UINT:
        snprintf(num, sizeof num, "%llu", f->v.u);
        memcpy(dst + len, num, strlen(num));
        len += strlen(num);
        break;
    case LOG_F_DBL:
        len += put_double(dst + len, f->v.d);
        break;
    default: /* not a known type: an empty value, as for NULL */
        break;
    }
    return len;
}

void log_fields(enum log_level lvl, const char *mod, const char *event,
                const struct log_field *f, size_t n)
{
    if (!log_enabled(lvl))
        return;
    FILE *out = atomic_load(&log_out);
    if (!out)
        out = stderr;
    if (!f)
        n = 0;

    char ts[40];
    format_ts(ts, sizeof ts);

    /* ts=… level=… mod=… event=… then the fields, '\n': its room, counted before. */
    size_t need = sizeof "ts= level= mod= event=\n" + strlen(ts) + strlen(level_name(lvl)) +
                  2 * LOG_NAME_MAX;
    for (size_t i = 0; i < n; i++)
        need += field_room(&f[i]);
    char stack[2048];
    char *line = stack;
    if (need > sizeof stack) {
        line = malloc(need);
        if (!line) { /* no room for the fields: the event alone */
            line = stack;
            n = 0;
        }
    }

    size_t len = (size_t)snprintf(line, 64, "ts=%s level=%s mod=", ts, level_name(lvl));
    len += put_name(line + len, mod);
    memcpy(line + len, " event=", 7);
    len += 7;
    len += put_name(line + len, event);
    for (size_t i = 0; i < n; i++)
        len += put_field(line + len, &f[i]);
    line[len++] = '\n';

    /* A FILE's lock is held for the whole fwrite: lines from threads never interleave. */
    fwrite(line, 1, len, out);
    fflush(out);
    if (line != stack)
        free(line);
}
