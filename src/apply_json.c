/* apply_json: the JSON values the apply modules write. */
#include "apply_json.h"

#include <stdlib.h>

json_t *apply_jstr(const char *s)
{
    return s ? json_string(s) : json_null();
}

char *apply_dump(const json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    if (!s)
        abort();
    return s;
}

json_t *apply_load(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);
    if (!j)
        abort();
    return j;
}

json_t *apply_hex_or_null(const void *p, size_t len)
{
    if (!p)
        return json_null();
    static const char digits[] = "0123456789abcdef";
    char *s = malloc(len * 2 + 1);
    if (!s)
        abort();
    const unsigned char *b = p;
    for (size_t i = 0; i < len; i++) {
        s[2 * i] = digits[b[i] >> 4];
        s[2 * i + 1] = digits[b[i] & 15];
    }
    s[len * 2] = '\0';
    json_t *j = json_string(s);
    free(s);
    return j;
}
