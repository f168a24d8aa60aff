/* Unit tests of b2bctl's CSV reader and writer: RFC 4180 quoting, CRLF/LF, line numbers, errors, UTF-8. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "b2bd/ctl_csv.h"

/* Reads every record of data into a string "line:f1|f2;line:..." ("!line:why;" for errors). */
static char *read_all(const char *data, size_t len)
{
    struct ctl_csv r;
    struct ctl_csv_record rec = {0};
    struct sbuf out = {0};
    char why[128];
    int got;
    ctl_csv_init(&r, data, len);
    sbuf_add(&out, "", 0);
    while ((got = ctl_csv_next(&r, &rec, why, sizeof why)) != 0) {
        if (got < 0) {
            sbuf_addf(&out, "!%ld:%s;", rec.line, why);
            continue;
        }
        sbuf_addf(&out, "%ld:", rec.line);
        for (size_t i = 0; i < rec.n; i++)
            sbuf_addf(&out, "%s%s", i ? "|" : "", rec.fields[i]);
        sbuf_adds(&out, ";");
    }
    ctl_csv_record_free(&rec);
    return out.s;
}

static void check(const char *data, const char *want)
{
    char *got = read_all(data, strlen(data));
    assert_string_equal(got, want);
    free(got);
}

static void test_plain(void **state)
{
    (void)state;
    check("a,b,c\n1,2,3\n", "1:a|b|c;2:1|2|3;");
    check("a,b\r\n1,2\r\n", "1:a|b;2:1|2;");
    check("a,b\n1,2", "1:a|b;2:1|2;");            /* no final newline */
    check("a,,c\n,\n", "1:a||c;2:|;");            /* empty fields */
    check("\xEF\xBB\xBF" "a,b\n", "1:a|b;");       /* BOM */
    check("a\n\n\r\nb\n", "1:a;4:b;");             /* blank lines skipped, lines counted */
    check("", "");
}

static void test_quoted(void **state)
{
    (void)state;
    check("\"a,b\",\"say \"\"hi\"\"\"\n", "1:a,b|say \"hi\";");
    check("\"two\nlines\",x\ny,z\n", "1:two\nlines|x;3:y|z;");
    check("\"crlf\r\ninside\",x\r\n", "1:crlf\r\ninside|x;");
    check("\"\",\"\"\n", "1:|;");
    check("\"é\",ü\n", "1:é|ü;");
}

static void test_errors_skip_to_next_line(void **state)
{
    (void)state;
    check("a,b\"c\nd,e\n", "!1:a quote inside an unquoted field;2:d|e;");
    check("\"a\"b,c\nd\n", "!1:text after a closing quote;2:d;");
    check("x\n\"open,y\nz\n", "1:x;!2:a quoted field is not closed;");
    char nul[] = "a\0b,c\nd\n";
    char *got = read_all(nul, sizeof nul - 1);
    assert_string_equal(got, "!1:a NUL byte;2:d;");
    free(got);
}

static void test_quote_writer(void **state)
{
    (void)state;
    struct sbuf b = {0};
    const char *in[] = {"plain", "a,b", "say \"x\"", "two\nlines", " padded", ""};
    for (size_t i = 0; i < 6; i++) {
        ctl_csv_quote(&b, in[i]);
        sbuf_adds(&b, i < 5 ? "," : "\n");
    }
    assert_string_equal(b.s, "plain,\"a,b\",\"say \"\"x\"\"\",\"two\nlines\",\" padded\",\n");
    char *back = read_all(b.s, b.len);
    assert_string_equal(back, "1:plain|a,b|say \"x\"|two\nlines| padded|;");
    free(back);
    sbuf_free(&b);
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(ctl_utf8_valid("ascii", 5));
    assert_true(ctl_utf8_valid("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 9));
    assert_false(ctl_utf8_valid("\xC3", 1));          /* truncated */
    assert_false(ctl_utf8_valid("\xC0\xAF", 2));      /* overlong */
    assert_false(ctl_utf8_valid("\xED\xA0\x80", 3));  /* surrogate */
    assert_false(ctl_utf8_valid("\xE9t\xE9", 3));     /* Latin-1 */
    assert_false(ctl_utf8_valid("\xF4\x90\x80\x80", 4)); /* > U+10FFFF */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_quoted),
        cmocka_unit_test(test_errors_skip_to_next_line),
        cmocka_unit_test(test_quote_writer),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
