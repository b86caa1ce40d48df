/* The postgres backend: mints login roles in a PostgreSQL server with an
 * admin connection (DSN read from a file), renews them with ALTER ROLE ...
 * VALID UNTIL, and revokes them by terminating their sessions and dropping
 * the role. */
#ifndef CREDBROKER_POSTGRES_H
#define CREDBROKER_POSTGRES_H

#include "backend.h"

extern const struct backend_ops postgres_backend_ops;

#endif
