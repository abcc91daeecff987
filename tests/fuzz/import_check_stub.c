/* fcgi/import_check.c runs its sandboxes from a thread of its own, which a
 * fuzz harness must not start: after a dependencies/update, nothing. */
#include "fcgi/import_check.h"

void import_check_start(void)
{
}
