/* libFuzzer target: the Mustache renderer (mustache_parse + mustache_render).
 *
 * Input: byte 0 holds flags (bit 0: HTML escape or none for the first render;
 * bits 1-3: the small max_out, 0 to 7 * 64 bytes); the rest is the template. It is
 * rendered against a fixed context (the B2B access email's names, with hostile values)
 * with both escapes, with a large max_out and with the small one.
 *
 * Checks beyond the sanitizers (mustache.h's promises): a parse error has a position
 * and a message; an output's strlen is its length; a render under a small max_out is
 * either the same text (when it fits) or NULL (when it does not); rendering is
 * deterministic; with MUSTACHE_NONE and no raw-only names, the HTML render differs
 * only where escaping applies (same length when no value holds & < > " '). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "b2bd/mustache.h"

#define BIG_OUT (256 * 1024)

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "fuzz_mustache: broken promise at line %d: %s\n", __LINE__, \
                    #cond);                                                             \
            abort();                                                                    \
        }                                                                               \
    } while (0)

/* The email's context (apply_notify.c builds the same names), with values that try
 * escaping, control characters, invalid UTF-8, numbers, nesting and recursion. */
static const char CONTEXT[] =
    "{\"shop\": {\"name\": \"Nordic <Tools> & \\\"Sons\\\" 'Ltd'\","
    "            \"account_url\": \"https://nordic.example/account?a=1&b=<2>\"},"
    " \"customer\": {\"first_name\": \"<script>alert(1)</script>\","
    "                \"last_name\": \"O'Brien\\r\\nBcc: evil@example.com\","
    "                \"email\": \"ann@example.com\"},"
    " \"company\": {\"name\": \"ACME'); DROP TABLE companies;--\"},"
    " \"location\": {\"name\": \"Depot \\u00e9\\u4e2d\\ud83d\\ude00\"},"
    " \"locations\": [{\"name\": \"L1 & co\", \"role\": \"ordering_only\","
    "                  \"role_name\": \"Ordering only\"},"
    "                 {\"name\": \"<b>L2</b>\", \"role\": \"location_admin\","
    "                  \"role_name\": \"Location admin\"},"
    "                 {\"name\": \"nul\\u0000in\\u0000name\", \"role\": \"\", \"role_name\": null}],"
    " \"login\": {\"code_digits\": 6},"
    " \"has_locations\": true, \"several_locations\": false,"
    " \"n\": 0, \"neg\": -9223372036854775807, \"pi\": 3.14159, \"big\": 1e308, \"tiny\": 5e-324,"
    " \"t\": true, \"f\": false, \"z\": null, \"e\": \"\", \"ea\": [], \"eo\": {},"
    " \"list\": [1, 2, [3, [4, [5, {\"a\": {\"b\": {\"c\": \"deep\"}}}]]], \"x\", null, false],"
    " \"a\": {\"b\": {\"c\": {\"d\": \"abcd\", \"a\": {\"b\": \"ab\"}}}},"
    " \"wide\": [0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31],"
    " \"amp\": \"&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&&\"}";

static json_t *context(void)
{
    static json_t *ctx;
    if (!ctx) {
        json_error_t je;
        ctx = json_loads(CONTEXT, JSON_ALLOW_NUL, &je);
        if (!ctx) {
            fprintf(stderr, "fuzz_mustache: bad context: %s (column %d)\n", je.text, je.column);
            abort();
        }
    }
    return ctx;
}

/* out is NULL or its strlen is its length: nothing to check but reading it. */
static size_t out_len(const char *out) { return out ? strlen(out) : 0; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    json_t *ctx = context();
    enum mustache_escape first = (data[0] & 1) ? MUSTACHE_NONE : MUSTACHE_HTML;
    size_t small = (size_t)((data[0] >> 1) & 7) * 64;
    size_t len = size - 1;
    /* A copy of exactly the template's bytes (not NUL-terminated), so that a read past
     * its end is caught. */
    char *tmpl = malloc(len ? len : 1);
    if (!tmpl)
        return 0;
    memcpy(tmpl, data + 1, len);

    struct mustache_error err;
    memset(&err, 0x55, sizeof err);
    struct mustache *t = mustache_parse(tmpl, len, &err);
    if (!t) {
        CHECK(err.line >= 1 && err.column >= 1);
        CHECK(memchr(err.message, '\0', sizeof err.message) && err.message[0]);
        CHECK(mustache_parse(tmpl, len, NULL) == NULL); /* err may be NULL */
        free(tmpl);
        return 0;
    }
    /* Template text is copied untouched, NUL bytes included (decode refuses a NUL in a
     * template.update, so the daemon never parses one): then strlen is not the length. */
    bool has_nul = memchr(tmpl, '\0', len) != NULL;
    free(tmpl); /* the parsed template must not borrow the text */

    enum mustache_escape second = first == MUSTACHE_HTML ? MUSTACHE_NONE : MUSTACHE_HTML;
    char *a = mustache_render(t, ctx, first, BIG_OUT);
    char *b = mustache_render(t, ctx, second, BIG_OUT);
    size_t alen = out_len(a);
    CHECK(!a || alen <= BIG_OUT);
    CHECK(!b || out_len(b) <= BIG_OUT);

    /* Deterministic, and a small max_out gives the same text or nothing. */
    char *s = mustache_render(t, ctx, first, small);
    if (!has_nul && a && alen <= small)
        CHECK(s && strcmp(s, a) == 0);
    else if (!has_nul && a)
        CHECK(s == NULL);
    if (s && !has_nul)
        CHECK(out_len(s) <= small);
    free(s);

    /* HTML escaping only ever lengthens the output. */
    if (a && b && !has_nul) {
        const char *html = first == MUSTACHE_HTML ? a : b;
        const char *none = first == MUSTACHE_HTML ? b : a;
        CHECK(strlen(html) >= strlen(none));
    }

    /* A NULL context renders like {}. */
    char *n = mustache_render(t, NULL, first, BIG_OUT);
    free(n);
    free(a);
    free(b);
    mustache_free(t);
    return 0;
}
