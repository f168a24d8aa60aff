/* email: the B2B access email's templates: load the default, parse a shop's, render. */
#include "b2bd/email.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b2bd/mustache.h"

static enum b2bd_code parse_part(const char *src, const char *field, struct mustache **out,
                                 struct b2bd_err *err)
{
    struct mustache_error me = {0};
    *out = mustache_parse(src, strlen(src), &me);
    if (*out)
        return B2BD_OK;
    return b2bd_err_set(err, B2BD_INVALID, field, "the template does not parse: line %d, column %d: %s",
                        me.line, me.column, me.message);
}

enum b2bd_code email_template_parse(const char *subject, const char *text, const char *html,
                                    int version, struct email_template *out,
                                    struct b2bd_err *err)
{
    memset(out, 0, sizeof *out);
    out->version = version;
    enum b2bd_code code = parse_part(subject, "payload.subject", &out->subject, err);
    if (code == B2BD_OK)
        code = parse_part(text, "payload.text", &out->text, err);
    if (code == B2BD_OK)
        code = parse_part(html, "payload.html", &out->html, err);
    if (code != B2BD_OK)
        email_template_free(out);
    return code;
}

static char *read_file(const char *dir, const char *name, struct b2bd_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        b2bd_err_set(err, B2BD_ERR_IO, "templates_dir", "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, len = 0, n;
    char *buf = malloc(cap);
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap) {
            char *more = cap < EMAIL_MAX_PART ? realloc(buf, cap * 2) : NULL;
            if (!more) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = more;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        b2bd_err_set(err, B2BD_ERR_IO, "templates_dir", "%s is too large", path);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

int email_template_load(const char *dir, struct email_template *out, struct b2bd_err *err)
{
    char *s = read_file(dir, "b2b-access.subject.mustache", err);
    char *t = s ? read_file(dir, "b2b-access.text.mustache", err) : NULL;
    char *h = t ? read_file(dir, "b2b-access.html.mustache", err) : NULL;
    int rc = -1;
    if (h) {
        /* the subject file ends with a newline that is not part of the subject */
        s[strcspn(s, "\r\n")] = '\0';
        rc = email_template_parse(s, t, h, 0, out, err) == B2BD_OK ? 0 : -1;
        if (rc < 0)
            err->field[0] = '\0';
    }
    free(s);
    free(t);
    free(h);
    return rc;
}

void email_template_free(struct email_template *t)
{
    mustache_free(t->subject);
    mustache_free(t->text);
    mustache_free(t->html);
    t->subject = t->text = t->html = NULL;
}

int email_render(const struct email_template *t, const json_t *ctx, struct email_rendered *out)
{
    out->subject = mustache_render(t->subject, ctx, MUSTACHE_NONE, EMAIL_MAX_PART);
    out->text = mustache_render(t->text, ctx, MUSTACHE_NONE, EMAIL_MAX_PART);
    out->html = mustache_render(t->html, ctx, MUSTACHE_HTML, EMAIL_MAX_PART);
    if (out->subject && out->text && out->html)
        return 0;
    email_rendered_free(out);
    return -1;
}

void email_rendered_free(struct email_rendered *r)
{
    free(r->subject);
    free(r->text);
    free(r->html);
    r->subject = r->text = r->html = NULL;
}
