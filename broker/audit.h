/* The audit log: JSON lines, append-only, hash-chained.  Every record
 * carries a sequence number, an RFC 3339 time with microseconds, the
 * caller's fields (event, actor, object, result, ...) and "prev": the
 * SHA-256 of the previous record's line (HMAC-SHA256 with a key from a
 * file, when configured), so any edit, removal or reordering breaks the
 * chain.  Keyed logs also carry "mac" over the record itself, which
 * protects the last record too.  The file is rotated by size (FILE.1,
 * FILE.2, ... oldest first) and the chain runs on across files; a broker
 * that restarts continues the chain of the file it finds.  Records never
 * hold a secret value: callers pass names, versions, lease ids and uids.
 *
 * Thread safety: audit_write may be called from any thread. */
#ifndef CREDBROKER_AUDIT_H
#define CREDBROKER_AUDIT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "clock.h"
#include "errmsg.h"

#define AUDIT_MAX_LINE (64 * 1024)
#define AUDIT_KEY_MAX 256

struct audit_config {
	char path[PATH_MAX];	 /* "" for no file */
	bool to_stdout;		 /* also one line per record on stdout */
	char key_file[PATH_MAX]; /* "" for an unkeyed chain */
	uint64_t max_bytes;	 /* rotate past this; 0: never */
};

struct audit;

/* Opens (creating, mode 0600) or continues the log.  Returns 0, -errno
 * from open or the key file (err names which), -EINVAL for a key file that
 * is group/world readable or empty. */
int audit_open(const struct audit_config *cfg, const struct clock *clk,
	       struct audit **ret, struct errmsg *err)
    __attribute__((warn_unused_result));
/* Appends one record made of fields (an object; its "seq", "time", "prev"
 * and "mac" keys are the log's own).  Takes the reference to fields.
 * Returns 0, -EMSGSIZE past AUDIT_MAX_LINE, -errno from write.  A NULL
 * audit accepts and drops the record. */
int audit_write(struct audit *a, json_t *fields);
/* The sequence number the next record will get. */
uint64_t audit_next_seq(struct audit *a);
/* NULL-safe. */
void audit_close(struct audit *a);

struct audit_verify_result {
	uint64_t records;
	uint64_t first_seq, last_seq;
	bool starts_at_genesis;	    /* the first record opens the chain */
	char broken_file[PATH_MAX]; /* "" when intact */
	uint64_t broken_line;	    /* 1-based line in broken_file */
};

/* Checks the chain across files given oldest first; key_file "" for an
 * unkeyed log.  Returns 0 when intact, -EBADMSG when broken (res names the
 * first broken record and err says how), -errno when a file cannot be
 * read. */
int audit_verify(const char *const *paths, size_t count, const char *key_file,
		 struct audit_verify_result *res, struct errmsg *err)
    __attribute__((warn_unused_result));

#endif
