/* apply_bulk_row: the rows the set-based functions read (b2bd_assign_bulk,
 * b2bd_revoke_bulk): the fields every row has, whatever its command. */
#ifndef B2BD_APPLY_BULK_ROW_H
#define B2BD_APPLY_BULK_ROW_H

#include <stddef.h>

#include <jansson.h>

#include "apply_bulk.h"

/* A new row for the run's command i: its index (i), command id (id), payload hash (h),
 * import id (imp), message key (k), shop (shop) and company (co); the caller adds the
 * fields of its command and owns the row. */
json_t *bulk_row_new(const struct bulk_run *r, size_t i, const char *company);

#endif
