/* fault: the one classifier of failures: the surroundings', a unique-key race and a
 * command's own, told apart by SQLSTATE, and the producer's words for a rejection. */
#include "b2bd/fault.h"

#include <string.h>

static bool has_class(const char *sqlstate, const char *cls)
{
    return strncmp(sqlstate, cls, strlen(cls)) == 0;
}

/* The surroundings' failures: whole classes, then single states. */
static const char *const SURROUNDINGS_CLASSES[] = {"08", "53", "57P", "58"};
static const char *const SURROUNDINGS_STATES[] = {"40001", "40P01", "40003", "55P03"};
static const char RACE_STATE[] = "23505";

enum fault_class fault_classify(const char *sqlstate, bool connected)
{
    if (!connected || !sqlstate || !sqlstate[0])
        return FAULT_SURROUNDINGS;
    for (size_t i = 0; i < sizeof SURROUNDINGS_CLASSES / sizeof SURROUNDINGS_CLASSES[0]; i++)
        if (has_class(sqlstate, SURROUNDINGS_CLASSES[i]))
            return FAULT_SURROUNDINGS;
    for (size_t i = 0; i < sizeof SURROUNDINGS_STATES / sizeof SURROUNDINGS_STATES[0]; i++)
        if (strcmp(sqlstate, SURROUNDINGS_STATES[i]) == 0)
            return FAULT_SURROUNDINGS;
    if (strcmp(sqlstate, RACE_STATE) == 0)
        return FAULT_RACE;
    return FAULT_COMMAND;
}

struct reason {
    const char *prefix; /* a SQLSTATE or its first characters */
    enum b2bd_code code;
    const char *msg;
};

/* First match wins: exact states before their classes. */
static const struct reason REASONS[] = {
    {"23505", B2BD_CONFLICT, "a concurrent command changed the same rows; send it again"},
    {"22001", B2BD_INVALID, "a value is longer than can be stored"},
    {"22003", B2BD_INVALID, "a number is outside the range that can be stored"},
    {"22007", B2BD_INVALID, "a date or time cannot be stored"},
    {"22008", B2BD_INVALID, "a date or time is outside the range that can be stored"},
    {"22021", B2BD_INVALID, "a text holds a character that cannot be stored"},
    {"22P05", B2BD_INVALID, "a text holds a character that cannot be stored"},
    {"22", B2BD_INVALID, "a value of the command cannot be stored"},
    {"23502", B2BD_UNPROCESSABLE, "the command could not be stored: a required value is missing"},
    {"23503", B2BD_UNPROCESSABLE,
     "the command could not be stored: it refers to a record that does not exist"},
    {"23", B2BD_UNPROCESSABLE, "the command could not be stored: it breaks a rule of the stored data"},
    {"54", B2BD_UNPROCESSABLE,
     "the command could not be stored: it exceeds a limit of the database (a value, an "
     "identifier or a list too large)"},
    {"P0", B2BD_UNPROCESSABLE, "the command could not be stored: a rule of the database refused it"},
    {"XX", B2BD_UNPROCESSABLE, "the command could not be stored: the database failed on it"},
};

enum b2bd_code fault_rejection(const char *sqlstate, struct b2bd_err *why)
{
    const char *s = sqlstate ? sqlstate : "";
    const char *tail = "; it changed nothing, and sent again unchanged it would fail again";
    if (!s[0])
        return b2bd_err_set(why, B2BD_UNPROCESSABLE, NULL,
                            "the command's result could not be built%s", tail);
    for (size_t i = 0; i < sizeof REASONS / sizeof REASONS[0]; i++) {
        const struct reason *r = &REASONS[i];
        if (!has_class(s, r->prefix))
            continue;
        if (r->code == B2BD_CONFLICT)
            return b2bd_err_set(why, r->code, NULL, "%s", r->msg);
        return b2bd_err_set(why, r->code, NULL, "%s%s", r->msg, tail);
    }
    return b2bd_err_set(why, B2BD_UNPROCESSABLE, NULL,
                        "the command could not be stored: the database refused it%s", tail);
}
