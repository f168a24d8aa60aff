/* test_schema_examples: every command example in topics/schemas is accepted by the decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "b2bd/decode.h"

#ifndef B2BD_SOURCE_DIR
#define B2BD_SOURCE_DIR "."
#endif

static const char *const types[] = {"assign", "revoke", "migrate", "notify", "shop.upsert",
                                    "company.upsert", "customer.upsert", "order.upsert",
                                    "template.update", "customer.merge",
                                    "customer.data_request", "customer.redact", "shop.redact"};

static void test_examples_decode(void **state)
{
    (void)state;
    int checked = 0;
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        char path[512];
        snprintf(path, sizeof path, "%s/topics/schemas/command.%s.schema.json", B2BD_SOURCE_DIR,
                 types[t]);
        json_error_t je;
        json_t *schema = json_load_file(path, 0, &je);
        if (!schema)
            fail_msg("%s: %s", path, je.text);
        json_t *examples = json_object_get(schema, "examples");
        assert_true(json_array_size(examples) > 0);
        size_t i;
        json_t *ex;
        json_array_foreach(examples, i, ex) {
            char *text = json_dumps(ex, JSON_COMPACT);
            const char *type = json_string_value(json_object_get(ex, "type"));
            enum b2bd_topic topic = decode_type_topic(CMD_UNKNOWN);
            for (int c = 0; c < CMD_UNKNOWN; c++)
                if (type && strcmp(decode_type_name((enum b2bd_cmd_type)c), type) == 0)
                    topic = decode_type_topic((enum b2bd_cmd_type)c);
            struct b2bd_command cmd;
            struct b2bd_err err;
            enum decode_outcome o = decode_command(text, strlen(text), 1 << 20, topic, &cmd, &err);
            if (o != DECODE_OK)
                fail_msg("%s example %zu: %s %s %s", types[t], i, b2bd_code_name(err.code), err.field,
                         err.msg);
            assert_string_equal(decode_type_name(cmd.type), types[t]);
            decode_free(&cmd);
            free(text);
            checked++;
        }
        json_decref(schema);
    }
    assert_true(checked >= 13);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_examples_decode)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
