/* Field readers for the backends' parts of the config, so every backend
 * refuses unknown keys and bad strings with the same JSON-path messages as
 * config.c. */
#include <errno.h>
#include <string.h>

#include "config.h"

int config_keys_check(const json_t *obj, const char *path,
		      const char *const *allowed, struct errmsg *err)
{
	const char *key;
	json_t *value;
	size_t i;

	json_object_foreach((json_t *)obj, key, value)
	{
		for (i = 0; allowed[i] != NULL; i++)
			if (strcmp(key, allowed[i]) == 0)
				break;
		if (allowed[i] == NULL)
			return errmsg_set(err, -EINVAL, "%s.%.64s: unknown key",
					  path, key);
	}
	return 0;
}

int config_string_field(const json_t *obj, const char *path, const char *key,
			char *buf, size_t size, struct errmsg *err)
{
	const json_t *v = json_object_get(obj, key);

	if (v == NULL)
		return 0;
	if (!json_is_string(v))
		return errmsg_set(err, -EINVAL, "%s.%s: expected a string",
				  path, key);
	if (json_string_length(v) == 0 || json_string_length(v) >= size ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return errmsg_set(err, -EINVAL,
				  "%s.%s: must be 1 to %zu characters", path,
				  key, size - 1);
	memcpy(buf, json_string_value(v), json_string_length(v) + 1);
	return 0;
}
