/* validate: the contract's checks of single values (UUIDs, shop ids, identifiers, email
 * addresses, RFC 3339 times, decimals, currencies) and the UTF-8 text helpers they use;
 * for the decoder and for b2bctl. */
#include "b2bd/validate.h"

#include <stdint.h>
#include <string.h>

#include <jansson.h>

/* ---- text helpers (input is valid UTF-8: jansson checks it) --------------- */

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Decodes the code point at *p and advances *p past it. */
uint32_t decode_utf8_next(const unsigned char **p)
{
    const unsigned char *s = *p;
    uint32_t c = s[0];
    int n = c < 0x80 ? 0 : c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
    if (n)
        c &= 0x3Fu >> n;
    for (int i = 1; i <= n && s[i]; i++)
        c = (c << 6) | (s[i] & 0x3Fu);
    *p = s + 1 + n;
    return c;
}

size_t decode_utf8_count(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

static bool is_control(uint32_t c)
{
    return c < 0x20 || (c >= 0x7F && c <= 0x9F);
}

static bool is_unicode_space(uint32_t c)
{
    return c == ' ' || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200B)
           || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000
           || c == 0xFEFF;
}

bool decode_has_control(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p)
        if (is_control(decode_utf8_next(&p)))
            return true;
    return false;
}

/* ---- validators ------------------------------------------------------------ */

bool decode_is_uuid(const char *s)
{
    if (!s || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !is_hex(s[i]))
            return false;
    }
    return true;
}

bool decode_is_shop_id(const char *s)
{
    if (!s)
        return false;
    size_t n = strlen(s);
    if (n < 1 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.'
              || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return true;
}

bool decode_is_id(const char *s)
{
    json_t *valid = s ? json_string(s) : NULL; /* NULL unless UTF-8 */
    if (!valid)
        return false;
    json_decref(valid);
    size_t n = decode_utf8_count(s, strlen(s));
    return n >= 1 && n <= DECODE_ID_MAX && !decode_has_control(s);
}

/* One '@', non-empty local and domain parts, no whitespace or control characters,
 * at most 254 bytes; the domain has no empty label. Unicode is allowed. */
bool decode_is_email(const char *s)
{
    if (!s || strlen(s) > DECODE_EMAIL_MAX)
        return false;
    const char *at = strchr(s, '@');
    if (!at || at == s || strchr(at + 1, '@'))
        return false;
    const char *dom = at + 1;
    size_t dl = strlen(dom);
    if (dl == 0 || dom[0] == '.' || dom[dl - 1] == '.' || strstr(dom, ".."))
        return false;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t c = decode_utf8_next(&p);
        if (is_control(c) || is_unicode_space(c))
            return false;
    }
    return true;
}

static int two(const char *s) { return (s[0] - '0') * 10 + (s[1] - '0'); }

static bool all_digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (!is_digit(s[i]))
            return false;
    return true;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* RFC 3339 date-time: 2026-11-22T10:00:00(.123)?(Z|+01:00). */
bool decode_is_rfc3339(const char *s)
{
    if (strlen(s) < 20 || !all_digits(s, 4) || s[4] != '-' || !all_digits(s + 5, 2)
        || s[7] != '-' || !all_digits(s + 8, 2) || (s[10] != 'T' && s[10] != 't')
        || !all_digits(s + 11, 2) || s[13] != ':' || !all_digits(s + 14, 2) || s[16] != ':'
        || !all_digits(s + 17, 2))
        return false;
    int y = two(s) * 100 + two(s + 2), mo = two(s + 5), d = two(s + 8);
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        return false;
    if (two(s + 11) > 23 || two(s + 14) > 59 || two(s + 17) > 60)
        return false;
    const char *p = s + 19;
    if (*p == '.') {
        if (!is_digit(*++p))
            return false;
        while (is_digit(*p))
            p++;
    }
    if (*p == 'Z' || *p == 'z')
        return p[1] == '\0';
    if (*p != '+' && *p != '-')
        return false;
    p++;
    return all_digits(p, 2) && p[2] == ':' && all_digits(p + 3, 2) && p[5] == '\0'
           && two(p) <= 23 && two(p + 3) <= 59;
}

/* "12.50", "-3": optional '-', 1-20 digits, optionally '.' and 1-10 digits. */
bool decode_is_decimal(const char *s)
{
    const char *p = s + (*s == '-');
    size_t n = strspn(p, "0123456789");
    if (n < 1 || n > 20)
        return false;
    p += n;
    if (*p == '.') {
        n = strspn(++p, "0123456789");
        if (n < 1 || n > 10)
            return false;
        p += n;
    }
    return *p == '\0';
}

bool decode_is_currency(const char *s)
{
    return strlen(s) == 3 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
           && s[2] >= 'A' && s[2] <= 'Z';
}
