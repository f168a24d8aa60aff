/* test_log: level filter, the logfmt line parsed back, hostile values, names and lengths that
 * must neither break a line nor forge a field, lines from threads. */
#include <pthread.h>
#include <limits.h>
#include <math.h>
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

/* --- a small, strict logfmt reader ------------------------------------------------------ */

#define MAX_PAIRS 64
#define VALUE_CAP (2 * LOG_VALUE_MAX)

struct pair {
    char key[LOG_NAME_MAX + 1];
    char value[VALUE_CAP];
    size_t len;  /* of value (which may hold NULs) */
    int null;    /* `key=` with nothing after the '=' */
    int quoted;
};

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Parses one line (without its '\n') into pairs; returns their count, or -1 when it is not
 * logfmt as the logger writes it: pairs split by one space, bare values of printable ASCII
 * without `"` `=` `\`, quoted ones with only \" \\ \xNN escapes and no raw control or
 * non-ASCII byte. */
static int parse_logfmt(const char *line, struct pair *pairs, int max)
{
    int n = 0;
    const unsigned char *p = (const unsigned char *)line;
    while (*p) {
        if (n > 0) {
            if (*p != ' ')
                return -1;
            p++;
        }
        if (n == max)
            return -1;
        struct pair *pr = &pairs[n];
        memset(pr, 0, sizeof *pr);
        size_t k = 0;
        while (*p && *p != '=' && *p != ' ') {
            if (k + 1 >= sizeof pr->key)
                return -1;
            pr->key[k++] = (char)*p++;
        }
        if (*p != '=' || k == 0)
            return -1;
        p++;
        size_t v = 0;
        if (*p == '"') {
            pr->quoted = 1;
            p++;
            while (*p && *p != '"') {
                unsigned char c = *p++;
                if (c < 0x20 || c >= 0x7f)
                    return -1;
                if (c == '\\') {
                    if (*p == '"' || *p == '\\') {
                        c = *p++;
                    } else if (*p == 'x' && hexval((char)p[1]) >= 0 && hexval((char)p[2]) >= 0) {
                        c = (unsigned char)(hexval((char)p[1]) * 16 + hexval((char)p[2]));
                        p += 3;
                    } else {
                        return -1;
                    }
                }
                if (v + 1 >= sizeof pr->value)
                    return -1;
                pr->value[v++] = (char)c;
            }
            if (*p != '"')
                return -1;
            p++;
        } else {
            pr->null = *p == ' ' || *p == '\0';
            while (*p && *p != ' ') {
                if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '=' || *p == '\\')
                    return -1;
                if (v + 1 >= sizeof pr->value)
                    return -1;
                pr->value[v++] = (char)*p++;
            }
        }
        pr->value[v] = '\0';
        pr->len = v;
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

/* Splits the captured output into lines (each must end with '\n'); returns their count. */
static int split_lines(char *buf, size_t len, char **lines, int max)
{
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != '\n')
            continue;
        assert_true(n < max);
        buf[i] = '\0';
        lines[n++] = buf + start;
        start = i + 1;
    }
    assert_int_equal(start, len); /* nothing after the last '\n' */
    return n;
}

/* Every byte of a line is printable ASCII: nothing a terminal or a log shipper splits on. */
static void assert_printable(const char *line)
{
    for (const unsigned char *p = (const unsigned char *)line; *p; p++)
        if (*p < 0x20 || *p >= 0x7f)
            fail_msg("byte 0x%02x at %zu in %s", *p, (size_t)(p - (const unsigned char *)line),
                     line);
}

/* Parses the one line captured and checks its head: ts, level, mod, event. Returns the
 * pair count. */
static int parse_one(struct capture *c, struct pair *pairs, const char *level, const char *mod,
                     const char *event)
{
    char *lines[2];
    assert_int_equal(split_lines(c->buf, c->len, lines, 2), 1);
    assert_printable(lines[0]);
    int n = parse_logfmt(lines[0], pairs, MAX_PAIRS);
    if (n < 4)
        fail_msg("not logfmt (%d): %s", n, lines[0]);
    assert_string_equal(pairs[0].key, "ts");
    assert_string_equal(pairs[1].key, "level");
    assert_string_equal(pairs[1].value, level);
    assert_string_equal(pairs[2].key, "mod");
    assert_string_equal(pairs[2].value, mod);
    assert_string_equal(pairs[3].key, "event");
    assert_string_equal(pairs[3].value, event);
    return n;
}

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
    log_debug("t", "d", LOG_INT("n", 1));
    log_info("t", "i", LOG_INT("n", 2));
    log_warn("t", "w", LOG_INT("n", 3));
    log_error("t", "e", LOG_INT("n", 4));
    capture_end(&c);
    assert_int_equal(count_lines(c.buf), 2);
    assert_null(strstr(c.buf, "event=d"));
    assert_null(strstr(c.buf, "event=i"));
    assert_non_null(strstr(c.buf, "level=warn mod=t event=w n=3\n"));
    assert_non_null(strstr(c.buf, "level=error mod=t event=e n=4\n"));
    free(c.buf);

    capture_start(&c, LOG_DEBUG);
    log_debug("t", "d", LOG_INT("n", 1));
    capture_end(&c);
    assert_non_null(strstr(c.buf, "level=debug mod=t event=d n=1\n"));
    free(c.buf);
}

static void test_line_format(void **state)
{
    (void)state;
    struct capture c;
    capture_start(&c, LOG_INFO);
    time_t before = time(NULL);
    log_info("apply", "applied", LOG_STR("command_id", "c-1"), LOG_INT("n", 42),
             LOG_STR("name", "Anna \"A\" M\xc3\xbcller"));
    time_t after = time(NULL);
    capture_end(&c);

    /* the exact text: what operators' and tests' greps rely on */
    assert_non_null(strstr(c.buf, " level=info mod=apply event=applied command_id=c-1 n=42 "
                                  "name=\"Anna \\\"A\\\" M\\xc3\\xbcller\"\n"));
    struct pair pairs[MAX_PAIRS];
    int n = parse_one(&c, pairs, "info", "apply", "applied");
    assert_int_equal(n, 7);
    const char *keys[] = {"ts", "level", "mod", "event", "command_id", "n", "name"};
    for (int i = 0; i < n; i++)
        assert_string_equal(pairs[i].key, keys[i]);
    assert_string_equal(pairs[4].value, "c-1");
    assert_string_equal(pairs[5].value, "42");
    assert_string_equal(pairs[6].value, "Anna \"A\" M\xc3\xbcller");

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

/* The values an error text, a topic or a command id can bring: each must come back whole
 * from its own field, and no other field may appear. */
static const char *const hostile[] = {
    "say \"hi\"",
    "back\\slash",
    "ends with a backslash\\",
    "\\\"",
    "\"",
    "line\nbreak",
    "carriage\rreturn",
    "crlf\r\n",
    "x\nts=2026-01-01T00:00:00.000Z level=error mod=main event=forged",
    "x\" level=error event=forged",
    "x\\\" level=error event=forged",
    "x level=error event=forged",
    "a=b",
    "=",
    "error=\"injected\"",
    "\\x41 is not an escape here",
    "tab\there",
    "\x01\x02\x03\x07\x08\x0b\x0c\x1b[31mred\x1b[0m\x1f",
    "del\x7f",
    "invalid utf-8: \xff\xfe \xc3( \xe2\x82 \xed\xa0\x80",
    "valid utf-8: M\xc3\xbcller \xe2\x80\xa8 \xe2\x80\xae",
    " leading and trailing ",
    "",
    "plain-value_1.2:/,;",
};

static void test_hostile_values(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof hostile / sizeof *hostile; i++) {
        struct capture c;
        capture_start(&c, LOG_INFO);
        log_warn("relay", "fetch_failed", LOG_STR("error", hostile[i]), LOG_INT("tries", 3));
        capture_end(&c);
        struct pair pairs[MAX_PAIRS];
        int n = parse_one(&c, pairs, "warn", "relay", "fetch_failed");
        /* exactly the fields given: no forged one */
        assert_int_equal(n, 6);
        assert_string_equal(pairs[4].key, "error");
        assert_false(pairs[4].null);
        assert_int_equal(pairs[4].len, strlen(hostile[i]));
        assert_memory_equal(pairs[4].value, hostile[i], pairs[4].len);
        assert_string_equal(pairs[5].key, "tries");
        assert_string_equal(pairs[5].value, "3");
        free(c.buf);
    }
}

/* Every byte value, NUL included (by length), in one value. */
static void test_all_bytes(void **state)
{
    (void)state;
    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)(255 - i);
    struct capture c;
    capture_start(&c, LOG_INFO);
    log_info("reload", "restart_needed", LOG_STRN("key", all, sizeof all), LOG_STRN("k2", "ab", 1));
    capture_end(&c);
    struct pair pairs[MAX_PAIRS];
    assert_int_equal(parse_one(&c, pairs, "info", "reload", "restart_needed"), 6);
    assert_int_equal(pairs[4].len, sizeof all);
    assert_memory_equal(pairs[4].value, all, sizeof all);
    assert_string_equal(pairs[5].value, "a"); /* only the length given */
    assert_false(pairs[5].quoted);
    free(c.buf);
}

/* NULL and "" are told apart: `key=` and `key=""`. */
static void test_null_and_empty(void **state)
{
    (void)state;
    struct capture c;
    capture_start(&c, LOG_INFO);
    log_info("m", "e", LOG_STR("a", NULL), LOG_STR("b", ""), LOG_STRN("c", NULL, 5),
             LOG_STR("d", NULL));
    capture_end(&c);
    assert_non_null(strstr(c.buf, " event=e a= b=\"\" c= d=\n"));
    struct pair pairs[MAX_PAIRS];
    assert_int_equal(parse_one(&c, pairs, "info", "m", "e"), 8);
    assert_true(pairs[4].null);
    assert_false(pairs[5].null);
    assert_true(pairs[5].quoted);
    assert_int_equal(pairs[5].len, 0);
    assert_true(pairs[6].null);
    assert_true(pairs[7].null);
    free(c.buf);
}

/* mod, event and keys are names: a hostile one cannot forge a field either. */
static void test_hostile_names(void **state)
{
    (void)state;
    struct capture c;
    capture_start(&c, LOG_INFO);
    log_info("m od=x", "ev\" level=error", LOG_STR("a b=c\"\n", "v"), LOG_INT(NULL, 1),
             LOG_INT("", 2), LOG_STR("Ok.key-1", "w"));
    log_event(LOG_INFO, NULL, "");
    capture_end(&c);
    char *lines[3];
    assert_int_equal(split_lines(c.buf, c.len, lines, 3), 2);
    assert_non_null(strstr(lines[0], " level=info mod=m_od_x event=ev__level_error a_b_c__=v -=1 "
                                     "-=2 Ok.key-1=w"));
    assert_non_null(strstr(lines[1], " level=info mod=- event=-"));
    assert_int_equal(lines[1][strlen(lines[1]) - 1], '-'); /* no trailing space */
    struct pair pairs[MAX_PAIRS];
    assert_int_equal(parse_logfmt(lines[0], pairs, MAX_PAIRS), 8);
    assert_int_equal(parse_logfmt(lines[1], pairs, MAX_PAIRS), 4);
    free(c.buf);

    /* a name is cut at LOG_NAME_MAX */
    char longkey[LOG_NAME_MAX * 2 + 1];
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    capture_start(&c, LOG_INFO);
    log_info("m", "e", LOG_INT(longkey, 1));
    capture_end(&c);
    assert_int_equal(parse_one(&c, pairs, "info", "m", "e"), 5);
    assert_int_equal(strlen(pairs[4].key), LOG_NAME_MAX);
    free(c.buf);
}

static void test_numbers(void **state)
{
    (void)state;
    struct capture c;
    capture_start(&c, LOG_INFO);
    log_info("m", "e", LOG_INT("min", LLONG_MIN), LOG_INT("max", LLONG_MAX),
             LOG_UINT("umax", ULLONG_MAX), LOG_INT("neg", -5), LOG_DBL("tenth", 0.1),
             LOG_DBL("third", 1.0 / 3), LOG_DBL("big", 1e300), LOG_DBL("inf", HUGE_VAL),
             LOG_DBL("ninf", -HUGE_VAL), LOG_DBL("nan", NAN), LOG_DBL("zero", 0.0));
    capture_end(&c);
    assert_non_null(strstr(c.buf, " event=e min=-9223372036854775808 max=9223372036854775807 "
                                  "umax=18446744073709551615 neg=-5 tenth=0.1 "
                                  "third=0.33333333333333331 big=1e+300 inf=inf ninf=-inf "));
    struct pair pairs[MAX_PAIRS];
    assert_int_equal(parse_one(&c, pairs, "info", "m", "e"), 15);
    assert_true(strtod(pairs[9].value, NULL) == 1.0 / 3); /* reads back */
    assert_true(strcmp(pairs[13].value, "nan") == 0 || strcmp(pairs[13].value, "-nan") == 0);
    assert_string_equal(pairs[14].value, "0");
    free(c.buf);
}

/* Reads back a cut value: the written form fits LOG_VALUE_MAX, ends with "...", and what
 * comes before is the start of the original. */
static void check_cut(const char *orig, size_t orig_len, int expect_cut)
{
    struct capture c;
    capture_start(&c, LOG_INFO);
    log_info("m", "big", LOG_STRN("v", orig, orig_len), LOG_STR("after", "kept"));
    capture_end(&c);
    char *written = strstr(c.buf, " v=");
    assert_non_null(written);
    written += 3;
    char *end = strstr(written, " after=kept\n");
    assert_non_null(end);
    assert_true((size_t)(end - written) <= LOG_VALUE_MAX);
    struct pair pairs[MAX_PAIRS];
    assert_int_equal(parse_one(&c, pairs, "info", "m", "big"), 6);
    assert_string_equal(pairs[5].value, "kept");
    if (expect_cut) {
        assert_true(pairs[4].len >= 3);
        size_t kept = pairs[4].len - 3;
        assert_memory_equal(pairs[4].value + kept, "...", 3);
        assert_true(kept < orig_len);
        assert_memory_equal(pairs[4].value, orig, kept);
        /* not cut shorter than needed: one more escape (at most 4 bytes) would not fit */
        assert_true((size_t)(end - written) + 4 > LOG_VALUE_MAX);
    } else {
        assert_int_equal(pairs[4].len, orig_len);
        assert_memory_equal(pairs[4].value, orig, orig_len);
    }
    free(c.buf);
}

/* The written length of a value that needs quotes: 2 + 2 per `"` or `\`, 4 per byte below
 * 0x20 or from 0x7f, 1 per other byte. */
static size_t quoted_len(const char *s, size_t n)
{
    size_t len = 2;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        len += c == '"' || c == '\\' ? 2 : c < 0x20 || c >= 0x7f ? 4 : 1;
    }
    return len;
}

static void test_long_values_cut(void **state)
{
    (void)state;
    size_t big = 200000;
    char *s = malloc(big);
    memset(s, 'a', big);
    check_cut(s, LOG_VALUE_MAX, 0);     /* bare, exactly the cap */
    check_cut(s, LOG_VALUE_MAX + 1, 1); /* one more */
    check_cut(s, big, 1);
    check_cut(s, LOG_VALUE_MAX - 3, 0);
    /* quoted: the quotes count */
    s[0] = ' ';
    check_cut(s, LOG_VALUE_MAX - 2, 0);
    check_cut(s, LOG_VALUE_MAX - 1, 1);
    /* escapes are never split, whatever their place against the cap */
    for (size_t i = 0; i < big; i++)
        s[i] = "\n\"x\\\xff"[i % 5];
    for (size_t len = 370; len < 420; len++) /* 13 bytes written for 5: the cap near 392 */
        check_cut(s, len, quoted_len(s, len) > LOG_VALUE_MAX);
    check_cut(s, big, 1);
    check_cut(s + 1, big - 1, 1);
    check_cut(s + 3, big - 3, 1);
    free(s);
}

/* Many long hostile fields: one line, far over the stack buffer, each value whole. */
static void test_many_fields(void **state)
{
    (void)state;
    enum { N = 40 };
    struct log_field f[N];
    char keys[N][8];
    char vals[N][200];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        for (size_t j = 0; j < sizeof vals[i] - 1; j++)
            vals[i][j] = "\"\n =\\\x01"[(i + (int)j) % 6];
        vals[i][sizeof vals[i] - 1] = '\0';
        f[i] = LOG_STR(keys[i], vals[i]);
    }
    struct capture c;
    capture_start(&c, LOG_INFO);
    log_fields(LOG_ERROR, "m", "many", f, N);
    log_fields(LOG_ERROR, "m", "none", NULL, 3);
    capture_end(&c);
    char *lines[3];
    assert_int_equal(split_lines(c.buf, c.len, lines, 3), 2);
    assert_true(strlen(lines[0]) > 8000);
    assert_printable(lines[0]);
    struct pair *pairs = calloc(MAX_PAIRS, sizeof *pairs);
    assert_int_equal(parse_logfmt(lines[0], pairs, MAX_PAIRS), 4 + N);
    for (int i = 0; i < N; i++) {
        assert_string_equal(pairs[4 + i].key, keys[i]);
        assert_string_equal(pairs[4 + i].value, vals[i]);
    }
    assert_int_equal(parse_logfmt(lines[1], pairs, MAX_PAIRS), 4);
    free(pairs);
    free(c.buf);
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
        log_info("thr", "line", LOG_INT("thread", id), LOG_INT("i", i), LOG_STR("pad", pad));
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
    struct pair *p = calloc(MAX_PAIRS, sizeof *p);
    while (getline(&line, &cap, f) > 0) {
        line[strcspn(line, "\n")] = '\0';
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
    free(p);
    free(line);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_level_parse),    cmocka_unit_test(test_level_filter),
        cmocka_unit_test(test_line_format),    cmocka_unit_test(test_hostile_values),
        cmocka_unit_test(test_all_bytes),      cmocka_unit_test(test_null_and_empty),
        cmocka_unit_test(test_hostile_names),  cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_long_values_cut), cmocka_unit_test(test_many_fields),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
