/* Unit tests of b2bctl import's rows to commands: columns, defaults, validation, stable ids; and topics' plan. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "b2bd/ctl_csv.h"
#include "b2bd/ctl_import.h"
#include "b2bd/ctl_topics.h"

static void test_uuid_v5_known_value(void **state)
{
    (void)state;
    /* RFC 4122 DNS namespace; uuid.uuid5(uuid.NAMESPACE_DNS, "python.org") */
    static const unsigned char dns[16] = {0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1,
                                          0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};
    char out[37];
    ctl_uuid_v5(dns, "python.org", 10, out);
    assert_string_equal(out, "886313e1-3b8a-5372-9b90-0c9aee199e5d");
}

/* Parses a header and one row and builds the command (NULL on a row error: field, why). */
static json_t *build(const char *csv, const struct ctl_import_opts *o, char field[64], char why[256])
{
    struct ctl_csv r;
    struct ctl_csv_record hdr = {0}, row = {0};
    struct ctl_import_columns cols;
    ctl_csv_init(&r, csv, strlen(csv));
    assert_int_equal(ctl_csv_next(&r, &hdr, why, 256), 1);
    assert_int_equal(ctl_import_header(&hdr, &cols, why, 256), 0);
    assert_int_equal(ctl_csv_next(&r, &row, why, 256), 1);
    json_t *cmd = ctl_import_row(o, &cols, &row, field, 64, why, 256);
    ctl_csv_record_free(&hdr);
    ctl_csv_record_free(&row);
    return cmd;
}

static const struct ctl_import_opts OPTS = {.shop = "shop-1", .company = "c-1", .location = "loc-1",
                                            .role = NULL, .notify = false, .import_id = "imp-1"};

static void test_row_by_email_with_defaults(void **state)
{
    (void)state;
    char field[64], why[256];
    json_t *cmd = build("Email, first_name ,phone\n  Ann@Example.com ,Ann,+47 1\n", &OPTS, field, why);
    assert_non_null(cmd);
    char *s = json_dumps(json_object_get(cmd, "payload"), JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"company_id\":\"c-1\",\"customer\":{\"email\":\"Ann@Example.com\","
                           "\"first_name\":\"Ann\",\"phone\":\"+47 1\"},\"locations\":[{\"location_id\":"
                           "\"loc-1\",\"role\":\"ordering_only\"}]}");
    free(s);
    assert_string_equal(json_string_value(json_object_get(cmd, "type")), "assign");
    assert_string_equal(json_string_value(json_object_get(cmd, "import_id")), "imp-1");
    json_decref(cmd);
}

static void test_row_columns_override_defaults(void **state)
{
    (void)state;
    char field[64], why[256];
    json_t *cmd = build("customer_id,location_id,role,notify\ncust-9,loc-2,location_admin,yes\n", &OPTS,
                        field, why);
    assert_non_null(cmd);
    char *s = json_dumps(json_object_get(cmd, "payload"), JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"company_id\":\"c-1\",\"customer\":{\"id\":\"cust-9\"},\"locations\":"
                           "[{\"location_id\":\"loc-2\",\"role\":\"location_admin\"}],\"notify\":true}");
    free(s);
    json_decref(cmd);
    struct ctl_import_opts none = OPTS;
    none.location = NULL;
    cmd = build("customer_id\ncust-9\n", &none, field, why);
    assert_int_equal(json_array_size(json_object_get(json_object_get(cmd, "payload"), "locations")), 0);
    json_decref(cmd);
}

static void expect_error(const char *csv, const char *want_field, const char *want_why_part)
{
    char field[64], why[256];
    json_t *cmd = build(csv, &OPTS, field, why);
    if (cmd)
        print_error("expected an error for %s\n", csv);
    assert_null(cmd);
    assert_string_equal(field, want_field);
    if (!strstr(why, want_why_part))
        print_error("%s: why = %s\n", csv, why);
    assert_non_null(strstr(why, want_why_part));
}

static void test_row_errors(void **state)
{
    (void)state;
    expect_error("email,role\nnot-an-email,ordering_only\n", "email", "not an email");
    expect_error("email,role\na@b.example,boss\n", "role", "ordering_only or location_admin");
    expect_error("email,notify\na@b.example,perhaps\n", "notify", "true or false");
    expect_error("email,first_name\na@b.example\n", "", "expected 2 fields, found 1");
    expect_error("email,first_name\na@b.example,x,y\n", "", "expected 2 fields, found 3");
    expect_error("email,customer_id\n , \n", "email", "an email or a customer_id");
    expect_error("email,first_name\na@b.example,\xE9\n", "", "not UTF-8");
}

static void test_header_errors(void **state)
{
    (void)state;
    struct ctl_csv r;
    struct ctl_csv_record hdr = {0};
    struct ctl_import_columns cols;
    char why[256];
    const char *bad[] = {"email,colour\n", "email,EMAIL\n", "first_name,last_name\n"};
    const char *want[] = {"unknown column \"colour\"", "appears twice", "email or a customer_id"};
    for (size_t i = 0; i < 3; i++) {
        ctl_csv_init(&r, bad[i], strlen(bad[i]));
        assert_int_equal(ctl_csv_next(&r, &hdr, why, sizeof why), 1);
        assert_int_equal(ctl_import_header(&hdr, &cols, why, sizeof why), -1);
        assert_non_null(strstr(why, want[i]));
    }
    ctl_csv_record_free(&hdr);
}

static void test_ids_stable_and_distinct(void **state)
{
    (void)state;
    char field[64], why[256];
    json_t *a = build("email\na@b.example\n", &OPTS, field, why);
    json_t *b = build("first_name,email\n,a@b.example\n", &OPTS, field, why); /* same command */
    struct ctl_import_opts other = OPTS;
    other.import_id = "imp-2";
    json_t *c = build("email\na@b.example\n", &other, field, why);
    json_t *d = build("email\nz@b.example\n", &OPTS, field, why);
    const char *ia = json_string_value(json_object_get(a, "command_id"));
    assert_string_equal(ia, json_string_value(json_object_get(b, "command_id")));
    assert_string_not_equal(ia, json_string_value(json_object_get(c, "command_id")));
    assert_string_not_equal(ia, json_string_value(json_object_get(d, "command_id")));
    assert_int_equal(ia[14], '5'); /* version 5 */
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(d);
}

static void test_default_import_id(void **state)
{
    (void)state;
    char x[40], y[40], z[40];
    ctl_import_default_id("email\na@b\n", 10, &OPTS, x);
    ctl_import_default_id("email\na@b\n", 10, &OPTS, y);
    struct ctl_import_opts other = OPTS;
    other.company = "c-2";
    ctl_import_default_id("email\na@b\n", 10, &other, z);
    assert_string_equal(x, y);
    assert_string_not_equal(x, z);
    assert_int_equal(strlen(x), 36);
    assert_memory_equal(x, "imp-", 4);
}

static void test_jsonl(void **state)
{
    (void)state;
    char why[256];
    const char *line = "{\"type\":\"assign\",\"shop_id\":\"s\",\"payload\":{}}";
    json_t *a = ctl_import_jsonl("imp-1", line, strlen(line), why, sizeof why);
    json_t *b = ctl_import_jsonl("imp-1", line, strlen(line), why, sizeof why);
    assert_non_null(a);
    assert_string_equal(json_string_value(json_object_get(a, "command_id")),
                        json_string_value(json_object_get(b, "command_id")));
    assert_string_equal(json_string_value(json_object_get(a, "import_id")), "imp-1");
    json_decref(a);
    json_decref(b);
    const char *kept = "{\"command_id\":\"X\",\"import_id\":\"mine\",\"type\":\"t\",\"shop_id\":\"s\"}";
    a = ctl_import_jsonl("imp-1", kept, strlen(kept), why, sizeof why);
    assert_string_equal(json_string_value(json_object_get(a, "command_id")), "X");
    assert_string_equal(json_string_value(json_object_get(a, "import_id")), "mine");
    json_decref(a);
    assert_null(ctl_import_jsonl("imp-1", "[1]", 3, why, sizeof why));
    assert_null(ctl_import_jsonl("imp-1", "{nope", 5, why, sizeof why));
    assert_non_null(strstr(why, "not JSON"));
}

static void test_error_column(void **state)
{
    (void)state;
    assert_string_equal(ctl_import_error_column("payload.locations[0].location_id"), "location_id");
    assert_string_equal(ctl_import_error_column("payload.locations[0].role"), "role");
    assert_string_equal(ctl_import_error_column("payload.customer.email"), "email");
    assert_string_equal(ctl_import_error_column("payload.customer.id"), "customer_id");
    assert_string_equal(ctl_import_error_column("payload.company_id"), "payload.company_id");
    assert_string_equal(ctl_import_error_column(NULL), "");
}

static void test_topics_plan_caps(void **state)
{
    (void)state;
    json_t *m = json_loads("{\"defaults\":{\"replication_factor\":3},\"topics\":[{\"suffix\":\"results\","
                           "\"partitions\":12,\"replication_factor\":3,\"config\":{\"min.insync.replicas\":"
                           "\"2\",\"retention.ms\":\"1\"}},{\"suffix\":\"dlq\",\"partitions\":3,\"config\":{}},"
                           "{\"partitions\":1}]}", 0, NULL);
    json_t *topics = json_object_get(m, "topics");
    json_t *p = ctl_topics_plan(m, json_array_get(topics, 0), "x.", 1);
    char *s = json_dumps(p, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(s, "{\"config\":{\"min.insync.replicas\":\"1\",\"retention.ms\":\"1\"},\"name\":"
                           "\"x.results\",\"partitions\":12,\"replication_factor\":1}");
    free(s);
    json_decref(p);
    p = ctl_topics_plan(m, json_array_get(topics, 0), "b2b.", 5);
    assert_int_equal(json_integer_value(json_object_get(p, "replication_factor")), 3);
    assert_string_equal(json_string_value(json_object_get(json_object_get(p, "config"), "min.insync.replicas")), "2");
    json_decref(p);
    p = ctl_topics_plan(m, json_array_get(topics, 1), "b2b.", 2);
    assert_int_equal(json_integer_value(json_object_get(p, "replication_factor")), 2); /* default 3, capped */
    json_decref(p);
    assert_null(ctl_topics_plan(m, json_array_get(topics, 2), "b2b.", 2));
    json_decref(m);
}

/* A name of 1,000 four-byte characters (the longest the contract allows) goes into the
 * command whole; a value longer than any allowed is the row's error, never cut. */
static void test_longest_values_whole(void **state)
{
    (void)state;
    char field[64], why[256];
    size_t n = 1000 * 4;
    char *name = malloc(n + 1);
    for (size_t i = 0; i < n; i += 4)
        memcpy(name + i, "\xf0\xa0\x80\x80", 4); /* U+20000 */
    name[n] = '\0';
    char *csv = malloc(2 * n + 64);
    snprintf(csv, 2 * n + 64, "email,first_name\na@example.com,%s\n", name);
    json_t *cmd = build(csv, &OPTS, field, why);
    assert_non_null(cmd);
    const char *got = json_string_value(json_object_get(json_object_get(json_object_get(cmd, "payload"),
                                                                        "customer"), "first_name"));
    assert_non_null(got);
    assert_string_equal(got, name);
    json_decref(cmd);
    /* one more character: over any limit of the contract, rejected with its column */
    snprintf(csv, 2 * n + 64, "email,first_name\na@example.com,%s\xf0\xa0\x80\x80\n", name);
    assert_null(build(csv, &OPTS, field, why));
    assert_string_equal(field, "first_name");
    assert_non_null(strstr(why, "longer"));
    free(csv);
    free(name);
}

/* topics apply without --manifest: ./topics/manifest.json, else the installed one, else
 * the source tree's. */
static void test_topics_manifest_search(void **state)
{
    (void)state;
    char dir[] = "/tmp/b2bd-manifest.XXXXXX", old[4096];
    assert_non_null(mkdtemp(dir));
    assert_non_null(getcwd(old, sizeof old));
    assert_int_equal(chdir(dir), 0);
    assert_string_equal(ctl_topics_manifest("mine.json"), "mine.json");
    const char *want = access(CTL_TOPICS_INSTALLED_MANIFEST, R_OK) == 0 ? CTL_TOPICS_INSTALLED_MANIFEST
                                                                        : CTL_TOPICS_SOURCE_MANIFEST;
    assert_string_equal(ctl_topics_manifest(NULL), want);
    assert_int_equal(mkdir("topics", 0700), 0);
    FILE *f = fopen("topics/manifest.json", "w");
    assert_non_null(f);
    fputs("{\"topics\": []}\n", f);
    fclose(f);
    assert_string_equal(ctl_topics_manifest(NULL), "topics/manifest.json");
    assert_int_equal(unlink("topics/manifest.json"), 0);
    assert_int_equal(rmdir("topics"), 0);
    assert_int_equal(chdir(old), 0);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid_v5_known_value),
        cmocka_unit_test(test_row_by_email_with_defaults),
        cmocka_unit_test(test_row_columns_override_defaults),
        cmocka_unit_test(test_row_errors),
        cmocka_unit_test(test_longest_values_whole),
        cmocka_unit_test(test_header_errors),
        cmocka_unit_test(test_ids_stable_and_distinct),
        cmocka_unit_test(test_default_import_id),
        cmocka_unit_test(test_jsonl),
        cmocka_unit_test(test_error_column),
        cmocka_unit_test(test_topics_plan_caps),
        cmocka_unit_test(test_topics_manifest_search),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
