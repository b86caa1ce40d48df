/* The freeze list on disk: which secrets a responder revoked, so that a
 * broker restarted after an incident does not silently fetch fresh
 * credentials.  A small JSON file with names, times, reasons and uids,
 * never a secret value:
 *
 *   {"frozen": {"db": {"since": "2026-...Z", "reason": "...", "uid": 0}}}
 *
 * Written atomically (a temporary file, fsync, rename), mode 0600. */
#ifndef CREDBROKER_FREEZE_H
#define CREDBROKER_FREEZE_H

#include <jansson.h>

#include "errmsg.h"

/* Room for every list the broker itself writes: CONFIG_MAX_SECRETS entries
 * with 512-byte reasons, each byte escaped as \u00XX (about 820 KiB). */
#define FREEZE_MAX_BYTES (1024 * 1024)

/* The "frozen" object of the file at path (a new reference), or an empty
 * object when the file does not exist.  Returns 0, -EINVAL for a file that
 * is not ours (err names it), -errno when it cannot be read. */
int freeze_load(const char *path, json_t **frozen, struct errmsg *err)
    __attribute__((warn_unused_result));
/* Replaces the file with frozen (an object of name -> details).  Returns 0,
 * -EMSGSIZE (the file is left as it was) when the text would pass
 * FREEZE_MAX_BYTES, which freeze_load refuses, or -errno. */
int freeze_save(const char *path, const json_t *frozen, struct errmsg *err)
    __attribute__((warn_unused_result));

#endif
