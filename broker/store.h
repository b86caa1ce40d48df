/* The in-memory store: for each configured secret (a "slot", numbered in
 * config order), the versions that may still be read.  A version is
 * immutable once published and reference counted: a FUSE open pins one, so a
 * reader sees one version's bytes from open to release (invariant 2).
 * Rotation publishes a new current version; older versions stay readable
 * (under their per-version directory) until they expire or die.
 * Killing a version (revocation, expiry) wipes its bytes at once; handles
 * still pinning it then read -EIO.
 *
 * Thread safety: every function may be called from any thread.  The store
 * mutex protects the slot tables; each version has a rwlock protecting its
 * bytes against kill. */
#ifndef CREDBROKER_STORE_H
#define CREDBROKER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "clock.h"
#include "secret.h"

#define STORE_MAX_FILES 32
#define STORE_MAX_FILE_NAME 64
#define STORE_KEEP_VERSIONS 4 /* current + superseded, per slot */
#define STORE_MAX_READERS 64

struct version;
struct store;

/* ---- versions ---- */

/* A new, unpublished version with sequence number seq (>= 1) that expires at
 * expires_mono (monotonic usec).  Returns 0 or -ENOMEM. */
int version_new(uint64_t seq, uint64_t expires_mono, struct version **ret)
    __attribute__((warn_unused_result));
/* Adds a file; takes ownership of data on success and on failure.  Returns
 * 0, -EINVAL for a bad name, -EEXIST, -EMSGSIZE past STORE_MAX_FILES,
 * -ENOMEM. */
int version_add_file(struct version *v, const char *name, struct secret *data)
    __attribute__((warn_unused_result));
/* Puts a file at index idx, leaving holes below it: a secret keeps each
 * file name at one index across versions even when a version lacks some
 * (the FUSE side names files by index).  Same ownership and errors as
 * version_add_file. */
int version_set_file(struct version *v, size_t idx, const char *name,
		     struct secret *data) __attribute__((warn_unused_result));
struct version *version_ref(struct version *v);
/* Drops a reference; the last one wipes and frees.  NULL-safe. */
void version_unref(struct version *v);
uint64_t version_seq(const struct version *v);
uint64_t version_expires(const struct version *v);
/* One past the highest file index (holes included). */
size_t version_file_count(const struct version *v);
/* True when index idx holds a file (not a hole). */
bool version_has_file(const struct version *v, size_t idx);
/* The name at idx, or NULL for a hole. */
const char *version_file_name(const struct version *v, size_t idx);
/* The index of file name, or -ENOENT. */
int version_find_file(const struct version *v, const char *name);
/* File size in bytes (0 once killed). */
size_t version_file_size(const struct version *v, size_t idx);
/* True when not killed and now < expiry. */
bool version_live(const struct version *v, uint64_t now);
/* Copies up to size bytes of file idx from off into buf.  Returns the byte
 * count, or -EIO when the version was killed or has expired at now. */
ssize_t version_read(struct version *v, size_t idx, void *buf, size_t size,
		     off_t off, uint64_t now)
    __attribute__((warn_unused_result));
/* Marks the version dead and wipes its bytes now. */
void version_kill(struct version *v);

/* ---- the store ---- */

struct store_slot_info {
	char name[STORE_MAX_FILE_NAME];
	uid_t uid;
	gid_t gid;
	mode_t mode; /* permission bits of the files, e.g. 0400 */
	size_t reader_count;
	uid_t readers[STORE_MAX_READERS];
};

/* Called with the slot whose visible content changed (publish, kill,
 * expiry), outside the store mutex. */
typedef void (*store_listener)(void *arg, size_t slot);

/* slots[0..count) are copied.  Returns 0, -EINVAL (duplicate or bad name),
 * -ENOMEM. */
int store_new(const struct store_slot_info *slots, size_t count,
	      const struct clock *clk, struct store **ret)
    __attribute__((warn_unused_result));
/* Kills every version, then frees.  NULL-safe. */
void store_free(struct store *st);
void store_set_listener(struct store *st, store_listener fn, void *arg);

size_t store_slot_count(const struct store *st);
const struct store_slot_info *store_slot_info(const struct store *st,
					      size_t slot);
/* The slot named name, or -ENOENT. */
int store_slot_find(const struct store *st, const char *name);

/* Makes v the current version of slot (takes a reference).  The previous
 * current version is kept, readable by sequence number, until it expires or
 * STORE_KEEP_VERSIONS newer ones push it out of the listing.  A pushed-out
 * version that a reader still pins stays readable through that handle and
 * is still killed by expiry and revocation (at most 64 such per slot; past
 * that the oldest is killed).  Returns 0 or -EINVAL when v->seq is not
 * greater than the current one. */
int store_publish(struct store *st, size_t slot, struct version *v)
    __attribute__((warn_unused_result));
/* A new reference to the current version when it is live at now, else NULL. */
struct version *store_pin_current(struct store *st, size_t slot);
/* A new reference to the retained version seq when live, else NULL. */
struct version *store_pin_seq(struct store *st, size_t slot, uint64_t seq);
/* Fills seqs (ascending) with the live retained versions of slot; returns
 * how many (at most max). */
size_t store_list_versions(struct store *st, size_t slot, uint64_t *seqs,
			   size_t max);
/* Kills and drops every version of slot (revocation). */
void store_kill_slot(struct store *st, size_t slot);
/* Kills and drops the versions of slot numbered seq or lower (those of a
 * credential revoked before its expiry).  Returns how many. */
size_t store_kill_upto(struct store *st, size_t slot, uint64_t seq);
/* Kills and drops the versions of slot whose expiry <= now.  Returns how many.
 */
size_t store_expire(struct store *st, size_t slot);
/* Moves the expiry of the live versions of slot numbered from_seq or higher
 * (those of one credential, renewed) to expires when that is later, so a
 * handle opened before the renewal keeps reading the still valid bytes.
 * Returns how many moved. */
size_t store_extend(struct store *st, size_t slot, uint64_t from_seq,
		    uint64_t expires);

#endif
