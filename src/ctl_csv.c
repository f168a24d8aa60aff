/* ctl_csv: a small RFC 4180 CSV reader and writer for b2bctl import (UTF-8, CRLF or LF). */
#include "b2bd/ctl_csv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ctl_csv_init(struct ctl_csv *r, const char *data, size_t len)
{
    r->p = data;
    r->end = data + len;
    r->line = 1;
    if (len >= 3 && !memcmp(data, "\xEF\xBB\xBF", 3))
        r->p += 3;
}

static void record_clear(struct ctl_csv_record *rec)
{
    for (size_t i = 0; i < rec->n; i++)
        free(rec->fields[i]);
    rec->n = 0;
}

void ctl_csv_record_free(struct ctl_csv_record *rec)
{
    record_clear(rec);
    free(rec->fields);
    rec->fields = NULL;
    rec->cap = 0;
}

static void record_push(struct ctl_csv_record *rec, struct sbuf *f)
{
    if (rec->n == rec->cap) {
        rec->cap = rec->cap ? rec->cap * 2 : 8;
        rec->fields = realloc(rec->fields, rec->cap * sizeof *rec->fields);
        if (!rec->fields)
            abort();
    }
    rec->fields[rec->n++] = f->s ? f->s : strdup("");
    if (!rec->fields[rec->n - 1])
        abort();
    f->s = NULL;
    f->len = f->cap = 0;
}

/* Skips to just after the end of the current physical line. */
static void csv_skip_line(struct ctl_csv *r)
{
    while (r->p < r->end && *r->p != '\n')
        r->p++;
    if (r->p < r->end) {
        r->p++;
        r->line++;
    }
}

static int csv_fail(struct ctl_csv *r, struct sbuf *f, char *why, size_t why_len, const char *msg)
{
    snprintf(why, why_len, "%s", msg);
    sbuf_free(f);
    csv_skip_line(r);
    return -1;
}

int ctl_csv_next(struct ctl_csv *r, struct ctl_csv_record *rec, char *why, size_t why_len)
{
    record_clear(rec);
    /* blank lines (LF or CRLF alone) carry no record */
    for (;;) {
        if (r->p >= r->end)
            return 0;
        if (*r->p == '\n') {
            r->p++;
            r->line++;
        } else if (*r->p == '\r' && r->p + 1 < r->end && r->p[1] == '\n') {
            r->p += 2;
            r->line++;
        } else {
            break;
        }
    }
    rec->line = r->line;
    struct sbuf f = {0};
    sbuf_add(&f, "", 0);
    for (;;) {
        /* one field */
        if (r->p < r->end && *r->p == '"') {
            r->p++;
            for (;;) {
                if (r->p >= r->end)
                    return csv_fail(r, &f, why, why_len, "a quoted field is not closed");
                char c = *r->p++;
                if (c == '"') {
                    if (r->p < r->end && *r->p == '"') {
                        sbuf_add(&f, "\"", 1);
                        r->p++;
                        continue;
                    }
                    break;
                }
                if (c == '\0')
                    return csv_fail(r, &f, why, why_len, "a NUL byte");
                if (c == '\n')
                    r->line++;
                sbuf_add(&f, &c, 1);
            }
            if (r->p < r->end && *r->p != ',' && *r->p != '\n'
                && !(*r->p == '\r' && r->p + 1 < r->end && r->p[1] == '\n')
                && !(*r->p == '\r' && r->p + 1 == r->end))
                return csv_fail(r, &f, why, why_len, "text after a closing quote");
        } else {
            while (r->p < r->end && *r->p != ',' && *r->p != '\n'
                   && !(*r->p == '\r' && (r->p + 1 == r->end || r->p[1] == '\n'))) {
                if (*r->p == '"')
                    return csv_fail(r, &f, why, why_len, "a quote inside an unquoted field");
                if (*r->p == '\0')
                    return csv_fail(r, &f, why, why_len, "a NUL byte");
                sbuf_add(&f, r->p, 1);
                r->p++;
            }
        }
        record_push(rec, &f);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            sbuf_add(&f, "", 0);
            continue;
        }
        /* end of record: CRLF, LF, a lone CR at the end, or the end of data */
        if (r->p < r->end && *r->p == '\r')
            r->p++;
        if (r->p < r->end && *r->p == '\n') {
            r->p++;
            r->line++;
        }
        return 1;
    }
}

void ctl_csv_quote(struct sbuf *b, const char *s)
{
    size_t n = strlen(s);
    int need = n && (s[0] == ' ' || s[n - 1] == ' ');
    for (const char *c = s; *c && !need; c++)
        need = *c == ',' || *c == '"' || *c == '\r' || *c == '\n';
    if (!need) {
        sbuf_add(b, s, n);
        return;
    }
    sbuf_add(b, "\"", 1);
    for (const char *c = s; *c; c++) {
        if (*c == '"')
            sbuf_add(b, "\"", 1);
        sbuf_add(b, c, 1);
    }
    sbuf_add(b, "\"", 1);
}

bool ctl_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *e = p + len;
    while (p < e) {
        unsigned c = *p;
        size_t n;
        unsigned cp;
        if (c < 0x80) {
            p++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if ((size_t)(e - p) <= n)
            return false;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF))
            || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        p += n + 1;
    }
    return true;
}
