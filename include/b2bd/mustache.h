/* mustache: a small, total Mustache renderer (spec v1.x: interpolation, sections, inverted, comments, delimiters) over jansson values. */
#ifndef B2BD_MUSTACHE_H
#define B2BD_MUSTACHE_H

#include <stddef.h>

#include <jansson.h>

/*
 * What is supported, and the choices made where the spec leaves room:
 *
 *  - {{name}}, {{{name}}}, {{& name}}, {{#name}}...{{/name}}, {{^name}}...{{/name}},
 *    {{! comment }}, {{=<% %>=}}. Partials ({{> }}), parents ({{< }}), blocks ({{$ }})
 *    and lambdas are not supported: their tags are parse errors.
 *  - Names: "." is the top of the context stack; "a.b.c" resolves "a" up the stack
 *    (the first object that has the key wins) and then "b" and "c" inside that value
 *    only. A name may not be empty, contain whitespace or control bytes, or have an
 *    empty dotted segment ("a..b", ".a", "a."): those are parse errors.
 *  - Falsey: false, null, an empty array and a missing name. Everything else is truthy,
 *    including "", 0 and {} (as in the spec's reference semantics). A section over an
 *    array renders once per element with the element pushed; over any other truthy
 *    value it renders once with the value pushed.
 *  - Interpolation: strings as they are (U+0000 characters are dropped so the result's
 *    strlen is its length), integers in decimal, reals in the shortest "%g" form that
 *    reads back to the same double (1.210 -> "1.21"), true/false as "true"/"false",
 *    null, missing names, objects and arrays as nothing.
 *  - Standalone lines: a section, inverted, end-section, comment or set-delimiter tag
 *    that is the only thing on its line but spaces and tabs is removed together with
 *    that whitespace and the line ending ("\n" or "\r\n").
 *  - Delimiters set by {{=a b=}} are 1..MUSTACHE_MAX_DELIM bytes, without whitespace
 *    or '='.
 *  - Totality: sections nest at most MUSTACHE_MAX_DEPTH deep (parse error beyond),
 *    the output is capped by max_out and the render's work by MUSTACHE_MAX_STEPS, so
 *    no template or context can crash, exhaust the stack or run without end. Bytes
 *    outside tags (invalid UTF-8 included) are copied untouched.
 */

#define MUSTACHE_MAX_DEPTH 100
#define MUSTACHE_MAX_DELIM 32
/* Node visits plus context-stack probes plus dotted-name parts one render may spend. */
#define MUSTACHE_MAX_STEPS 16777216ULL

struct mustache;

/*
 * Where and why a template does not parse. line and column are 1-based; the column
 * counts bytes. The position is that of the offending tag's opening delimiter (for
 * an unclosed section: the opening delimiter of the innermost section left open).
 */
struct mustache_error {
    int line;
    int column;
    char message[160];
};

enum mustache_escape { MUSTACHE_HTML, MUSTACHE_NONE };

/* Parses a template of len bytes; returns NULL and fills err (if not NULL) when it does
 * not parse, or with the message "out of memory". */
struct mustache *mustache_parse(const char *tmpl, size_t len, struct mustache_error *err);

void mustache_free(struct mustache *t);

/*
 * Renders t with ctx as the bottom of the context stack (NULL renders like {}).
 * {{name}} is HTML-escaped when escape is MUSTACHE_HTML (& < > " ' as &amp; &lt; &gt;
 * &quot; &#39;) and copied raw when MUSTACHE_NONE; {{{name}}} and {{& name}} are
 * always raw. Returns a malloc'd NUL-terminated string the caller frees, or NULL when
 * out of memory, when the output would exceed max_out bytes (NUL not counted), or when
 * the render would spend more than MUSTACHE_MAX_STEPS.
 */
char *mustache_render(const struct mustache *t, const json_t *ctx, enum mustache_escape escape,
                      size_t max_out);

#endif
