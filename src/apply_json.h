/* apply_json: the JSON values the apply modules write into results, events and the
 * rows they hand to the database's functions. */
#ifndef B2BD_APPLY_JSON_H
#define B2BD_APPLY_JSON_H

#include <stddef.h>

#include <jansson.h>

/* json_string(s), or json_null() for NULL. */
json_t *apply_jstr(const char *s);

/* Serialises j compactly (keys in insertion order); caller frees. Aborts when out of
 * memory, as the apply modules do for every JSON they build. */
char *apply_dump(const json_t *j);

/* Parses JSON that a database function built (so only memory can make it fail: aborts
 * then); caller decrefs. */
json_t *apply_load(const char *text);

/* p[0..len) as a JSON string of hex digits, or JSON null when p is NULL. */
json_t *apply_hex_or_null(const void *p, size_t len);

#endif
