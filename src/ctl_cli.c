/* ctl_cli: b2bctl's command line from one table: parser, help and bash completion. */
#include "b2bd/ctl_cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

/* getopt_long's value for cmd->opts[i] given by its long name (above any char). */
#define LONG_VAL(i) (0x100 + (i))

static bool same_name(const struct ctl_cmd *c, const char *name)
{
    return name && !strcmp(c->name, name);
}

const struct ctl_cmd *ctl_cli_find(const struct ctl_cmd *table, size_t n, int argc, char **argv,
                                   bool *group)
{
    *group = false;
    if (argc < 1)
        return NULL;
    const struct ctl_cmd *bare = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!same_name(&table[i], argv[0]))
            continue;
        *group = true;
        if (!table[i].sub)
            bare = &table[i];
        else if (argc >= 2 && !strcmp(table[i].sub, argv[1]))
            return &table[i];
    }
    return bare;
}

static size_t n_opts(const struct ctl_cmd *cmd)
{
    size_t k = 0;
    while (k < CTL_MAX_OPTS && cmd->opts[k].name)
        k++;
    return k;
}

int ctl_cli_parse(const struct ctl_cmd *table, size_t n, const struct ctl_cmd *cmd, int argc,
                  char **argv, struct ctl_args *a)
{
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    if (cmd->sub) {  /* argv[0] is the command, argv[1] the subcommand: parse after it */
        argc--;
        argv++;
    }
    size_t k = n_opts(cmd);
    struct option lopts[CTL_MAX_OPTS + 2];
    char shorts[2 * CTL_MAX_OPTS + 4];
    size_t s = 0;
    for (size_t i = 0; i < k; i++) {
        lopts[i] = (struct option){cmd->opts[i].name, cmd->opts[i].arg ? required_argument : no_argument,
                                   NULL, LONG_VAL((int)i)};
        if (cmd->opts[i].short_name) {
            shorts[s++] = cmd->opts[i].short_name;
            if (cmd->opts[i].arg)
                shorts[s++] = ':';
        }
    }
    lopts[k] = (struct option){"help", no_argument, NULL, 'h'};
    lopts[k + 1] = (struct option){NULL, 0, NULL, 0};
    shorts[s++] = 'h';
    shorts[s] = '\0';
    int o;
    optind = 0;  /* glibc: start afresh (a test may parse several command lines) */
    while ((o = getopt_long(argc, argv, shorts, lopts, NULL)) != -1) {
        int i = -1;
        if (o >= LONG_VAL(0) && o < LONG_VAL((int)k))
            i = o - LONG_VAL(0);
        else if (o == 'h') {
            ctl_cli_help(table, n, cmd->name, stdout);
            return 0;
        } else if (o != '?' && o != ':')
            for (size_t j = 0; j < k; j++)
                if (cmd->opts[j].short_name == o)
                    i = (int)j;
        if (i < 0) {
            ctl_cli_help(table, n, cmd->name, stderr);
            return 2;
        }
        a->val[i] = cmd->opts[i].arg ? optarg : "";
    }
    a->operands = argv + optind;
    a->n_operands = argc - optind;
    if (a->n_operands != cmd->n_args) {
        ctl_cli_help(table, n, cmd->name, stderr);
        return 2;
    }
    return -1;
}

const char *ctl_opt(const struct ctl_args *a, const char *name)
{
    for (size_t i = 0; i < n_opts(a->cmd); i++)
        if (!strcmp(a->cmd->opts[i].name, name))
            return a->val[i];
    fprintf(stderr, "b2bctl: internal error: %s has no option --%s\n", a->cmd->name, name);
    abort();
}

bool ctl_flag(const struct ctl_args *a, const char *name)
{
    return ctl_opt(a, name) != NULL;
}

long ctl_opt_long(const struct ctl_args *a, const char *name, long dflt)
{
    const char *v = ctl_opt(a, name);
    return v ? strtol(v, NULL, 10) : dflt;
}

/* "usage: b2bctl dlq list [--max N] ... OPERANDS", wrapped before column 80. */
static void usage_line(const struct ctl_cmd *c, FILE *f)
{
    char head[96];
    snprintf(head, sizeof head, "usage: b2bctl %s%s%s", c->name, c->sub ? " " : "", c->sub ? c->sub : "");
    fputs(head, f);
    size_t col = strlen(head), indent = strlen("usage: b2bctl ") + strlen(c->name) + 1;
    char word[128];
    for (size_t i = 0; i <= n_opts(c); i++) {
        if (i < n_opts(c))
            snprintf(word, sizeof word, "[--%s%s%s]", c->opts[i].name, c->opts[i].arg ? " " : "",
                     c->opts[i].arg ? c->opts[i].arg : "");
        else if (c->args && *c->args)
            snprintf(word, sizeof word, "%s", c->args);
        else
            break;
        if (col + 1 + strlen(word) > 79) {
            fprintf(f, "\n%*s", (int)indent, "");
            col = indent;
        } else {
            fputc(' ', f);
            col++;
        }
        fputs(word, f);
        col += strlen(word);
    }
    fputc('\n', f);
}

static void option_line(const struct ctl_opt *o, FILE *f)
{
    char left[64];
    if (o->short_name)
        snprintf(left, sizeof left, "  -%c, --%s%s%s", o->short_name, o->name, o->arg ? " " : "",
                 o->arg ? o->arg : "");
    else
        snprintf(left, sizeof left, "      --%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
    if (strlen(left) < 26)
        fprintf(f, "%-26s%s\n", left, o->help);
    else
        fprintf(f, "%s\n%26s%s\n", left, "", o->help);
}

void ctl_cli_help(const struct ctl_cmd *table, size_t n, const char *name, FILE *f)
{
    int shown = 0;
    for (size_t i = 0; i < n; i++) {
        const struct ctl_cmd *c = &table[i];
        if (!same_name(c, name))
            continue;
        if (shown++)
            fputc('\n', f);
        usage_line(c, f);
        fputs(c->text, f);
        fputs("options:\n", f);
        for (size_t j = 0; j < n_opts(c); j++)
            option_line(&c->opts[j], f);
        option_line(&(struct ctl_opt){"help", 'h', NULL, "this help"}, f);
    }
}

void ctl_cli_commands(const struct ctl_cmd *table, size_t n, FILE *f)
{
    for (size_t i = 0; i < n; i++) {
        const struct ctl_cmd *c = &table[i];
        char left[96];
        snprintf(left, sizeof left, "%s%s%s%s%s", c->name, c->sub ? " " : "", c->sub ? c->sub : "",
                 c->args && *c->args ? " " : "", c->args ? c->args : "");
        fprintf(f, "  %-30s  %s\n", left, c->summary);
    }
}

/* ---- bash completion ---- */

/* The shell words of c's options: opts (the long names), args (those taking an argument
 * other than a file, long and short), fileargs (those taking a FILE), files (whether its
 * operands are files). */
static void opt_words(const struct ctl_cmd *c, FILE *f)
{
    fputs("opts='", f);
    for (size_t j = 0; j < n_opts(c); j++)
        fprintf(f, "--%s ", c->opts[j].name);
    fputs("--help'", f);
    for (int files = 0; files < 2; files++) {
        fputs(files ? "; fileargs='" : "; args='", f);
        const char *sep = "";
        for (size_t j = 0; j < n_opts(c); j++) {
            const struct ctl_opt *o = &c->opts[j];
            if (!o->arg || files != !strcmp(o->arg, "FILE"))
                continue;
            fprintf(f, "%s--%s", sep, o->name);
            if (o->short_name)
                fprintf(f, " -%c", o->short_name);
            sep = " ";
        }
        fputc('\'', f);
    }
    fprintf(f, "; files=%d", c->args && strstr(c->args, "FILE") ? 1 : 0);
}

void ctl_cli_bash_completion(const struct ctl_cmd *table, size_t n, const char *program,
                             const char *global_opts, FILE *f)
{
    fprintf(f,
            "# bash completion for %s: made from its command table by `%s completion bash`.\n"
            "_%s()\n"
            "{\n"
            "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n"
            "    local i=1 cmd key subs='' bare=0 opts='' args='' fileargs='' files=0\n"
            "    COMPREPLY=()\n"
            "    while [[ $i -lt $COMP_CWORD && ${COMP_WORDS[i]} == --config ]]; do\n"
            "        i=$((i + 2))\n"
            "    done\n"
            "    if [[ $prev == --config ]]; then\n"
            "        mapfile -t -O \"${#COMPREPLY[@]}\" COMPREPLY < <(compgen -f -- \"$cur\")\n"
            "        return\n"
            "    fi\n"
            "    if [[ $i -ge $COMP_CWORD ]]; then\n"
            "        if [[ $cur == -* ]]; then\n"
            "            mapfile -t -O \"${#COMPREPLY[@]}\" COMPREPLY < <(compgen -W '%s' -- \"$cur\")\n"
            "        else\n"
            "            mapfile -t -O \"${#COMPREPLY[@]}\" COMPREPLY < <(compgen -W '",
            program, program, program, global_opts);
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < i && strcmp(table[j].name, table[i].name))
            j++;
        if (j == i)
            fprintf(f, "%s%s", i ? " " : "", table[i].name);
    }
    fputs("' -- \"$cur\")\n"
          "        fi\n"
          "        return\n"
          "    fi\n"
          "    cmd=${COMP_WORDS[i]}\n"
          "    case $cmd in\n",
          f);
    /* each command with subcommands: their names, and whether it also runs without one */
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < i && strcmp(table[j].name, table[i].name))
            j++;
        if (j < i)
            continue;
        int bare = 0, any_sub = 0;
        for (size_t k = i; k < n; k++)
            if (!strcmp(table[k].name, table[i].name)) {
                bare |= !table[k].sub;
                any_sub |= table[k].sub != NULL;
            }
        if (!any_sub)
            continue;
        fprintf(f, "        %s) bare=%d; subs='", table[i].name, bare);
        for (size_t k = i, first = 1; k < n; k++)
            if (!strcmp(table[k].name, table[i].name) && table[k].sub) {
                fprintf(f, "%s%s", first ? "" : " ", table[k].sub);
                first = 0;
            }
        fputs("' ;;\n", f);
    }
    fputs("    esac\n"
          "    key=$cmd\n"
          "    if [[ -n $subs ]]; then\n"
          "        if [[ $((i + 1)) -eq $COMP_CWORD && ($bare == 0 || $cur != -*) ]]; then\n"
          "            mapfile -t -O \"${#COMPREPLY[@]}\" COMPREPLY < <(compgen -W \"$subs\" -- \"$cur\")\n"
          "            [[ $bare == 0 ]] && return\n"
          "        elif [[ \" $subs \" == *\" ${COMP_WORDS[i+1]} \"* ]]; then\n"
          "            key=\"$cmd ${COMP_WORDS[i+1]}\"\n"
          "        elif [[ $bare == 0 ]]; then\n"
          "            return\n"
          "        fi\n"
          "    fi\n"
          "    case $key in\n",
          f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "        '%s%s%s') ", table[i].name, table[i].sub ? " " : "", table[i].sub ? table[i].sub : "");
        opt_words(&table[i], f);
        fputs(" ;;\n", f);
    }
    fputs("        *) return ;;\n"
          "    esac\n"
          "    if [[ -n $fileargs && \" $fileargs \" == *\" $prev \"* ]]; then\n"
          "        mapfile -t -O \"${#COMPREPLY[@]}\" COMPREPLY < <(compgen -f -- \"$cur\")\n"
          "    elif [[ -n $args && \" $args \" == *\" $prev \"* ]]; then\n"
          "        return\n"
          "    elif [[ $cur == -* ]]; then\n"
          "        mapfile -t -O \"${#COMPREPLY[@]}\" COMPREPLY < <(compgen -W \"$opts\" -- \"$cur\")\n"
          "    elif [[ $files == 1 ]]; then\n"
          "        mapfile -t -O \"${#COMPREPLY[@]}\" COMPREPLY < <(compgen -f -- \"$cur\")\n"
          "    fi\n"
          "}\n",
          f);
    fprintf(f, "complete -F _%s %s\n", program, program);
}
