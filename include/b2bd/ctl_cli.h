/* ctl_cli: b2bctl's command line from one table of commands: the option parser, the
 * help texts and the bash completion script are all made from it. */
#ifndef B2BD_CTL_CLI_H
#define B2BD_CTL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "b2bd/config.h"

/* The most options a command may have (besides --help, which every command takes). */
#define CTL_MAX_OPTS 12

struct ctl_opt {
    const char *name;  /* long name, without "--" */
    char short_name;   /* -x, or 0 */
    const char *arg;   /* the argument's name in the help ("S", "FILE"), NULL for a flag */
    const char *help;  /* one line */
};

struct ctl_args;

struct ctl_cmd {
    const char *name;     /* "dlq" */
    const char *sub;      /* "list", or NULL for a command without subcommand */
    const char *args;     /* its operands in the help ("SHOP CUSTOMER"; FILE: completed as files) */
    int n_args;           /* how many operands it takes */
    const char *summary;  /* one line for b2bctl --help */
    const char *text;     /* the rest of its help, lines ending in \n */
    struct ctl_opt opts[CTL_MAX_OPTS + 1];  /* ending with {NULL} */
    bool no_config;       /* runs without loading the settings */
    int (*run)(const struct b2bd_config *cfg, const struct ctl_args *a);
};

/* A command's parsed command line. */
struct ctl_args {
    const struct ctl_cmd *cmd;
    const char *val[CTL_MAX_OPTS];  /* per cmd->opts[i]: its argument, "" for a flag given, or NULL */
    char **operands;
    int n_operands;
};

/* The entry of table for argv (argv[0] the command's name, argv[1] its subcommand when
 * it has some), or NULL. *group is set when argv[0] names a command at all. */
const struct ctl_cmd *ctl_cli_find(const struct ctl_cmd *table, size_t n, int argc, char **argv,
                                   bool *group);

/* Parses the options and operands of cmd (argv as for ctl_cli_find) into a, with
 * getopt_long (options and operands in any order). Returns -1 to go on, else the exit
 * code: 0 after printing the help (--help, -h), 2 after printing it to stderr (an
 * unknown option, a missing argument, a wrong number of operands). */
int ctl_cli_parse(const struct ctl_cmd *table, size_t n, const struct ctl_cmd *cmd, int argc,
                  char **argv, struct ctl_args *a);

/* An option's value (its argument, "" for a flag given) or NULL when not given. name
 * must be one of the command's options (aborts otherwise: a typo in the program). */
const char *ctl_opt(const struct ctl_args *a, const char *name);
bool ctl_flag(const struct ctl_args *a, const char *name);
/* An option's argument as a number (strtol), or dflt when not given. */
long ctl_opt_long(const struct ctl_args *a, const char *name, long dflt);

/* The help of every entry named name ("dlq": dlq list and dlq replay), to f. */
void ctl_cli_help(const struct ctl_cmd *table, size_t n, const char *name, FILE *f);

/* The table's lines of b2bctl --help: "  NAME [SUB] OPERANDS   summary". */
void ctl_cli_commands(const struct ctl_cmd *table, size_t n, FILE *f);

/* A bash completion script for program: its commands, subcommands and each one's options;
 * files for FILE operands and arguments. */
void ctl_cli_bash_completion(const struct ctl_cmd *table, size_t n, const char *program,
                             const char *global_opts, FILE *f);

#endif
