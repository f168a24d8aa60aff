/* mustache: parses Mustache templates into a flat node list and renders them over jansson values, total on any input. */
#include "b2bd/mustache.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum node_kind { NODE_TEXT, NODE_VAR, NODE_SECTION, NODE_INVERTED };

struct node {
    enum node_kind kind;
    bool raw;      /* NODE_VAR: never escaped ({{{ }}} or {{& }}) */
    size_t off;    /* NODE_TEXT: into src; otherwise into names */
    size_t len;    /* NODE_TEXT: bytes of text */
    size_t nparts; /* name parts, each NUL-terminated in names; 0 for "." */
    size_t end;    /* sections: index of the first node after the section's content */
};

struct mustache {
    char *src; /* a copy of the template; text nodes point into it */
    char *names;
    size_t names_len, names_cap;
    struct node *nodes;
    size_t nnodes, nodes_cap;
};

/* ---------------------------------------------------------------- parsing */

enum tag_kind { TAG_VAR, TAG_RAW, TAG_SECTION, TAG_INVERTED, TAG_CLOSE, TAG_COMMENT, TAG_DELIM };

struct open_section {
    size_t node;     /* index of the section node */
    size_t name_off; /* trimmed name in the template */
    size_t name_len;
    size_t tag_pos; /* offset of the opening delimiter */
};

struct parser {
    const char *s;
    size_t n;
    char otag[MUSTACHE_MAX_DELIM + 1];
    char ctag[MUSTACHE_MAX_DELIM + 1];
    size_t olen, clen;
    struct mustache *t;
    struct mustache_error *err;
    struct open_section open[MUSTACHE_MAX_DEPTH];
    size_t depth;
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Copies at most max bytes of s into out as printable ASCII ('?' for anything else). */
static void printable(char *out, size_t outsz, const char *s, size_t len)
{
    size_t max = outsz - 1;
    size_t i = 0;
    for (; i < len && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    out[i] = '\0';
}

static void position(const char *s, size_t pos, int *line, int *column)
{
    long l = 1, c = 1;
    for (size_t i = 0; i < pos; i++) {
        if (s[i] == '\n') {
            if (l < INT32_MAX)
                l++;
            c = 1;
        } else if (c < INT32_MAX) {
            c++;
        }
    }
    *line = (int)l;
    *column = (int)c;
}

static bool fail(struct parser *p, size_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static bool fail(struct parser *p, size_t pos, const char *fmt, ...)
{
    if (p->err) {
        va_list ap;
        position(p->s, pos, &p->err->line, &p->err->column);
        va_start(ap, fmt);
        vsnprintf(p->err->message, sizeof p->err->message, fmt, ap);
        va_end(ap);
    }
    return false;
}

static bool oom(struct parser *p)
{
    if (p->err) {
        p->err->line = 0;
        p->err->column = 0;
        snprintf(p->err->message, sizeof p->err->message, "out of memory");
    }
    return false;
}

static bool grow(void **buf, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem)
            return false;
        c *= 2;
    }
    void *nb = realloc(*buf, c * elem);
    if (!nb)
        return false;
    *buf = nb;
    *cap = c;
    return true;
}

static struct node *add_node(struct parser *p, enum node_kind kind)
{
    struct mustache *t = p->t;
    void *buf = t->nodes;
    if (!grow(&buf, &t->nodes_cap, t->nnodes + 1, sizeof *t->nodes)) {
        oom(p);
        return NULL;
    }
    t->nodes = buf;
    struct node *nd = &t->nodes[t->nnodes++];
    memset(nd, 0, sizeof *nd);
    nd->kind = kind;
    return nd;
}

static bool add_text(struct parser *p, size_t from, size_t to)
{
    if (to <= from)
        return true;
    struct node *nd = add_node(p, NODE_TEXT);
    if (!nd)
        return false;
    nd->off = from;
    nd->len = to - from;
    return true;
}

/* Trims the tag content [*from, *to) of whitespace. */
static void trim(const char *s, size_t *from, size_t *to)
{
    while (*from < *to && is_space(s[*from]))
        (*from)++;
    while (*to > *from && is_space(s[*to - 1]))
        (*to)--;
}

/* Checks the trimmed name s[from, to) and stores it into nd (parts split at '.'). */
static bool set_name(struct parser *p, struct node *nd, size_t tag_pos, size_t from, size_t to)
{
    char shown[48];
    size_t len = to - from;
    const char *name = p->s + from;
    printable(shown, sizeof shown, name, len);
    if (len == 0)
        return fail(p, tag_pos, "empty tag name");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c <= 0x20 || c == 0x7f)
            return fail(p, tag_pos, "tag name \"%s\" contains whitespace or a control character", shown);
    }
    if (len == 1 && name[0] == '.') {
        nd->nparts = 0;
        return true;
    }
    if (name[0] == '.' || name[len - 1] == '.' || memmem(name, len, "..", 2))
        return fail(p, tag_pos, "tag name \"%s\" has an empty dotted part", shown);
    struct mustache *t = p->t;
    void *buf = t->names;
    if (!grow(&buf, &t->names_cap, t->names_len + len + 1, 1))
        return oom(p);
    t->names = buf;
    nd->off = t->names_len;
    nd->nparts = 1;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c == '.') {
            c = '\0';
            nd->nparts++;
        }
        t->names[t->names_len++] = c;
    }
    t->names[t->names_len++] = '\0';
    return true;
}

/* {{=a b=}}: the content s[from, to) between '=' and '='. */
static bool set_delimiters(struct parser *p, size_t tag_pos, size_t from, size_t to)
{
    const char *s = p->s;
    size_t a0, a1, b0, b1;
    trim(s, &from, &to);
    a0 = from;
    a1 = a0;
    while (a1 < to && !is_space(s[a1]))
        a1++;
    b0 = a1;
    while (b0 < to && is_space(s[b0]))
        b0++;
    b1 = b0;
    while (b1 < to && !is_space(s[b1]))
        b1++;
    if (a1 == a0 || b1 == b0 || b1 != to)
        return fail(p, tag_pos, "set-delimiter tag needs two delimiters separated by whitespace");
    if (a1 - a0 > MUSTACHE_MAX_DELIM || b1 - b0 > MUSTACHE_MAX_DELIM)
        return fail(p, tag_pos, "delimiter longer than %d bytes", MUSTACHE_MAX_DELIM);
    if (memchr(s + a0, '=', a1 - a0) || memchr(s + b0, '=', b1 - b0))
        return fail(p, tag_pos, "delimiter contains '='");
    for (size_t i = a0; i < b1; i++) {
        if (s[i] == '\0')
            return fail(p, tag_pos, "delimiter contains a NUL byte");
    }
    memcpy(p->otag, s + a0, a1 - a0);
    p->olen = a1 - a0;
    p->otag[p->olen] = '\0';
    memcpy(p->ctag, s + b0, b1 - b0);
    p->clen = b1 - b0;
    p->ctag[p->clen] = '\0';
    return true;
}

static bool parse(struct parser *p)
{
    const char *s = p->s;
    size_t n = p->n;
    size_t pos = 0;        /* where to look for the next tag */
    size_t text_start = 0; /* start of literal text not yet emitted */

    for (;;) {
        const char *o = pos < n ? memmem(s + pos, n - pos, p->otag, p->olen) : NULL;
        if (!o)
            break;
        size_t tag_pos = (size_t)(o - s);
        size_t c = tag_pos + p->olen; /* first byte after the opening delimiter */
        if (c >= n)
            return fail(p, tag_pos, "unclosed tag");

        enum tag_kind kind;
        char term[MUSTACHE_MAX_DELIM + 2];
        size_t tlen = p->clen;
        memcpy(term, p->ctag, p->clen);
        switch (s[c]) {
        case '{':
            kind = TAG_RAW;
            term[0] = '}';
            memcpy(term + 1, p->ctag, p->clen);
            tlen = p->clen + 1;
            c++;
            break;
        case '&':
            kind = TAG_RAW;
            c++;
            break;
        case '#':
            kind = TAG_SECTION;
            c++;
            break;
        case '^':
            kind = TAG_INVERTED;
            c++;
            break;
        case '/':
            kind = TAG_CLOSE;
            c++;
            break;
        case '!':
            kind = TAG_COMMENT;
            c++;
            break;
        case '=':
            kind = TAG_DELIM;
            term[0] = '=';
            memcpy(term + 1, p->ctag, p->clen);
            tlen = p->clen + 1;
            c++;
            break;
        case '>':
            return fail(p, tag_pos, "partials are not supported");
        case '<':
        case '$':
            return fail(p, tag_pos, "template inheritance is not supported");
        default:
            kind = TAG_VAR;
            break;
        }
        const char *q = c < n ? memmem(s + c, n - c, term, tlen) : NULL;
        if (!q) {
            if (kind == TAG_RAW && term[0] == '}')
                return fail(p, tag_pos, "unclosed tag (a triple mustache ends with '}' and the closing delimiter)");
            if (kind == TAG_DELIM)
                return fail(p, tag_pos, "unclosed set-delimiter tag (it ends with '=' and the closing delimiter)");
            return fail(p, tag_pos, "unclosed tag");
        }
        size_t cend = (size_t)(q - s);
        size_t tag_end = cend + tlen;

        /* Standalone: only spaces and tabs around the tag on its line. */
        size_t text_end = tag_pos;
        size_t next = tag_end;
        if (kind != TAG_VAR && kind != TAG_RAW) {
            size_t b = tag_pos;
            while (b > text_start && is_blank(s[b - 1]))
                b--;
            if (b == 0 || s[b - 1] == '\n') {
                size_t a = tag_end;
                while (a < n && is_blank(s[a]))
                    a++;
                size_t line_end = SIZE_MAX;
                if (a == n)
                    line_end = n;
                else if (s[a] == '\n')
                    line_end = a + 1;
                else if (s[a] == '\r' && a + 1 < n && s[a + 1] == '\n')
                    line_end = a + 2;
                if (line_end != SIZE_MAX) {
                    text_end = b;
                    next = line_end;
                }
            }
        }
        if (!add_text(p, text_start, text_end))
            return false;
        text_start = pos = next;

        size_t from = c, to = cend;
        if (kind != TAG_COMMENT && kind != TAG_DELIM)
            trim(s, &from, &to);
        struct node *nd;
        switch (kind) {
        case TAG_VAR:
        case TAG_RAW:
            nd = add_node(p, NODE_VAR);
            if (!nd)
                return false;
            nd->raw = kind == TAG_RAW;
            if (!set_name(p, nd, tag_pos, from, to))
                return false;
            break;
        case TAG_SECTION:
        case TAG_INVERTED:
            if (p->depth >= MUSTACHE_MAX_DEPTH)
                return fail(p, tag_pos, "sections nested too deep (more than %d)", MUSTACHE_MAX_DEPTH);
            nd = add_node(p, kind == TAG_SECTION ? NODE_SECTION : NODE_INVERTED);
            if (!nd)
                return false;
            if (!set_name(p, nd, tag_pos, from, to))
                return false;
            p->open[p->depth].node = p->t->nnodes - 1;
            p->open[p->depth].name_off = from;
            p->open[p->depth].name_len = to - from;
            p->open[p->depth].tag_pos = tag_pos;
            p->depth++;
            break;
        case TAG_CLOSE: {
            char shown[48];
            printable(shown, sizeof shown, s + from, to - from);
            if (p->depth == 0)
                return fail(p, tag_pos, "closing tag \"%s\" without an open section", shown);
            const struct open_section *os = &p->open[p->depth - 1];
            if (os->name_len != to - from || memcmp(s + os->name_off, s + from, to - from) != 0) {
                char want[48];
                int line, column;
                printable(want, sizeof want, s + os->name_off, os->name_len);
                position(s, os->tag_pos, &line, &column);
                return fail(p, tag_pos, "closing tag \"%s\" does not match section \"%s\" opened at %d:%d", shown,
                            want, line, column);
            }
            p->t->nodes[os->node].end = p->t->nnodes;
            p->depth--;
            break;
        }
        case TAG_COMMENT:
            break;
        case TAG_DELIM:
            if (!set_delimiters(p, tag_pos, from, to))
                return false;
            break;
        }
    }
    if (!add_text(p, text_start, n))
        return false;
    if (p->depth > 0) {
        const struct open_section *os = &p->open[p->depth - 1];
        char shown[48];
        printable(shown, sizeof shown, s + os->name_off, os->name_len);
        return fail(p, os->tag_pos, "unclosed section \"%s\"", shown);
    }
    return true;
}

void mustache_free(struct mustache *t)
{
    if (!t)
        return;
    free(t->src);
    free(t->names);
    free(t->nodes);
    free(t);
}

struct mustache *mustache_parse(const char *tmpl, size_t len, struct mustache_error *err)
{
    struct parser *p = calloc(1, sizeof *p);
    struct mustache *t = calloc(1, sizeof *t);
    if (err)
        memset(err, 0, sizeof *err);
    if (!p || !t || !(t->src = malloc(len ? len : 1))) {
        free(p);
        mustache_free(t);
        if (err)
            snprintf(err->message, sizeof err->message, "out of memory");
        return NULL;
    }
    if (len)
        memcpy(t->src, tmpl, len);
    p->s = t->src;
    p->n = len;
    memcpy(p->otag, "{{", 3);
    memcpy(p->ctag, "}}", 3);
    p->olen = p->clen = 2;
    p->t = t;
    p->err = err;
    bool ok = parse(p);
    free(p);
    if (!ok) {
        mustache_free(t);
        return NULL;
    }
    return t;
}

/* ---------------------------------------------------------------- rendering */

struct out {
    char *buf;
    size_t len, cap, max;
};

struct render {
    const struct mustache *t;
    enum mustache_escape escape;
    struct out out;
    const json_t *stack[MUSTACHE_MAX_DEPTH + 1];
    size_t depth;
    unsigned long long steps;
};

static bool put(struct out *o, const char *s, size_t n)
{
    if (n == 0)
        return true;
    if (n > o->max - o->len)
        return false;
    if (o->len + n + 1 > o->cap) {
        size_t c = o->cap ? o->cap : 256;
        while (c < o->len + n + 1)
            c = c > SIZE_MAX / 2 ? SIZE_MAX : c * 2;
        if (c > o->max + 1)
            c = o->max + 1;
        char *nb = realloc(o->buf, c);
        if (!nb)
            return false;
        o->buf = nb;
        o->cap = c;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    return true;
}

static bool spend(struct render *r, unsigned long long n)
{
    if (n > MUSTACHE_MAX_STEPS - r->steps)
        return false;
    r->steps += n;
    return true;
}

/* The value a name resolves to, or NULL when it does not resolve. */
static bool lookup(struct render *r, const struct node *nd, const json_t **out)
{
    *out = NULL;
    if (nd->nparts == 0) {
        *out = r->stack[r->depth - 1];
        return spend(r, 1);
    }
    const char *part = r->t->names + nd->off;
    const json_t *v = NULL;
    for (size_t i = r->depth; i-- > 0;) {
        if (!spend(r, 1))
            return false;
        if (json_is_object(r->stack[i]) && (v = json_object_get(r->stack[i], part)) != NULL)
            break;
    }
    for (size_t k = 1; k < nd->nparts && v; k++) {
        if (!spend(r, 1))
            return false;
        part += strlen(part) + 1;
        v = json_is_object(v) ? json_object_get(v, part) : NULL;
    }
    *out = v;
    return true;
}

static bool truthy(const json_t *v)
{
    if (!v || json_is_false(v) || json_is_null(v))
        return false;
    if (json_is_array(v))
        return json_array_size(v) > 0;
    return true;
}

static bool put_escaped(struct out *o, const char *s, size_t n, bool html)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep = NULL;
        switch (s[i]) {
        case '\0':
            rep = "";
            break;
        case '&':
            rep = html ? "&amp;" : NULL;
            break;
        case '<':
            rep = html ? "&lt;" : NULL;
            break;
        case '>':
            rep = html ? "&gt;" : NULL;
            break;
        case '"':
            rep = html ? "&quot;" : NULL;
            break;
        case '\'':
            rep = html ? "&#39;" : NULL;
            break;
        default:
            break;
        }
        if (!rep)
            continue;
        if (!put(o, s + run, i - run) || !put(o, rep, strlen(rep)))
            return false;
        run = i + 1;
    }
    return put(o, s + run, n - run);
}

static bool put_value(struct render *r, const json_t *v, bool raw)
{
    char buf[64];
    const char *s = NULL;
    size_t n = 0;
    if (!v)
        return true;
    switch (json_typeof(v)) {
    case JSON_STRING:
        s = json_string_value(v);
        n = json_string_length(v);
        break;
    case JSON_INTEGER:
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        s = buf;
        n = strlen(buf);
        break;
    case JSON_REAL: {
        double d = json_real_value(v);
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, d);
            if (strtod(buf, NULL) == d)
                break;
        }
        s = buf;
        n = strlen(buf);
        break;
    }
    case JSON_TRUE:
        s = "true";
        n = 4;
        break;
    case JSON_FALSE:
        s = "false";
        n = 5;
        break;
    case JSON_NULL:
    case JSON_OBJECT:
    case JSON_ARRAY:
        return true;
    }
    return put_escaped(&r->out, s, n, !raw && r->escape == MUSTACHE_HTML);
}

static bool render_nodes(struct render *r, size_t from, size_t to)
{
    const struct node *nodes = r->t->nodes;
    size_t i = from;
    while (i < to) {
        const struct node *nd = &nodes[i];
        const json_t *v;
        if (!spend(r, 1))
            return false;
        switch (nd->kind) {
        case NODE_TEXT:
            if (!put(&r->out, r->t->src + nd->off, nd->len))
                return false;
            i++;
            break;
        case NODE_VAR:
            if (!lookup(r, nd, &v) || !put_value(r, v, nd->raw))
                return false;
            i++;
            break;
        case NODE_SECTION:
            if (!lookup(r, nd, &v))
                return false;
            /* depth <= MUSTACHE_MAX_DEPTH here: sections nest at most that deep. */
            if (json_is_array(v)) {
                size_t count = json_array_size(v);
                for (size_t k = 0; k < count; k++) {
                    r->stack[r->depth++] = json_array_get(v, k);
                    bool ok = render_nodes(r, i + 1, nd->end);
                    r->depth--;
                    if (!ok)
                        return false;
                }
            } else if (truthy(v)) {
                r->stack[r->depth++] = v;
                bool ok = render_nodes(r, i + 1, nd->end);
                r->depth--;
                if (!ok)
                    return false;
            }
            i = nd->end;
            break;
        case NODE_INVERTED:
            if (!lookup(r, nd, &v))
                return false;
            if (!truthy(v) && !render_nodes(r, i + 1, nd->end))
                return false;
            i = nd->end;
            break;
        }
    }
    return true;
}

char *mustache_render(const struct mustache *t, const json_t *ctx, enum mustache_escape escape, size_t max_out)
{
    struct render *r = calloc(1, sizeof *r);
    json_t *empty = NULL;
    if (!r)
        return NULL;
    if (!ctx) {
        empty = json_object();
        if (!empty) {
            free(r);
            return NULL;
        }
        ctx = empty;
    }
    r->t = t;
    r->escape = escape;
    r->out.max = max_out < SIZE_MAX ? max_out : SIZE_MAX - 1;
    r->stack[0] = ctx;
    r->depth = 1;
    bool ok = render_nodes(r, 0, t->nnodes);
    char *res = NULL;
    if (ok) {
        if (!r->out.buf)
            r->out.buf = malloc(1);
        res = r->out.buf;
        if (res)
            res[r->out.len] = '\0';
    } else {
        free(r->out.buf);
    }
    json_decref(empty);
    free(r);
    return res;
}
