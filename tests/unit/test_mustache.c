/* Unit tests of the Mustache renderer: the official spec's cases, escaping, errors with positions, limits and garbage input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "b2bd/mustache.h"
#include "mustache_spec.h"

#define BIG ((size_t)1 << 24)

/* Parses tmpl (which must parse), renders it over the JSON text data, returns the output or NULL. */
static char *render_json(const char *tmpl, const char *data, enum mustache_escape esc, size_t max_out)
{
    struct mustache_error err;
    struct mustache *t = mustache_parse(tmpl, strlen(tmpl), &err);
    if (!t)
        fail_msg("%s: does not parse: %d:%d %s", tmpl, err.line, err.column, err.message);
    json_error_t jerr;
    json_t *ctx = json_loads(data, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!ctx)
        fail_msg("%s: bad test data: %s", data, jerr.text);
    char *out = mustache_render(t, ctx, esc, max_out);
    json_decref(ctx);
    mustache_free(t);
    return out;
}

static void expect_render(const char *tmpl, const char *data, enum mustache_escape esc, const char *want)
{
    char *out = render_json(tmpl, data, esc, BIG);
    assert_non_null(out);
    if (strcmp(out, want) != 0)
        fail_msg("template %s: got \"%s\", want \"%s\"", tmpl, out, want);
    free(out);
}

static void test_spec(void **state)
{
    (void)state;
    size_t n, failed = 0;
    const struct mustache_spec_case *cases = mustache_spec_cases(&n);
    assert_true(n >= 120);
    for (size_t i = 0; i < n; i++) {
        const struct mustache_spec_case *c = &cases[i];
        struct mustache_error err;
        struct mustache *t = mustache_parse(c->tmpl, strlen(c->tmpl), &err);
        if (!t) {
            print_error("FAIL %s: %s: parse error %d:%d %s\n", c->module, c->name, err.line, err.column, err.message);
            failed++;
            continue;
        }
        json_error_t jerr;
        json_t *ctx = json_loads(c->data, JSON_DECODE_ANY, &jerr);
        assert_non_null(ctx);
        char *out = mustache_render(t, ctx, MUSTACHE_HTML, BIG);
        if (!out || strcmp(out, c->expected) != 0) {
            print_error("FAIL %s: %s: got \"%s\", want \"%s\"\n", c->module, c->name, out ? out : "(NULL)",
                        c->expected);
            failed++;
        }
        free(out);
        json_decref(ctx);
        mustache_free(t);
    }
    print_message("mustache spec: %zu of %zu cases pass\n", n - failed, n);
    assert_int_equal(failed, 0);
}

static void test_html_escaping(void **state)
{
    (void)state;
    const char *data = "{\"v\":\"a&b<c>d\\\"e'f\"}";
    expect_render("{{v}}", data, MUSTACHE_HTML, "a&amp;b&lt;c&gt;d&quot;e&#39;f");
    expect_render("{{ v }}|{{{v}}}|{{&v}}", data, MUSTACHE_HTML, "a&amp;b&lt;c&gt;d&quot;e&#39;f|a&b<c>d\"e'f|a&b<c>d\"e'f");
    expect_render("{{#l}}{{.}}{{/l}}", "{\"l\":[\"<\",\"&amp;\"]}", MUSTACHE_HTML, "&lt;&amp;amp;");
    /* Template text is never escaped, only values. */
    expect_render("<p>&{{v}}</p>", "{\"v\":\"x\"}", MUSTACHE_HTML, "<p>&x</p>");
}

static void test_escape_none(void **state)
{
    (void)state;
    const char *data = "{\"v\":\"a&b<c>d\\\"e'f\"}";
    expect_render("{{v}}|{{{v}}}|{{&v}}", data, MUSTACHE_NONE, "a&b<c>d\"e'f|a&b<c>d\"e'f|a&b<c>d\"e'f");
}

static void test_values(void **state)
{
    (void)state;
    expect_render("{{a}} {{b}} {{c}} {{d}} {{e}}", "{\"a\":1.210,\"b\":-7,\"c\":0.1,\"d\":1e300,\"e\":2.0}",
                  MUSTACHE_HTML, "1.21 -7 0.1 1e+300 2");
    expect_render("{{i}}", "{\"i\":9007199254740993}", MUSTACHE_HTML, "9007199254740993");
    expect_render("{{t}}/{{f}}/{{n}}/{{o}}/{{a}}/{{missing}}", "{\"t\":true,\"f\":false,\"n\":null,\"o\":{\"x\":1},\"a\":[1]}",
                  MUSTACHE_HTML, "true/false////");
    /* Truthiness: "" 0 and {} are truthy; false null [] and missing names are not. */
    expect_render("{{#s}}s{{/s}}{{#z}}z{{/z}}{{#o}}o{{/o}}{{#f}}F{{/f}}{{#n}}N{{/n}}{{#a}}A{{/a}}{{#m}}M{{/m}}",
                  "{\"s\":\"\",\"z\":0,\"o\":{},\"f\":false,\"n\":null,\"a\":[]}", MUSTACHE_HTML, "szo");
    expect_render("{{^s}}s{{/s}}{{^z}}z{{/z}}{{^o}}o{{/o}}{{^f}}F{{/f}}{{^n}}N{{/n}}{{^a}}A{{/a}}{{^m}}M{{/m}}",
                  "{\"s\":\"\",\"z\":0,\"o\":{},\"f\":false,\"n\":null,\"a\":[]}", MUSTACHE_HTML, "FNAM");
    /* A U+0000 in a value is dropped. */
    expect_render("[{{v}}]", "{\"v\":\"a\\u0000b\"}", MUSTACHE_HTML, "[ab]");
    /* Dotted names through the stack, as in an order e-mail. */
    expect_render("{{#items}}{{customer.first_name}}:{{sku}} {{/items}}",
                  "{\"customer\":{\"first_name\":\"Ann\"},\"items\":[{\"sku\":\"A1\"},{\"sku\":\"B2\"}]}",
                  MUSTACHE_HTML, "Ann:A1 Ann:B2 ");
    /* Non-object roots and a NULL context. */
    expect_render("[{{x}}{{.}}]", "[1,2]", MUSTACHE_HTML, "[]");
    const char *tmpl = "a{{x}}b{{#y}}c{{/y}}{{^y}}d{{/y}}";
    struct mustache *t = mustache_parse(tmpl, strlen(tmpl), NULL);
    assert_non_null(t);
    char *out = mustache_render(t, NULL, MUSTACHE_HTML, 100);
    assert_string_equal(out, "abd");
    free(out);
    mustache_free(t);
}

static void test_bytes_pass_through(void **state)
{
    (void)state;
    /* Invalid UTF-8 and stray braces outside tags are copied untouched. */
    const char tmpl[] = "\xff\xfe{\x80}{{v}}\xc3(} {x}}";
    char *out = render_json(tmpl, "{\"v\":\"\xc3\xa9\"}", MUSTACHE_HTML, BIG);
    assert_non_null(out);
    assert_string_equal(out, "\xff\xfe{\x80}\xc3\xa9\xc3(} {x}}");
    free(out);
    expect_render("", "{}", MUSTACHE_HTML, "");
    expect_render("{{=<% %>=}}{{a}}<%a%>", "{\"a\":1}", MUSTACHE_HTML, "{{a}}1");
    expect_render("{{=<% %>=}}<%{a}%>", "{\"a\":\"<\"}", MUSTACHE_HTML, "<");
}

struct bad {
    const char *tmpl;
    int line, column;
    const char *message; /* a substring of the message */
};

static void test_malformed(void **state)
{
    (void)state;
    static const struct bad cases[] = {
        {"{{#a}}\n{{/b}}", 2, 1, "does not match section \"a\" opened at 1:1"},
        {"x\n  {{#a}}\ny", 2, 3, "unclosed section \"a\""},
        {"{{#a}}{{#b}}{{/b}}", 1, 1, "unclosed section \"a\""},
        {"{{#a}}{{#b}}", 1, 7, "unclosed section \"b\""},
        {"ab\ncd{{/a}}", 2, 3, "without an open section"},
        {"hello {{name", 1, 7, "unclosed tag"},
        {"{{", 1, 1, "unclosed tag"},
        {"{{{", 1, 1, "unclosed tag"},
        {"{{{a}}", 1, 1, "triple mustache"},
        {"x{{#", 1, 2, "unclosed tag"},
        {"{{! never closed }", 1, 1, "unclosed tag"},
        {"{{}}", 1, 1, "empty tag name"},
        {"{{ \t }}", 1, 1, "empty tag name"},
        {"{{#}}{{/}}", 1, 1, "empty tag name"},
        {"{{a b}}", 1, 1, "whitespace"},
        {"{{a..b}}", 1, 1, "empty dotted part"},
        {"{{.a}}", 1, 1, "empty dotted part"},
        {"{{a.}}", 1, 1, "empty dotted part"},
        {"\n\n   {{=<%=}}", 3, 4, "two delimiters"},
        {"x{{=<% %>", 1, 2, "unclosed set-delimiter"},
        {"{{=<% %>}}", 1, 1, "unclosed set-delimiter"},
        {"{{==}}", 1, 1, "two delimiters"},
        {"{{= <% =}}", 1, 1, "two delimiters"},
        {"{{=a b c=}}", 1, 1, "two delimiters"},
        {"{{=<=% %>=}}", 1, 1, "'='"},
        {"{{=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx y=}}", 1, 1, "longer than"},
        {"{{=<% %>=}}\n<%#a%>\n<%/b%>", 3, 1, "does not match"},
        {"{{=<% %>=}}<%a", 1, 12, "unclosed tag"},
        {"{{> partial}}", 1, 1, "partials are not supported"},
        {"{{<parent}}{{/parent}}", 1, 1, "inheritance"},
        {"{{$block}}{{/block}}", 1, 1, "inheritance"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct mustache_error err;
        struct mustache *t = mustache_parse(cases[i].tmpl, strlen(cases[i].tmpl), &err);
        if (t)
            fail_msg("%s: parsed", cases[i].tmpl);
        if (err.line != cases[i].line || err.column != cases[i].column || !strstr(err.message, cases[i].message))
            fail_msg("%s: got %d:%d %s, want %d:%d ...%s...", cases[i].tmpl, err.line, err.column, err.message,
                     cases[i].line, cases[i].column, cases[i].message);
    }
    /* err may be NULL. */
    assert_null(mustache_parse("{{", 2, NULL));
}

static void test_truncated_tags(void **state)
{
    (void)state;
    /* Every prefix of a template full of tags either parses or fails; none reads past len. */
    const char full[] = "a{{#s}}{{{b}}}{{&c}}{{! d }}{{^e}}{{=<% %>=}}<%f%><%={{ }}=%>{{/e}}{{/s}}z";
    size_t n = strlen(full);
    for (size_t len = 0; len <= n; len++) {
        char *copy = malloc(len ? len : 1); /* exactly len bytes, no NUL: ASan catches any over-read */
        assert_non_null(copy);
        memcpy(copy, full, len);
        struct mustache_error err;
        struct mustache *t = mustache_parse(copy, len, &err);
        free(copy);
        if (len == n)
            assert_non_null(t);
        if (t) {
            char *out = mustache_render(t, NULL, MUSTACHE_HTML, 1024);
            assert_non_null(out);
            free(out);
            mustache_free(t);
        } else {
            assert_true(err.line >= 1 && err.column >= 1 && err.message[0] != '\0');
        }
    }
}

static char *repeat(const char *s, size_t times, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    char *buf = malloc(n * times + m + 1);
    assert_non_null(buf);
    for (size_t i = 0; i < times; i++)
        memcpy(buf + i * n, s, n);
    memcpy(buf + n * times, tail, m + 1);
    return buf;
}

static void test_deep_nesting(void **state)
{
    (void)state;
    struct mustache_error err;
    char *deep = repeat("{{#a}}", 10000, "");
    assert_null(mustache_parse(deep, strlen(deep), &err));
    assert_int_equal(err.line, 1);
    assert_int_equal(err.column, 6 * MUSTACHE_MAX_DEPTH + 1);
    assert_non_null(strstr(err.message, "nested too deep"));
    free(deep);

    /* Exactly MUSTACHE_MAX_DEPTH levels parse and render, over a self-similar context. */
    char *open = repeat("{{#a}}", MUSTACHE_MAX_DEPTH, "x");
    char *close = repeat("{{/a}}", MUSTACHE_MAX_DEPTH, "");
    size_t n = strlen(open) + strlen(close);
    char *ok = malloc(n + 1);
    assert_non_null(ok);
    snprintf(ok, n + 1, "%s%s", open, close);
    struct mustache *t = mustache_parse(ok, n, &err);
    assert_non_null(t);
    char *out = render_json(ok, "{\"a\":[true]}", MUSTACHE_HTML, BIG);
    assert_string_equal(out, "x");
    free(out);
    out = render_json(ok, "{\"a\":[]}", MUSTACHE_HTML, BIG);
    assert_string_equal(out, "");
    free(out);
    mustache_free(t);
    free(open);
    free(close);
    free(ok);

    /* One more level is an error. */
    open = repeat("{{^a}}", MUSTACHE_MAX_DEPTH + 1, "");
    close = repeat("{{/a}}", MUSTACHE_MAX_DEPTH + 1, "");
    n = strlen(open) + strlen(close);
    ok = malloc(n + 1);
    assert_non_null(ok);
    snprintf(ok, n + 1, "%s%s", open, close);
    assert_null(mustache_parse(ok, n, &err));
    assert_non_null(strstr(err.message, "nested too deep"));
    free(open);
    free(close);
    free(ok);
}

static void test_huge_input(void **state)
{
    (void)state;
    /* 1 MiB of template: text and tags. */
    char *tmpl = repeat("012345678{{v}}{{#l}}{{.}}{{/l}}\n", 1 << 15, ""); /* 32 * 32768 bytes */
    size_t len = strlen(tmpl);
    assert_int_equal(len, (size_t)1 << 20);
    struct mustache_error err;
    struct mustache *t = mustache_parse(tmpl, len, &err);
    assert_non_null(t);
    json_t *ctx = json_pack("{s:s, s:[i,i]}", "v", "<>", "l", 1, 2);
    assert_non_null(ctx);
    size_t per = 9 + 8 + 2 + 1; /* text, "&lt;&gt;", "12", "\n" */
    size_t want = per << 15;
    char *out = mustache_render(t, ctx, MUSTACHE_HTML, want);
    assert_non_null(out);
    assert_int_equal(strlen(out), want);
    assert_memory_equal(out, "012345678&lt;&gt;12\n0123", 24);
    free(out);
    assert_null(mustache_render(t, ctx, MUSTACHE_HTML, want - 1));
    assert_null(mustache_render(t, ctx, MUSTACHE_HTML, 1000));
    assert_null(mustache_render(t, ctx, MUSTACHE_HTML, 0));
    json_decref(ctx);
    mustache_free(t);
    free(tmpl);

    /* A huge value against a small limit. */
    char *big = repeat("<", 1 << 20, "");
    ctx = json_pack("{s:s}", "v", big);
    t = mustache_parse("[{{v}}]", 7, &err);
    assert_non_null(t);
    assert_null(mustache_render(t, ctx, MUSTACHE_HTML, 4096));
    out = mustache_render(t, ctx, MUSTACHE_NONE, ((size_t)1 << 20) + 2);
    assert_non_null(out);
    assert_int_equal(strlen(out), ((size_t)1 << 20) + 2);
    free(out);
    json_decref(ctx);
    mustache_free(t);
    free(big);
}

static void test_output_limit(void **state)
{
    (void)state;
    char *out = render_json("ab{{v}}", "{\"v\":\"&\"}", MUSTACHE_HTML, 7);
    assert_string_equal(out, "ab&amp;");
    free(out);
    assert_null(render_json("ab{{v}}", "{\"v\":\"&\"}", MUSTACHE_HTML, 6));
    out = render_json("", "{}", MUSTACHE_HTML, 0);
    assert_string_equal(out, "");
    free(out);
    out = render_json("{{#no}}x{{/no}}", "{}", MUSTACHE_HTML, 0);
    assert_string_equal(out, "");
    free(out);
    out = render_json("abc", "{}", MUSTACHE_HTML, SIZE_MAX);
    assert_string_equal(out, "abc");
    free(out);
}

static void test_work_limit(void **state)
{
    (void)state;
    /* 100^6 empty iterations: stopped by MUSTACHE_MAX_STEPS, not run for ages. */
    json_t *l = json_array();
    for (int i = 0; i < 100; i++)
        json_array_append_new(l, json_integer(i));
    json_t *ctx = json_pack("{s:o}", "l", l);
    const char *tmpl = "{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}{{x}}{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}";
    struct mustache *t = mustache_parse(tmpl, strlen(tmpl), NULL);
    assert_non_null(t);
    assert_null(mustache_render(t, ctx, MUSTACHE_HTML, BIG));
    mustache_free(t);
    /* Two levels (10^4 iterations) are fine. */
    tmpl = "{{#l}}{{#l}}{{x}}{{/l}}{{/l}}.";
    t = mustache_parse(tmpl, strlen(tmpl), NULL);
    assert_non_null(t);
    char *out = mustache_render(t, ctx, MUSTACHE_HTML, BIG);
    assert_string_equal(out, ".");
    free(out);
    mustache_free(t);
    json_decref(ctx);
}

/* xorshift64*: a fixed-seed generator, so failures reproduce. */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

static void test_random_templates(void **state)
{
    (void)state;
    static const char *const pieces[] = {"{{", "}}", "{{{", "}}}", "{{#", "{{/", "{{^", "{{!", "{{&", "{{=",
                                         "=}}", "<%", "%>", "a", "b", "l", "o", ".", " ", "\n", "\r\n", "\t",
                                         "=", "{", "}", "#", "/", "^", "!", "&", "<% %>", "x.y", "\xff"};
    size_t npieces = sizeof pieces / sizeof pieces[0];
    json_error_t jerr;
    json_t *ctx = json_loads("{\"a\":\"<&>\",\"b\":[1,2.5,{\"a\":\"in\"}],\"l\":[[1],[],[\"x\"]],"
                             "\"o\":{\"a\":true,\"b\":{\"c\":null}},\"x\":{\"y\":\"xy\"}}",
                             0, &jerr);
    assert_non_null(ctx);
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    size_t parsed = 0, total = 0;
    char buf[512];
    for (int round = 0; round < 4000; round++) {
        size_t len = 0;
        size_t target = next_rand(&seed) % 200;
        bool bytes = round % 4 == 3; /* every fourth: raw random bytes 1..255 */
        while (len < target) {
            if (bytes) {
                buf[len++] = (char)(1 + next_rand(&seed) % 255);
                continue;
            }
            const char *p = pieces[next_rand(&seed) % npieces];
            size_t pl = strlen(p);
            if (len + pl > sizeof buf)
                break;
            memcpy(buf + len, p, pl);
            len += pl;
        }
        char *copy = malloc(len ? len : 1);
        assert_non_null(copy);
        memcpy(copy, buf, len);
        struct mustache_error err;
        struct mustache *t = mustache_parse(copy, len, &err);
        total++;
        if (t) {
            parsed++;
            char *out = mustache_render(t, ctx, round % 2 ? MUSTACHE_HTML : MUSTACHE_NONE, 2048);
            free(out);
            mustache_free(t);
        } else {
            assert_true(err.line >= 1 && err.column >= 1);
            assert_true(strlen(err.message) < sizeof err.message);
        }
        free(copy);
    }
    print_message("random templates: %zu of %zu parsed\n", parsed, total);
    assert_true(parsed > 100);
    json_decref(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec),
        cmocka_unit_test(test_html_escaping),
        cmocka_unit_test(test_escape_none),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_bytes_pass_through),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_truncated_tags),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_huge_input),
        cmocka_unit_test(test_output_limit),
        cmocka_unit_test(test_work_limit),
        cmocka_unit_test(test_random_templates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
