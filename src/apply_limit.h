/* apply_limit: no result or access event over max_message_bytes (CONTRACT.md, "Limits
 * and failures"). */
#ifndef B2BD_APPLY_LIMIT_H
#define B2BD_APPLY_LIMIT_H

#include <stdbool.h>
#include <stddef.h>

#include "apply_cmd.h"
#include "b2bd/config.h"
#include "b2bd/db.h"
#include "b2bd/err.h"

/* True when a message whose key, value and headers take bytes fits max_message_bytes. */
bool apply_message_fits(const struct b2bd_config *cfg, size_t bytes);

/* B2BD_OK when the command's result message (key and value: bytes) fits, else
 * LIMIT_REACHED on the payload list that makes the result large. */
enum b2bd_code apply_result_fits(struct apply_cmd *c, size_t bytes, struct b2bd_err *err);

/* LIMIT_REACHED on field: the command's `what` ("result") would be too large. */
enum b2bd_code apply_too_large(struct apply_cmd *c, const char *field, const char *what,
                               struct b2bd_err *err);

/* True when the last statement failed because an access event was too large; then
 * apply_access_too_large sets the command's LIMIT_REACHED. */
bool apply_is_access_too_large(const struct b2bd_db *db);
enum b2bd_code apply_access_too_large(struct apply_cmd *c, struct b2bd_err *err);

#endif
