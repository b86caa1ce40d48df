/* The table of backend types the config may name. */
#include <string.h>

#include "aws.h"
#include "backend.h"
#include "postgres.h"
#include "vault.h"

static const struct backend_ops *const backend_table[] = {
    &postgres_backend_ops,
    &vault_backend_ops,
    &aws_backend_ops,
};

const struct backend_ops *backend_find(const char *type)
{
	size_t i;

	for (i = 0; i < sizeof(backend_table) / sizeof(backend_table[0]); i++)
		if (strcmp(backend_table[i]->type, type) == 0)
			return backend_table[i];
	return NULL;
}
