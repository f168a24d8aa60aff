/* email: the B2B access email's templates: load the default, parse a shop's, render. */
#ifndef B2BD_EMAIL_H
#define B2BD_EMAIL_H

#include <jansson.h>

#include "b2bd/err.h"

/* Largest rendered part, in bytes. */
#define EMAIL_MAX_PART (1024 * 1024)

/* A parsed template: subject, text and HTML parts (Mustache), and its version
 * (0: the default shipped in config/templates/). */
struct email_template {
    struct mustache *subject, *text, *html;
    int version;
};

/* Parses the three parts. On a part that does not parse, returns B2BD_INVALID with
 * err->field "payload.subject", "payload.text" or "payload.html" and the line and
 * column in the message. */
enum b2bd_code email_template_parse(const char *subject, const char *text, const char *html,
                                    int version, struct email_template *out,
                                    struct b2bd_err *err);

/* Reads and parses the default template: dir/b2b-access.{subject,text,html}.mustache. */
int email_template_load(const char *dir, struct email_template *out, struct b2bd_err *err);

void email_template_free(struct email_template *t);

struct email_rendered {
    char *subject; /* values as they are (the sender drops CR/LF from the header) */
    char *text;    /* values as they are */
    char *html;    /* {{name}} HTML-escaped */
};

/* Renders the three parts with ctx. Returns 0, or -1 when a part exceeds
 * EMAIL_MAX_PART (or memory runs out). Free with email_rendered_free. */
int email_render(const struct email_template *t, const json_t *ctx, struct email_rendered *out);
void email_rendered_free(struct email_rendered *r);

#endif
