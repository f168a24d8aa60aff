/* test_log: level filter, the logfmt line (parsed back), log_quote, lines from threads. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "b2bd/log.h"

/* --- a small logfmt reader ------------------------------------------------------------- */

#define MAX_PAIRS 32

struct pair {
    char key[64];
    char value[1024];
};

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Parses one line (without its '\n') into pairs; returns their count, or -1. Quoted
 * values are unescaped (\" \\ \xNN). */
static int parse_logfmt(const char *line, struct pair *pairs, int max)
{
    int n = 0;
    const char *p = line;
    while (*p) {
        if (*p == ' ') {
            p++;
            continue;
        }
        if (n == max)
            return -1;
        size_t k = 0;
        while (*p && *p != '=' && *p != ' ') {
            if (k + 1 >= sizeof pairs[n].key)
                return -1;
            pairs[n].key[k++] = *p++;
        }
        pairs[n].key[k] = '\0';
        if (*p != '=' || k == 0)
            return -1;
        p++;
        size_t v = 0;
        char *out = pairs[n].value;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                char c = *p++;
                if (c == '\\') {
                    if (*p == '"' || *p == '\\') {
                        c = *p++;
                    } else if (*p == 'x' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
                        c = (char)(hexval(p[1]) * 16 + hexval(p[2]));
                        p += 3;
                    } else {
                        return -1;
                    }
                }
                if (v + 1 >= sizeof pairs[n].value)
                    return -1;
                out[v++] = c;
            }
            if (*p != '"')
                return -1;
            p++;
            if (*p && *p != ' ')
                return -1;
        } else {
            while (*p && *p != ' ') {
                if (*p == '"' || *p == '=')
                    return -1;
                if (v + 1 >= sizeof pairs[n].value)
                    return -1;
                out[v++] = *p++;
            }
        }
        out[v] = '\0';
        n++;
    }
    return n;
}

/* --- capturing the output -------------------------------------------------------------- */

struct capture {
    char *buf;
    size_t len;
    FILE *f;
};

static void capture_start(struct capture *c, enum log_level min)
{
    c->buf = NULL;
    c->len = 0;
    c->f = open_memstream(&c->buf, &c->len);
    assert_non_null(c->f);
    log_init(min, c->f);
}

static void capture_end(struct capture *c)
{
    log_init(LOG_INFO, NULL);
    fclose(c->f);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* --- tests ----------------------------------------------------------------------------- */

static void test_level_parse(void **state)
{
    (void)state;
    assert_int_equal(log_level_parse("debug"), LOG_DEBUG);
    assert_int_equal(log_level_parse("info"), LOG_INFO);
    assert_int_equal(log_level_parse("warn"), LOG_WARN);
    assert_int_equal(log_level_parse("error"), LOG_ERROR);
    assert_int_equal(log_level_parse("ERROR"), LOG_ERROR);
    assert_int_equal(log_level_parse(""), -1);
    assert_int_equal(log_level_parse("trace"), -1);
    assert_int_equal(log_level_parse("info "), -1);
    assert_int_equal(log_level_parse(NULL), -1);
}

static void test_level_filter(void **state)
{
    (void)state;
    struct capture c;
    capture_start(&c, LOG_WARN);
    assert_false(log_enabled(LOG_DEBUG));
    assert_false(log_enabled(LOG_INFO));
    assert_true(log_enabled(LOG_WARN));
    assert_true(log_enabled(LOG_ERROR));
    log_debug("t", "d", "n=%d", 1);
    log_info("t", "i", "n=%d", 2);
    log_warn("t", "w", "n=%d", 3);
    log_error("t", "e", "n=%d", 4);
    capture_end(&c);
    assert_int_equal(count_lines(c.buf), 2);
    assert_null(strstr(c.buf, "event=d"));
    assert_null(strstr(c.buf, "event=i"));
    assert_non_null(strstr(c.buf, "level=warn mod=t event=w n=3\n"));
    assert_non_null(strstr(c.buf, "level=error mod=t event=e n=4\n"));
    free(c.buf);

    capture_start(&c, LOG_DEBUG);
    log_debug("t", "d", "n=%d", 1);
    capture_end(&c);
    assert_non_null(strstr(c.buf, "level=debug mod=t event=d n=1\n"));
    free(c.buf);
}

static void test_line_format(void **state)
{
    (void)state;
    char q[64];
    struct capture c;
    capture_start(&c, LOG_INFO);
    time_t before = time(NULL);
    log_info("apply", "applied", "command_id=%s n=%d name=%s", "c-1", 42,
             log_quote(q, sizeof q, "Anna \"A\" Müller"));
    time_t after = time(NULL);
    capture_end(&c);

    assert_int_equal(count_lines(c.buf), 1);
    assert_int_equal(c.buf[c.len - 1], '\n');
    c.buf[c.len - 1] = '\0';
    struct pair pairs[MAX_PAIRS];
    int n = parse_logfmt(c.buf, pairs, MAX_PAIRS);
    assert_int_equal(n, 7);
    const char *keys[] = {"ts", "level", "mod", "event", "command_id", "n", "name"};
    for (int i = 0; i < n; i++)
        assert_string_equal(pairs[i].key, keys[i]);
    assert_string_equal(pairs[1].value, "info");
    assert_string_equal(pairs[2].value, "apply");
    assert_string_equal(pairs[3].value, "applied");
    assert_string_equal(pairs[4].value, "c-1");
    assert_string_equal(pairs[5].value, "42");
    assert_string_equal(pairs[6].value, "Anna \"A\" Müller");

    /* ts: 2026-11-27T04:35:59.123Z, UTC, within the call. */
    const char *ts = pairs[0].value;
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(ts[4], '-');
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[19], '.');
    assert_int_equal(ts[23], 'Z');
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm);
    assert_non_null(end);
    assert_string_equal(end + 4, "Z");
    time_t t = timegm(&tm);
    assert_true(t >= before && t <= after);
    free(c.buf);
}

static void test_line_edge_cases(void **state)
{
    (void)state;
    struct capture c;
    capture_start(&c, LOG_INFO);
    log_info("main", "started", "%s", "");                 /* no rest: no trailing space */
    log_info(NULL, "", "a=%s", "b");                       /* missing mod/event: "-" */
    log_info("m", "e", "inj=%s", "x\nts=forged level=error"); /* a newline cannot split */
    capture_end(&c);
    assert_int_equal(count_lines(c.buf), 3);
    char *l1 = c.buf;
    char *l2 = strchr(l1, '\n') + 1;
    char *l3 = strchr(l2, '\n') + 1;
    assert_true(strncmp(strstr(l1, "level="), "level=info mod=main event=started\n", 34) == 0);
    assert_true(strncmp(strstr(l2, "level="), "level=info mod=- event=- a=b\n", 29) == 0);
    assert_true(strncmp(strstr(l3, "level="), "level=info mod=m event=e inj=x ts=forged", 40) ==
                0);
    free(c.buf);
}

static void test_long_line_cut(void **state)
{
    (void)state;
    size_t big = 200000;
    char *s = malloc(big + 1);
    memset(s, 'a', big);
    s[big] = '\0';
    struct capture c;
    capture_start(&c, LOG_INFO);
    log_info("m", "big", "v=%s", s);
    log_info("m", "medium", "v=%.3000s", s); /* over the stack buffer, under the cap */
    capture_end(&c);
    assert_int_equal(count_lines(c.buf), 2);
    char *nl = strchr(c.buf, '\n');
    assert_true((size_t)(nl - c.buf) < 65536);
    assert_memory_equal(nl - 3, "...", 3);
    char *l2 = nl + 1;
    char *v = strstr(l2, "v=");
    assert_non_null(v);
    assert_int_equal(strlen(v), 2 + 3000 + 1);
    free(c.buf);
    free(s);
}

static void test_quote(void **state)
{
    (void)state;
    char b[64];
    assert_string_equal(log_quote(b, sizeof b, "plain-value_1.2"), "plain-value_1.2");
    assert_string_equal(log_quote(b, sizeof b, "two words"), "\"two words\"");
    assert_string_equal(log_quote(b, sizeof b, "a=b"), "\"a=b\"");
    assert_string_equal(log_quote(b, sizeof b, "say \"hi\""), "\"say \\\"hi\\\"\"");
    assert_string_equal(log_quote(b, sizeof b, "back\\slash"), "\"back\\\\slash\"");
    assert_string_equal(log_quote(b, sizeof b, "line\nbreak\ttab"), "\"line\\x0abreak\\x09tab\"");
    assert_string_equal(log_quote(b, sizeof b, "caf\xc3\xa9"), "\"caf\\xc3\\xa9\"");
    assert_string_equal(log_quote(b, sizeof b, "del\x7f"), "\"del\\x7f\"");
    assert_string_equal(log_quote(b, sizeof b, ""), "\"\"");
    assert_string_equal(log_quote(b, sizeof b, NULL), "\"\"");
    /* Returns buf. */
    assert_ptr_equal(log_quote(b, sizeof b, "x"), b);
}

static void test_quote_truncation(void **state)
{
    (void)state;
    char b[64];
    /* Exactly fits: 9 chars + NUL. */
    assert_string_equal(log_quote(b, 10, "123456789"), "123456789");
    /* One more: cut with "...". */
    assert_string_equal(log_quote(b, 10, "1234567890"), "123456...");
    /* Quoted: the closing quote is kept. */
    assert_string_equal(log_quote(b, 12, "hello big world"), "\"hello ...\"");
    /* Escapes are never split. */
    assert_string_equal(log_quote(b, 12, "ab\n\n\n\n"), "\"ab\\x0a...\"");
    assert_string_equal(log_quote(b, 11, "ab\n\n\n\n"), "\"ab...\"");
    assert_string_equal(log_quote(b, 10, "a\"\"\"\"\"\"\""), "\"a\\\"...\"");
    /* Tiny buffers. */
    assert_string_equal(log_quote(b, 1, "hello world"), "");
    assert_string_equal(log_quote(b, 3, "hello world"), "..");
    assert_string_equal(log_quote(b, 4, "helloworld"), "...");
    assert_string_equal(log_quote(b, 6, "hello world"), "\"...\"");
    assert_string_equal(log_quote(b, 0, "x"), "");
    /* Each result fits and parses back. */
    for (size_t size = 1; size <= 40; size++) {
        char *o = malloc(size);
        const char *r = log_quote(o, size, "a \"b\" \\ c=d \x01\xff end");
        assert_true(strlen(r) < size);
        char line[128];
        snprintf(line, sizeof line, "k=%s", r);
        struct pair p[2];
        if (*r)
            assert_int_equal(parse_logfmt(line, p, 2), 1);
        free(o);
    }
}

/* --- threads: lines never interleave ---------------------------------------------------- */

#define THREADS 8
#define LINES 400

static void *writer(void *arg)
{
    int id = (int)(intptr_t)arg;
    char pad[300];
    memset(pad, 'a' + id, sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    for (int i = 0; i < LINES; i++)
        log_info("thr", "line", "thread=%d i=%d pad=%s", id, i, pad);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    log_init(LOG_INFO, f);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    log_init(LOG_INFO, NULL);
    rewind(f);
    char *line = NULL;
    size_t cap = 0;
    int counts[THREADS] = {0};
    int total = 0;
    while (getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = '\0';
        struct pair p[MAX_PAIRS];
        int n = parse_logfmt(line, p, MAX_PAIRS);
        assert_int_equal(n, 7);
        int id = atoi(p[4].value);
        assert_true(id >= 0 && id < THREADS);
        assert_int_equal(atoi(p[5].value), counts[id]);
        counts[id]++;
        assert_int_equal(strlen(p[6].value), 299);
        assert_int_equal(p[6].value[0], 'a' + id);
        assert_int_equal(p[6].value[298], 'a' + id);
        total++;
    }
    assert_int_equal(total, THREADS * LINES);
    free(line);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test(test_level_filter),
        cmocka_unit_test(test_line_format),
        cmocka_unit_test(test_line_edge_cases),
        cmocka_unit_test(test_long_line_cut),
        cmocka_unit_test(test_quote),
        cmocka_unit_test(test_quote_truncation),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
