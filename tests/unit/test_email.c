/* test_email: the shipped default template loads, parses and renders the contract's names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "b2bd/email.h"

#ifndef B2BD_SOURCE_DIR
#define B2BD_SOURCE_DIR "."
#endif

static json_t *context(const char *first_name)
{
    return json_pack("{s{ssss}s{ssssss}s{ss}s[{ssssss}{ssssss}]s{si}sbsb}",
                     "shop", "name", "Nordic & Co", "account_url", "https://n.example/account",
                     "customer", "first_name", first_name, "last_name", "Berg", "email", "a@b.example",
                     "company", "name", "ACME <Oslo>",
                     "locations", "name", "HQ", "role", "ordering_only", "role_name", "Ordering only",
                     "name", "Depot", "role", "location_admin", "role_name", "Location admin",
                     "login", "code_digits", 6, "has_locations", 1, "several_locations", 1);
}

static void test_default_template_renders(void **state)
{
    (void)state;
    struct email_template t;
    struct b2bd_err err;
    assert_int_equal(email_template_load(B2BD_SOURCE_DIR "/config/templates", &t, &err), 0);
    assert_int_equal(t.version, 0);
    json_t *ctx = context("Zoë <script>");
    struct email_rendered r;
    assert_int_equal(email_render(&t, ctx, &r), 0);
    assert_string_equal(r.subject, "Nordic & Co: you can now place B2B orders for ACME <Oslo>");
    assert_non_null(strstr(r.text, "Hello Zoë <script>,"));
    assert_non_null(strstr(r.text, "  - HQ (Ordering only)\n  - Depot (Location admin)\n"));
    assert_non_null(strstr(r.text, "6-digit code"));
    assert_non_null(strstr(r.text, "choose one before you order"));
    assert_non_null(strstr(r.html, "Hello Zoë &lt;script&gt;,"));
    assert_null(strstr(r.html, "<script>"));
    assert_non_null(strstr(r.html, "<strong>ACME &lt;Oslo&gt;</strong>"));
    assert_non_null(strstr(r.html, "Nordic &amp; Co"));
    email_rendered_free(&r);
    json_decref(ctx);
    email_template_free(&t);
}

static void test_invalid_template_names_part_line_and_column(void **state)
{
    (void)state;
    struct email_template t;
    struct b2bd_err err;
    assert_int_equal(email_template_parse("ok", "line one\n  {{#locations}}\n", "<p/>", 1, &t, &err),
                     B2BD_INVALID);
    assert_string_equal(err.field, "payload.text");
    assert_non_null(strstr(err.msg, "line 2, column 3"));
    assert_int_equal(email_template_parse("{{/x}}", "t", "h", 1, &t, &err), B2BD_INVALID);
    assert_string_equal(err.field, "payload.subject");
    assert_int_equal(email_template_parse("s", "t", "{{#a}}{{/b}}", 1, &t, &err), B2BD_INVALID);
    assert_string_equal(err.field, "payload.html");
    assert_int_equal(email_template_parse("s {{x}}", "t", "h", 4, &t, &err), B2BD_OK);
    assert_int_equal(t.version, 4);
    email_template_free(&t);
}

static void test_missing_template_dir(void **state)
{
    (void)state;
    struct email_template t;
    struct b2bd_err err;
    assert_int_equal(email_template_load("/nonexistent/b2bd", &t, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/b2bd/b2b-access.subject.mustache"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_template_renders),
        cmocka_unit_test(test_invalid_template_names_part_line_and_column),
        cmocka_unit_test(test_missing_template_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
