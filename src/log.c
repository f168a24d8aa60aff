/* log: logfmt lines (ts, level, mod, event, then key=value pairs), one fwrite per line. */
#include "b2bd/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* The only globals: the lowest level written and the stream (NULL: stderr). */
static _Atomic int log_min = LOG_INFO;
static _Atomic(FILE *) log_out = NULL;

/* Lines longer than this are cut (with "..." at the end). */
#define LOG_LINE_MAX 65536

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

void log_write(enum log_level lvl, const char *mod, const char *event, const char *fmt, ...)
{
    if (!log_enabled(lvl))
        return;
    FILE *out = atomic_load(&log_out);
    if (!out)
        out = stderr;

    char ts[40];
    format_ts(ts, sizeof ts);

    char stack[1024];
    char *line = stack;
    size_t cap = sizeof stack;
    int head = snprintf(line, cap, "ts=%s level=%s mod=%s event=%s", ts, level_name(lvl),
                        mod && *mod ? mod : "-", event && *event ? event : "-");
    if (head < 0)
        return;
    if ((size_t)head >= cap)
        head = (int)cap - 1; /* absurdly long mod/event: cut */

    /* The formatted rest, after a space, when there is one. */
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int rest = 0;
    if (fmt && *fmt)
        rest = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (rest < 0)
        rest = 0;

    size_t need = (size_t)head + (rest ? 1 + (size_t)rest : 0) + 2; /* '\n' + NUL */
    int cut = 0;
    if (need > LOG_LINE_MAX) {
        need = LOG_LINE_MAX;
        cut = 1;
    }
    if (need > cap) {
        char *big = malloc(need);
        if (big) {
            memcpy(big, line, (size_t)head + 1);
            line = big;
            cap = need;
        } else {
            cut = 1;
        }
    }
    size_t len = (size_t)head;
    if (rest && len + 2 < cap) {
        line[len++] = ' ';
        /* Room for the text, leaving 1 byte for '\n' (the NUL of vsnprintf takes it). */
        vsnprintf(line + len, cap - len - 1, fmt, ap2);
        size_t wrote = strlen(line + len);
        len += wrote;
        if ((size_t)rest > wrote)
            cut = 1;
    }
    va_end(ap2);
    if (cut && len >= 3)
        memcpy(line + len - 3, "...", 3);

    /* One event, one line: no control character may break it. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 || c == 0x7f)
            line[i] = ' ';
    }
    line[len++] = '\n';

    /* A FILE's lock is held for the whole fwrite: lines from threads never interleave. */
    fwrite(line, 1, len, out);
    fflush(out);
    if (line != stack)
        free(line);
}

/* How s must be written: whether it needs quotes. */
static int needs_quotes(const unsigned char *s)
{
    if (!*s)
        return 1;
    for (; *s; s++)
        if (*s <= 0x20 || *s >= 0x7f || *s == '=' || *s == '"' || *s == '\\')
            return 1;
    return 0;
}

/* Writes the escaped form of c into piece; returns its length (1, 2 or 4). */
static size_t escape_char(unsigned char c, int quoted, char piece[5])
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

const char *log_quote(char *buf, size_t size, const char *s)
{
    if (!buf || size == 0)
        return "";
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    int quoted = needs_quotes(p);
    size_t q = quoted ? 1 : 0;

    /* Does the whole value fit? */
    size_t total = 2 * q;
    char piece[5];
    for (const unsigned char *c = p; *c; c++)
        total += escape_char(*c, quoted, piece);
    size_t len = 0;
    if (total < size) {
        if (quoted)
            buf[len++] = '"';
        for (const unsigned char *c = p; *c; c++) {
            size_t n = escape_char(*c, quoted, piece);
            memcpy(buf + len, piece, n);
            len += n;
        }
        if (quoted)
            buf[len++] = '"';
        buf[len] = '\0';
        return buf;
    }

    /* Cut: whole escapes only, then "..." and the closing quote. */
    if (size < 2 * q + 3 + 1) {
        /* Not even room for a quoted "...": as much of an unquoted one as fits. */
        size_t n = size - 1 < 3 ? size - 1 : 3;
        memcpy(buf, "...", n);
        buf[n] = '\0';
        return buf;
    }
    if (quoted)
        buf[len++] = '"';
    for (const unsigned char *c = p; *c; c++) {
        size_t n = escape_char(*c, quoted, piece);
        if (len + n + 3 + q + 1 > size)
            break;
        memcpy(buf + len, piece, n);
        len += n;
    }
    memcpy(buf + len, "...", 3);
    len += 3;
    if (quoted)
        buf[len++] = '"';
    buf[len] = '\0';
    return buf;
}
