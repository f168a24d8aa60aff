/* err: the contract's error codes, their names and classes, and setting an error value. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "b2bd/err.h"

const char *b2bd_code_name(enum b2bd_code code)
{
    switch (code) {
    case B2BD_OK: return "OK";
    case B2BD_INVALID: return "INVALID";
    case B2BD_NOT_FOUND: return "NOT_FOUND";
    case B2BD_LIMIT_REACHED: return "LIMIT_REACHED";
    case B2BD_NOT_A_CONTACT: return "NOT_A_CONTACT";
    case B2BD_NO_LOCATION_ACCESS: return "NO_LOCATION_ACCESS";
    case B2BD_ALREADY_MIGRATED: return "ALREADY_MIGRATED";
    case B2BD_UNKNOWN_TYPE: return "UNKNOWN_TYPE";
    case B2BD_WRONG_TOPIC: return "WRONG_TOPIC";
    case B2BD_IDEMPOTENCY_KEY_REUSED: return "IDEMPOTENCY_KEY_REUSED";
    case B2BD_CONFLICT: return "CONFLICT";
    case B2BD_MERGE_REFUSED: return "MERGE_REFUSED";
    case B2BD_SUSPENDED: return "SUSPENDED";
    case B2BD_UNPROCESSABLE: return "UNPROCESSABLE";
    case B2BD_NOT_JSON: return "NOT_JSON";
    case B2BD_NOT_A_COMMAND: return "NOT_A_COMMAND";
    case B2BD_TOO_LARGE: return "TOO_LARGE";
    case B2BD_COMMANDS_LOST: return "COMMANDS_LOST";
    case B2BD_ERR_DB: return "DB_ERROR";
    case B2BD_ERR_CONFIG: return "CONFIG_ERROR";
    case B2BD_ERR_IO: return "IO_ERROR";
    case B2BD_ERR_KAFKA: return "KAFKA_ERROR";
    case B2BD_ERR_INTERNAL: return "INTERNAL";
    }
    return "INTERNAL";
}

int b2bd_code_is_rejection(enum b2bd_code code)
{
    return code >= B2BD_INVALID && code <= B2BD_UNPROCESSABLE;
}

int b2bd_code_is_dead_letter(enum b2bd_code code)
{
    return code == B2BD_NOT_JSON || code == B2BD_NOT_A_COMMAND || code == B2BD_TOO_LARGE ||
           code == B2BD_COMMANDS_LOST;
}

/* Cuts a trailing, incomplete UTF-8 sequence left by truncation, so that the text
 * can always be put in a JSON string. */
static void trim_utf8_tail(char *s)
{
    size_t n = strlen(s), i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t want = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (i - 1 + want > n)
        s[i - 1] = '\0';
}

enum b2bd_code b2bd_err_set(struct b2bd_err *e, enum b2bd_code code,
                            const char *field, const char *fmt, ...)
{
    if (!e)
        return code;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    trim_utf8_tail(e->msg);
    if (!field)
        e->field[0] = '\0';
    else if (field != e->field)
        snprintf(e->field, sizeof e->field, "%s", field);
    trim_utf8_tail(e->field);
    return code;
}

void b2bd_err_clear(struct b2bd_err *e)
{
    if (!e)
        return;
    e->code = B2BD_OK;
    e->msg[0] = '\0';
    e->field[0] = '\0';
}

enum b2bd_code b2bd_code_from_name(const char *name)
{
    for (int c = B2BD_INVALID; c <= B2BD_ERR_INTERNAL; c++)
        if (strcmp(b2bd_code_name((enum b2bd_code)c), name) == 0)
            return (enum b2bd_code)c;
    return B2BD_ERR_INTERNAL;
}
