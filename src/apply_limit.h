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

/* True when the last statement failed because the command's result message was too
 * large (SQLSTATE B2B14, b2bd_result_checked, sql/functions/result.sql); then
 * apply_result_too_large sets LIMIT_REACHED on the payload list that makes it large. */
bool apply_is_result_too_large(const struct b2bd_db *db);
enum b2bd_code apply_result_too_large(struct apply_cmd *c, struct b2bd_err *err);

/* LIMIT_REACHED on field: the command's `what` ("result") would be too large. */
enum b2bd_code apply_too_large(struct apply_cmd *c, const char *field, const char *what,
                               struct b2bd_err *err);

/* True when the last statement failed because an access event was too large; then
 * apply_access_too_large sets the command's LIMIT_REACHED. */
bool apply_is_access_too_large(const struct b2bd_db *db);
enum b2bd_code apply_access_too_large(struct apply_cmd *c, struct b2bd_err *err);

#endif
