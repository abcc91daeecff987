/* Internal to jail/: the executor's state shared by its parts. */
#ifndef SANDCELL_EXECUTOR_H
#define SANDCELL_EXECUTOR_H

#include "jail/jail.h"

/* The configuration executor_init was given (NULL before). */
const struct jail_config *executor_config(void);

#endif
