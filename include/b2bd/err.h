/* err: errors carried as values, with the contract's codes. */
#ifndef B2BD_ERR_H
#define B2BD_ERR_H

enum b2bd_code {
    B2BD_OK = 0,
    /* Contract error codes: a command with one of these gets a `rejected` result. */
    B2BD_INVALID,
    B2BD_NOT_FOUND,
    B2BD_LIMIT_REACHED,
    B2BD_NOT_A_CONTACT,
    B2BD_NO_LOCATION_ACCESS,
    B2BD_ALREADY_MIGRATED,
    B2BD_UNKNOWN_TYPE,
    B2BD_WRONG_TOPIC,
    B2BD_IDEMPOTENCY_KEY_REUSED,
    B2BD_CONFLICT,
    B2BD_MERGE_REFUSED,
    B2BD_SUSPENDED,     /* the company or the contact is suspended (CONTRACT.md, "Suspension") */
    B2BD_UNPROCESSABLE, /* the database refuses the command, and a retry will not cure it */
    /* Dead-letter codes: the message is not a command at all. */
    B2BD_NOT_JSON,
    B2BD_NOT_A_COMMAND,
    B2BD_TOO_LARGE,
    B2BD_COMMANDS_LOST, /* the broker deleted commands before b2bd applied them (no message) */
    /* Internal: not a command's fault, never in a result or a dead letter. */
    B2BD_ERR_DB,       /* a database failure (its class: fault_classify) */
    B2BD_ERR_CONFIG,   /* a setting is wrong: an unknown key, a value out of its range */
    B2BD_ERR_IO,       /* a file (configuration, password, template) missing or unreadable,
                          an address that cannot be resolved or listened on */
    B2BD_ERR_KAFKA,    /* a Kafka client cannot be made or fails */
    B2BD_ERR_INTERNAL  /* a bug or resource exhaustion */
};

struct b2bd_err {
    enum b2bd_code code;
    char msg[256];
    char field[128];
};

/* The contract's name of a code, e.g. "NOT_FOUND", or an internal failure's name
 * ("DB_ERROR", "CONFIG_ERROR", "IO_ERROR", "KAFKA_ERROR", "INTERNAL"), which no result
 * carries. Never NULL. */
const char *b2bd_code_name(enum b2bd_code code);

/* The code of a name ("NOT_FOUND"); B2BD_ERR_INTERNAL for an unknown name. */
enum b2bd_code b2bd_code_from_name(const char *name);

/* True for codes that give a `rejected` result (INVALID .. UNPROCESSABLE). */
int b2bd_code_is_rejection(enum b2bd_code code);

/* True for the dead-letter codes (NOT_JSON, NOT_A_COMMAND, TOO_LARGE, COMMANDS_LOST). */
int b2bd_code_is_dead_letter(enum b2bd_code code);

/* Sets *e (field may be NULL) and returns code, so that callers can
 * `return b2bd_err_set(e, B2BD_INVALID, "payload.x", "...")`. */
enum b2bd_code b2bd_err_set(struct b2bd_err *e, enum b2bd_code code,
                            const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

void b2bd_err_clear(struct b2bd_err *e);

#endif
