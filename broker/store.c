/* Versions are immutable once published; the only mutation is kill, which
 * takes the version's write lock, so a read in progress completes with the
 * old bytes or fails with EIO, never sees half-wiped memory. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

struct version_file {
	char name[STORE_MAX_FILE_NAME];
	struct secret *data; /* NULL once killed */
};

struct version {
	atomic_uint refs;
	uint64_t seq;
	uint64_t expires;      /* monotonic usec */
	pthread_rwlock_t lock; /* protects dead and files[].data */
	bool dead;
	size_t file_count;
	size_t file_cap;
	struct version_file *files; /* grown as files are set, before publish */
};

/* Versions pushed out of the listing while a reader still pins them are
 * kept as orphans, so that revocation and expiry still reach (and wipe)
 * them; an orphan nobody pins any more is released at the next change. */
#define STORE_MAX_ORPHANS 64
#define STORE_MAX_HELD (STORE_KEEP_VERSIONS + STORE_MAX_ORPHANS)

struct store_slot {
	struct store_slot_info info;
	size_t version_count; /* ascending seq; last is current */
	struct version *versions[STORE_KEEP_VERSIONS];
	size_t orphan_count; /* ascending seq */
	struct version *orphans[STORE_MAX_ORPHANS];
};

/* Which held versions store_take() removes. */
enum store_match { STORE_MATCH_ALL, STORE_MATCH_UPTO, STORE_MATCH_EXPIRED };

struct store {
	const struct clock *clk;
	pthread_mutex_t lock; /* protects slots[].versions */
	store_listener listener;
	void *listener_arg;
	size_t slot_count;
	struct store_slot *slots;
};

int version_new(uint64_t seq, uint64_t expires_mono, struct version **ret)
{
	struct version *v;

	v = calloc(1, sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	atomic_init(&v->refs, 1);
	v->seq = seq;
	v->expires = expires_mono;
	if (pthread_rwlock_init(&v->lock, NULL) != 0) {
		free(v);
		return -ENOMEM;
	}
	*ret = v;
	return 0;
}

static bool store_name_ok(const char *name)
{
	size_t len = strlen(name);

	return len > 0 && len < STORE_MAX_FILE_NAME && name[0] != '.' &&
	       strchr(name, '/') == NULL;
}

static bool store_file_name_ok(const char *name)
{
	size_t len = strlen(name);

	/* ".lease.json" is the one dot file: the broker's metadata. */
	return len > 0 && len < STORE_MAX_FILE_NAME && !strchr(name, '/') &&
	       strncmp(name, "..", 2) != 0 && strcmp(name, ".") != 0;
}

/* Room for cap files, the new ones empty; a version holds as many file
 * slots as its secret has names, not STORE_MAX_FILES. */
static int version_grow(struct version *v, size_t cap)
{
	struct version_file *files = realloc(v->files, cap * sizeof(*files));

	if (files == NULL)
		return -ENOMEM;
	memset(files + v->file_cap, 0, (cap - v->file_cap) * sizeof(*files));
	v->files = files;
	v->file_cap = cap;
	return 0;
}

int version_set_file(struct version *v, size_t idx, const char *name,
		     struct secret *data)
{
	int r = 0;

	if (!store_file_name_ok(name))
		r = -EINVAL;
	else if (version_find_file(v, name) >= 0 ||
		 (idx < v->file_count && v->files[idx].name[0] != '\0'))
		r = -EEXIST;
	else if (idx >= STORE_MAX_FILES)
		r = -EMSGSIZE;
	else if (idx >= v->file_cap)
		r = version_grow(v, idx + 1);
	if (r < 0) {
		secret_free(data);
		return r;
	}
	memcpy(v->files[idx].name, name, strlen(name) + 1);
	v->files[idx].data = data;
	if (idx >= v->file_count)
		v->file_count = idx + 1;
	return 0;
}

int version_add_file(struct version *v, const char *name, struct secret *data)
{
	return version_set_file(v, v->file_count, name, data);
}

struct version *version_ref(struct version *v)
{
	atomic_fetch_add(&v->refs, 1);
	return v;
}

void version_unref(struct version *v)
{
	size_t i;

	if (v == NULL || atomic_fetch_sub(&v->refs, 1) != 1)
		return;
	for (i = 0; i < v->file_count; i++)
		secret_free(v->files[i].data);
	pthread_rwlock_destroy(&v->lock);
	free(v->files);
	free(v);
}

uint64_t version_seq(const struct version *v)
{
	return v->seq;
}

uint64_t version_expires(const struct version *v)
{
	return v->expires;
}

size_t version_file_count(const struct version *v)
{
	return v->file_count;
}

const char *version_file_name(const struct version *v, size_t idx)
{
	return version_has_file(v, idx) ? v->files[idx].name : NULL;
}

bool version_has_file(const struct version *v, size_t idx)
{
	return idx < v->file_count && v->files[idx].name[0] != '\0';
}

int version_find_file(const struct version *v, const char *name)
{
	size_t i;

	for (i = 0; i < v->file_count; i++)
		if (v->files[i].name[0] != '\0' &&
		    strcmp(v->files[i].name, name) == 0)
			return (int)i;
	return -ENOENT;
}

size_t version_file_size(const struct version *v, size_t idx)
{
	struct version *mv = (struct version *)v;
	size_t size = 0;

	if (idx >= v->file_count)
		return 0;
	pthread_rwlock_rdlock(&mv->lock);
	if (!mv->dead && mv->files[idx].data != NULL)
		size = secret_len(mv->files[idx].data);
	pthread_rwlock_unlock(&mv->lock);
	return size;
}

bool version_live(const struct version *v, uint64_t now)
{
	struct version *mv = (struct version *)v;
	bool live;

	pthread_rwlock_rdlock(&mv->lock);
	live = !mv->dead && now < mv->expires;
	pthread_rwlock_unlock(&mv->lock);
	return live;
}

ssize_t version_read(struct version *v, size_t idx, void *buf, size_t size,
		     off_t off, uint64_t now)
{
	const unsigned char *bytes;
	ssize_t r = -EIO;
	size_t len;

	if (idx >= v->file_count || off < 0)
		return -EINVAL;
	pthread_rwlock_rdlock(&v->lock);
	if (v->dead || now >= v->expires || v->files[idx].data == NULL)
		goto out;
	bytes = secret_expose(v->files[idx].data, &len);
	if ((size_t)off >= len) {
		r = 0;
		goto out;
	}
	if (size > len - (size_t)off)
		size = len - (size_t)off;
	memcpy(buf, bytes + off, size);
	r = (ssize_t)size;
out:
	pthread_rwlock_unlock(&v->lock);
	return r;
}

void version_kill(struct version *v)
{
	size_t i;

	pthread_rwlock_wrlock(&v->lock);
	v->dead = true;
	for (i = 0; i < v->file_count; i++) {
		secret_free(v->files[i].data);
		v->files[i].data = NULL;
	}
	pthread_rwlock_unlock(&v->lock);
}

int store_new(const struct store_slot_info *slots, size_t count,
	      const struct clock *clk, struct store **ret)
{
	struct store *st;
	size_t i, j;

	for (i = 0; i < count; i++) {
		if (!store_name_ok(slots[i].name) ||
		    slots[i].reader_count > STORE_MAX_READERS)
			return -EINVAL;
		for (j = 0; j < i; j++)
			if (strcmp(slots[i].name, slots[j].name) == 0)
				return -EINVAL;
	}
	st = calloc(1, sizeof(*st));
	if (st == NULL)
		return -ENOMEM;
	st->slots = calloc(count ? count : 1, sizeof(*st->slots));
	if (st->slots == NULL) {
		free(st);
		return -ENOMEM;
	}
	for (i = 0; i < count; i++)
		st->slots[i].info = slots[i];
	st->slot_count = count;
	st->clk = clk;
	pthread_mutex_init(&st->lock, NULL);
	*ret = st;
	return 0;
}

void store_free(struct store *st)
{
	size_t i;

	if (st == NULL)
		return;
	for (i = 0; i < st->slot_count; i++)
		store_kill_slot(st, i);
	pthread_mutex_destroy(&st->lock);
	free(st->slots);
	free(st);
}

void store_set_listener(struct store *st, store_listener fn, void *arg)
{
	pthread_mutex_lock(&st->lock);
	st->listener = fn;
	st->listener_arg = arg;
	pthread_mutex_unlock(&st->lock);
}

size_t store_slot_count(const struct store *st)
{
	return st->slot_count;
}

const struct store_slot_info *store_slot_info(const struct store *st,
					      size_t slot)
{
	return slot < st->slot_count ? &st->slots[slot].info : NULL;
}

int store_slot_find(const struct store *st, const char *name)
{
	size_t i;

	for (i = 0; i < st->slot_count; i++)
		if (strcmp(st->slots[i].info.name, name) == 0)
			return (int)i;
	return -ENOENT;
}

static void store_notify(struct store *st, size_t slot)
{
	store_listener fn;
	void *arg;

	pthread_mutex_lock(&st->lock);
	fn = st->listener;
	arg = st->listener_arg;
	pthread_mutex_unlock(&st->lock);
	if (fn != NULL)
		fn(arg, slot);
}

/* Moves the orphans only the store still references into release. */
static size_t store_sweep_orphans(struct store_slot *s,
				  struct version **release)
{
	size_t i, kept = 0, n = 0;

	for (i = 0; i < s->orphan_count; i++) {
		if (atomic_load(&s->orphans[i]->refs) == 1)
			release[n++] = s->orphans[i];
		else
			s->orphans[kept++] = s->orphans[i];
	}
	s->orphan_count = kept;
	return n;
}

/* The oldest listed version leaves the listing: released when no reader
 * pins it, else kept as an orphan.  With the orphan table full the oldest
 * orphan is killed: its readers get EIO, the bytes do not linger. */
static void store_push_out(struct store_slot *s, struct version **release,
			   size_t *nrelease, struct version **kill)
{
	struct version *old = s->versions[0];

	memmove(&s->versions[0], &s->versions[1],
		(STORE_KEEP_VERSIONS - 1) * sizeof(s->versions[0]));
	s->version_count--;
	*nrelease += store_sweep_orphans(s, release + *nrelease);
	if (atomic_load(&old->refs) == 1) {
		release[(*nrelease)++] = old;
		return;
	}
	if (s->orphan_count == STORE_MAX_ORPHANS) {
		*kill = s->orphans[0];
		memmove(&s->orphans[0], &s->orphans[1],
			(STORE_MAX_ORPHANS - 1) * sizeof(s->orphans[0]));
		s->orphan_count--;
	}
	s->orphans[s->orphan_count++] = old;
}

int store_publish(struct store *st, size_t slot, struct version *v)
{
	struct version *release[STORE_MAX_ORPHANS + 1], *kill = NULL;
	size_t i, nrelease = 0;
	struct store_slot *s;

	if (slot >= st->slot_count)
		return -EINVAL;
	s = &st->slots[slot];
	pthread_mutex_lock(&st->lock);
	if (s->version_count > 0 &&
	    s->versions[s->version_count - 1]->seq >= v->seq) {
		pthread_mutex_unlock(&st->lock);
		return -EINVAL;
	}
	if (s->version_count == STORE_KEEP_VERSIONS)
		store_push_out(s, release, &nrelease, &kill);
	s->versions[s->version_count++] = version_ref(v);
	pthread_mutex_unlock(&st->lock);
	for (i = 0; i < nrelease; i++)
		version_unref(release[i]);
	if (kill != NULL) {
		version_kill(kill);
		version_unref(kill);
	}
	store_notify(st, slot);
	return 0;
}

struct version *store_pin_current(struct store *st, size_t slot)
{
	uint64_t now = clock_mono(st->clk);
	struct version *v = NULL;
	struct store_slot *s;

	if (slot >= st->slot_count)
		return NULL;
	s = &st->slots[slot];
	pthread_mutex_lock(&st->lock);
	if (s->version_count > 0 &&
	    version_live(s->versions[s->version_count - 1], now))
		v = version_ref(s->versions[s->version_count - 1]);
	pthread_mutex_unlock(&st->lock);
	return v;
}

struct version *store_pin_seq(struct store *st, size_t slot, uint64_t seq)
{
	uint64_t now = clock_mono(st->clk);
	struct version *v = NULL;
	struct store_slot *s;
	size_t i;

	if (slot >= st->slot_count)
		return NULL;
	s = &st->slots[slot];
	pthread_mutex_lock(&st->lock);
	for (i = 0; i < s->version_count; i++)
		if (s->versions[i]->seq == seq &&
		    version_live(s->versions[i], now))
			v = version_ref(s->versions[i]);
	pthread_mutex_unlock(&st->lock);
	return v;
}

size_t store_list_versions(struct store *st, size_t slot, uint64_t *seqs,
			   size_t max)
{
	uint64_t now = clock_mono(st->clk);
	struct store_slot *s;
	size_t i, n = 0;

	if (slot >= st->slot_count)
		return 0;
	s = &st->slots[slot];
	pthread_mutex_lock(&st->lock);
	for (i = 0; i < s->version_count && n < max; i++)
		if (version_live(s->versions[i], now))
			seqs[n++] = s->versions[i]->seq;
	pthread_mutex_unlock(&st->lock);
	return n;
}

static bool store_matches(const struct version *v, enum store_match match,
			  uint64_t seq, uint64_t now)
{
	switch (match) {
	case STORE_MATCH_UPTO:
		return v->seq <= seq;
	case STORE_MATCH_EXPIRED:
		return v->expires <= now;
	default:
		return true;
	}
}

/* Moves the matching versions of table[0..*count) into taken. */
static size_t store_take_from(struct version **table, size_t *count,
			      enum store_match match, uint64_t seq,
			      uint64_t now, struct version **taken)
{
	size_t i, kept = 0, n = 0;

	for (i = 0; i < *count; i++) {
		if (store_matches(table[i], match, seq, now))
			taken[n++] = table[i];
		else
			table[kept++] = table[i];
	}
	*count = kept;
	return n;
}

/* Takes the matching listed versions and orphans out of slot, then kills
 * them outside the mutex; returns how many listed ones were taken (orphans
 * are not visible, so they are not counted). */
static size_t store_take(struct store *st, size_t slot, enum store_match match,
			 uint64_t seq)
{
	struct version *taken[STORE_MAX_HELD];
	uint64_t now = clock_mono(st->clk);
	struct store_slot *s;
	size_t i, listed, n;

	if (slot >= st->slot_count)
		return 0;
	s = &st->slots[slot];
	pthread_mutex_lock(&st->lock);
	listed = store_take_from(s->versions, &s->version_count, match, seq,
				 now, taken);
	n = listed + store_take_from(s->orphans, &s->orphan_count, match, seq,
				     now, taken + listed);
	pthread_mutex_unlock(&st->lock);
	for (i = 0; i < n; i++) {
		version_kill(taken[i]);
		version_unref(taken[i]);
	}
	if (listed > 0)
		store_notify(st, slot);
	return listed;
}

void store_kill_slot(struct store *st, size_t slot)
{
	(void)store_take(st, slot, STORE_MATCH_ALL, 0);
}

size_t store_kill_upto(struct store *st, size_t slot, uint64_t seq)
{
	return store_take(st, slot, STORE_MATCH_UPTO, seq);
}

size_t store_expire(struct store *st, size_t slot)
{
	return store_take(st, slot, STORE_MATCH_EXPIRED, 0);
}

/* Under the store lock, so that expiry (store_matches) sees the new value;
 * under each version's write lock, so that a read does too. */
static size_t store_extend_table(struct version **table, size_t count,
				 uint64_t from_seq, uint64_t expires)
{
	size_t i, n = 0;

	for (i = 0; i < count; i++) {
		struct version *v = table[i];

		if (v->seq < from_seq)
			continue;
		pthread_rwlock_wrlock(&v->lock);
		if (!v->dead && v->expires < expires) {
			v->expires = expires;
			n++;
		}
		pthread_rwlock_unlock(&v->lock);
	}
	return n;
}

size_t store_extend(struct store *st, size_t slot, uint64_t from_seq,
		    uint64_t expires)
{
	struct store_slot *s;
	size_t n;

	if (slot >= st->slot_count)
		return 0;
	s = &st->slots[slot];
	pthread_mutex_lock(&st->lock);
	n = store_extend_table(s->versions, s->version_count, from_seq,
			       expires);
	n += store_extend_table(s->orphans, s->orphan_count, from_seq, expires);
	pthread_mutex_unlock(&st->lock);
	return n;
}
