/* Unit tests of ctl_cli: the table-driven parser of b2bctl (options, operands, exit codes),
 * its help and the bash completion script made of the table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "b2bd/ctl_cli.h"

static int run_nothing(const struct b2bd_config *cfg, const struct ctl_args *a)
{
    (void)cfg;
    (void)a;
    return 0;
}

static const struct ctl_cmd table[] = {
    {"get", NULL, "SHOP CUSTOMER", 2, "get one", "Gets one.\n",
     {{"json", 'j', NULL, "JSON"}, {"timeout", 't', "S", "seconds"}, {"output", 'o', "FILE", "file"}},
     false, run_nothing},
    {"get", "all", "", 0, "get all", "Gets all.\n", {{"max", 'm', "N", "at most N"}}, false, run_nothing},
    {"q", "list", "", 0, "list", "Lists.\n", {{"all", 0, NULL, "all of them"}}, false, run_nothing},
    {"q", "drop", "ID", 1, "drop", "Drops.\n", {{"force", 0, NULL, "no question"}}, false, run_nothing},
};
#define N (sizeof table / sizeof *table)

/* Parses a command line given as words (NULL-terminated): returns ctl_cli_parse's code. */
static int parse(struct ctl_args *a, char *words[])
{
    int argc = 0;
    while (words[argc])
        argc++;
    bool group;
    const struct ctl_cmd *c = ctl_cli_find(table, N, argc, words, &group);
    assert_non_null(c);
    return ctl_cli_parse(table, N, c, argc, words, a);
}

static void test_options_and_operands_in_any_order(void **state)
{
    (void)state;
    struct ctl_args a;
    char *w1[] = {"get", "--timeout", "7", "shop-1", "--json", "cu-1", NULL};
    assert_int_equal(parse(&a, w1), -1);
    assert_string_equal(a.cmd->name, "get");
    assert_null(a.cmd->sub);
    assert_true(ctl_flag(&a, "json"));
    assert_int_equal(ctl_opt_long(&a, "timeout", 30), 7);
    assert_null(ctl_opt(&a, "output"));
    assert_int_equal(a.n_operands, 2);
    assert_string_equal(a.operands[0], "shop-1");
    assert_string_equal(a.operands[1], "cu-1");
    /* short forms, --opt=value, defaults */
    char *w2[] = {"get", "-o", "out.json", "--timeout=9", "s", "c", NULL};
    assert_int_equal(parse(&a, w2), -1);
    assert_false(ctl_flag(&a, "json"));
    assert_string_equal(ctl_opt(&a, "output"), "out.json");
    assert_int_equal(ctl_opt_long(&a, "timeout", 30), 9);
    char *w3[] = {"get", "s", "c", NULL};
    assert_int_equal(parse(&a, w3), -1);
    assert_int_equal(ctl_opt_long(&a, "timeout", 30), 30);
}

static void test_subcommands(void **state)
{
    (void)state;
    struct ctl_args a;
    char *w1[] = {"get", "all", "--max", "3", NULL};
    assert_int_equal(parse(&a, w1), -1);
    assert_string_equal(a.cmd->sub, "all");
    assert_int_equal(ctl_opt_long(&a, "max", -1), 3);
    assert_int_equal(a.n_operands, 0);
    char *w2[] = {"q", "drop", "--force", "id-1", NULL};
    assert_int_equal(parse(&a, w2), -1);
    assert_true(ctl_flag(&a, "force"));
    assert_string_equal(a.operands[0], "id-1");
    /* a command with subcommands only: none given, or an unknown one, finds nothing */
    bool group;
    char *w3[] = {"q", "nope", NULL};
    assert_null(ctl_cli_find(table, N, 2, w3, &group));
    assert_true(group);
    char *w4[] = {"zz", NULL};
    assert_null(ctl_cli_find(table, N, 1, w4, &group));
    assert_false(group);
    /* get: "all" is its subcommand, anything else an operand of get itself */
    char *w5[] = {"get", "shop", "cu", NULL};
    assert_int_equal(parse(&a, w5), -1);
    assert_null(a.cmd->sub);
}

static void test_usage_errors_exit_2_and_help_0(void **state)
{
    (void)state;
    struct ctl_args a;
    char *unknown[] = {"get", "--nope", "s", "c", NULL};
    assert_int_equal(parse(&a, unknown), 2);
    char *other_cmds_option[] = {"get", "--max", "3", "s", "c", NULL};
    assert_int_equal(parse(&a, other_cmds_option), 2);
    char *no_arg[] = {"get", "s", "c", "--timeout", NULL};
    assert_int_equal(parse(&a, no_arg), 2);
    char *too_few[] = {"get", "s", NULL};
    assert_int_equal(parse(&a, too_few), 2);
    char *too_many[] = {"q", "list", "x", NULL};
    assert_int_equal(parse(&a, too_many), 2);
    char *help[] = {"q", "drop", "--help", NULL};
    assert_int_equal(parse(&a, help), 0);
    char *h[] = {"get", "-h", NULL};
    assert_int_equal(parse(&a, h), 0);
}

/* The text f got, as a string the caller frees. */
static char *captured(void (*write)(FILE *))
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    write(f);
    fclose(f);
    return buf;
}

static void help_of_get(FILE *f)
{
    ctl_cli_help(table, N, "get", f);
}

static void completion(FILE *f)
{
    ctl_cli_bash_completion(table, N, "tool", "--config --help", f);
}

static void test_help_and_completion_from_the_table(void **state)
{
    (void)state;
    char *h = captured(help_of_get);
    assert_non_null(strstr(h, "usage: b2bctl get [--json] [--timeout S] [--output FILE] SHOP CUSTOMER\n"));
    assert_non_null(strstr(h, "usage: b2bctl get all [--max N]\n"));
    assert_non_null(strstr(h, "  -o, --output FILE       file\n"));
    assert_non_null(strstr(h, "Gets all.\n"));
    assert_null(strstr(h, "Drops"));
    free(h);
    char *c = captured(completion);
    assert_non_null(strstr(c, "compgen -W 'get q'"));
    assert_non_null(strstr(c, "        q) bare=0; subs='list drop' ;;\n"));
    assert_non_null(strstr(c, "        get) bare=1; subs='all' ;;\n"));
    assert_non_null(strstr(c, "'get') opts='--json --timeout --output --help'; args='--timeout -t'; "
                              "fileargs='--output -o'; files=0 ;;\n"));
    assert_non_null(strstr(c, "'q drop') opts='--force --help'"));
    assert_non_null(strstr(c, "complete -F _tool tool\n"));
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_and_operands_in_any_order),
        cmocka_unit_test(test_subcommands),
        cmocka_unit_test(test_usage_errors_exit_2_and_help_0),
        cmocka_unit_test(test_help_and_completion_from_the_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
