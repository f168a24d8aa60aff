/* validate: the contract's checks of single values, for the decoder and for b2bctl. */
#ifndef B2BD_VALIDATE_H
#define B2BD_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An identifier's and an email address's limits (code points; bytes). */
#define DECODE_ID_MAX 255
#define DECODE_EMAIL_MAX 254

bool decode_is_uuid(const char *s);
bool decode_is_shop_id(const char *s);
bool decode_is_email(const char *s);
/* An identifier as commands carry it: UTF-8, 1 to 255 characters (up to 1,020 bytes),
 * no control characters. */
bool decode_is_id(const char *s);
/* RFC 3339 date-time: 2026-11-22T10:00:00(.123)?(Z|+01:00), a real calendar date. */
bool decode_is_rfc3339(const char *s);
/* "12.50", "-3": optional '-', 1-20 digits, optionally '.' and 1-10 digits. */
bool decode_is_decimal(const char *s);
/* ISO 4217 form: three upper-case ASCII letters. */
bool decode_is_currency(const char *s);

/* UTF-8 text (valid: jansson checks it). The code point at *p; advances *p past it. */
uint32_t decode_utf8_next(const unsigned char **p);
/* The code points in the len bytes at s. */
size_t decode_utf8_count(const char *s, size_t len);
/* True when s holds a control character (C0, DEL, C1). */
bool decode_has_control(const char *s);

#endif
