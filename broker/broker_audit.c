/* The broker's side of the audit log: what each event's record holds,
 * file opens reported by the FUSE thread (coalesced per process and file
 * over a minute, denials never), and the per-secret reader table an
 * incident record reports as the blast radius.  Records carry names,
 * versions, lease ids, uids and pids, never a value. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker_int.h"

#define ACCESS_WINDOW_USEC (60ULL * USEC_PER_SEC)

/* "comm" of pid, printable; "" when it cannot be read (another pid
 * namespace, or the process is gone). */
static void broker_comm_of(pid_t pid, char *buf, size_t size)
{
	char path[64];
	ssize_t n = 0;
	size_t i;
	int fd;

	buf[0] = '\0';
	if (pid <= 0)
		return;
	(void)snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, buf, size - 1);
		close(fd);
	}
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	for (i = 0; buf[i] != '\0'; i++)
		if (buf[i] < 0x20 || buf[i] >= 0x7f || buf[i] == '"')
			buf[i] = '?';
}

json_t *broker_actor_scheduler(void)
{
	return json_pack("{s:s}", "type", "scheduler");
}

json_t *broker_actor_process(const char *type, uid_t uid, pid_t pid,
			     const char *comm)
{
	return json_pack("{s:s, s:I, s:I, s:s}", "type", type, "uid",
			 (json_int_t)uid, "pid", (json_int_t)pid, "comm", comm);
}

void broker_audit(struct broker *b, const char *event, json_t *actor,
		  json_t *object, int r, const char *error, json_t *extra)
{
	json_t *rec = json_pack("{s:s, s:o, s:o, s:s}", "event", event, "actor",
				actor ? actor : json_null(), "object",
				object ? object : json_object(), "result",
				r == 0	       ? "ok"
				: r == -EACCES ? "denied"
					       : "failed");

	if (rec != NULL && r != 0 && error != NULL && error[0] != '\0')
		(void)json_object_set_new(rec, "error", json_string(error));
	if (rec != NULL && extra != NULL)
		(void)json_object_update(rec, extra);
	json_decref(extra);
	if (rec == NULL || audit_write(b->audit, rec) < 0)
		log_warnx("event=audit_write_failed audit_event=%s", event);
}

void broker_audit_secret(struct broker *b, const char *event,
			 const struct broker_secret *s, const struct lease *l,
			 int r, const char *error)
{
	json_t *object =
	    json_pack("{s:s, s:s, s:I, s:s}", "secret", s->cfg->name, "backend",
		      s->ops->type, "version", (json_int_t)s->version_seq,
		      "lease_id", l != NULL ? l->id : "");

	broker_audit(b, event, broker_actor_scheduler(), object, r, error,
		     NULL);
}

/* ---- opens and readers ---- */

int broker_access_init(struct broker *b)
{
	struct broker_access *a = &b->access;

	pthread_mutex_init(&a->lock, NULL);
	a->readers = calloc(b->cfg->secret_count ? b->cfg->secret_count : 1,
			    sizeof(*a->readers));
	return a->readers == NULL ? -ENOMEM : 0;
}

void broker_access_free(struct broker *b)
{
	size_t i;

	for (i = 0; i < b->cfg->secret_count; i++)
		free(b->access.readers[i].r);
	free(b->access.readers);
	b->access.readers = NULL;
	pthread_mutex_destroy(&b->access.lock);
}

static json_t *broker_open_object(const struct broker *b, size_t slot,
				  const char *file, uint64_t version)
{
	return json_pack("{s:s, s:s, s:I}", "secret",
			 b->cfg->secrets[slot].name, "file", file, "version",
			 (json_int_t)version);
}

/* The repeats of a coalesced open, as one record. */
static void broker_open_flush_one(struct broker *b, struct access_open *o)
{
	char first[40], last[40];

	if (o->repeats > 0) {
		clock_format_rfc3339(o->first_wall, first, sizeof(first));
		clock_format_rfc3339(o->last_wall, last, sizeof(last));
		broker_audit(
		    b, "open",
		    broker_actor_process("process", o->uid, o->pid, o->comm),
		    broker_open_object(b, o->slot, o->file, o->last_version), 0,
		    NULL,
		    json_pack("{s:I, s:b, s:s, s:s}", "count",
			      (json_int_t)o->repeats, "coalesced", 1, "first",
			      first, "last", last));
	}
	o->used = false;
}

/* Writes the records of every window that has closed (all of them when
 * all is set).  Called with access.lock held. */
static void broker_open_flush(struct broker *b, uint64_t now, bool all)
{
	size_t i;

	for (i = 0; i < BROKER_ACCESS_MAX_OPEN; i++)
		if (b->access.open[i].used &&
		    (all ||
		     b->access.open[i].window_start + ACCESS_WINDOW_USEC <=
			 now))
			broker_open_flush_one(b, &b->access.open[i]);
}

void broker_access_flush(struct broker *b)
{
	pthread_mutex_lock(&b->access.lock);
	broker_open_flush(b, clock_mono(b->clk), true);
	pthread_mutex_unlock(&b->access.lock);
}

/* A repeat within the window only counts; a first open is written at once
 * and opens a window.  A full table flushes its oldest window early. */
/* The comm of an open's process, read from /proc only when a record or a
 * new reader needs it: a process re-opening its file (coalesced) costs no
 * /proc read on the FUSE thread. */
struct broker_lazy_comm {
	pid_t pid;
	bool have;
	char buf[32];
};

static const char *broker_lazy_comm(struct broker_lazy_comm *c)
{
	if (!c->have) {
		broker_comm_of(c->pid, c->buf, sizeof(c->buf));
		c->have = true;
	}
	return c->buf;
}

static bool broker_open_coalesce(struct broker *b, const struct fs_access *ev,
				 struct broker_lazy_comm *comm, uint64_t now,
				 int64_t wall)
{
	struct access_open *o, *free_slot = NULL, *oldest = NULL;
	size_t i;

	for (i = 0; i < BROKER_ACCESS_MAX_OPEN; i++) {
		o = &b->access.open[i];
		if (!o->used) {
			free_slot = free_slot ? free_slot : o;
			continue;
		}
		if (o->slot == ev->slot && o->uid == ev->uid &&
		    o->pid == ev->pid && strcmp(o->file, ev->file) == 0) {
			o->repeats++;
			o->last_wall = wall;
			o->last_version = ev->version;
			return true;
		}
		if (oldest == NULL || o->window_start < oldest->window_start)
			oldest = o;
	}
	if (free_slot == NULL) {
		broker_open_flush_one(b, oldest);
		free_slot = oldest;
	}
	memset(free_slot, 0, sizeof(*free_slot));
	free_slot->used = true;
	free_slot->slot = ev->slot;
	(void)snprintf(free_slot->file, sizeof(free_slot->file), "%s",
		       ev->file);
	(void)snprintf(free_slot->comm, sizeof(free_slot->comm), "%s",
		       broker_lazy_comm(comm));
	free_slot->uid = ev->uid;
	free_slot->pid = ev->pid;
	free_slot->window_start = now;
	free_slot->first_wall = free_slot->last_wall = wall;
	free_slot->last_version = ev->version;
	return false;
}

/* The blast radius: which process read which versions, and when. */
static void broker_note_reader(struct broker *b, const struct fs_access *ev,
			       struct broker_lazy_comm *comm, int64_t wall)
{
	struct access_readers *t = &b->access.readers[ev->slot];
	struct access_reader *r = NULL;
	size_t i, cap;

	for (i = 0; i < t->count && r == NULL; i++)
		if (t->r[i].uid == ev->uid && t->r[i].pid == ev->pid)
			r = &t->r[i];
	if (r == NULL && t->count == t->cap) {
		/* Grown on demand: most secrets have one or two readers, and
		 * a full table per secret cost 13 KiB each. */
		cap = t->cap ? t->cap * 2 : 2;
		if (cap > BROKER_ACCESS_MAX_READERS)
			cap = BROKER_ACCESS_MAX_READERS;
		r = t->count < cap ? realloc(t->r, cap * sizeof(*r)) : NULL;
		if (r == NULL) {
			t->dropped++;
			return;
		}
		t->r = r;
		t->cap = cap;
		r = NULL;
	}
	if (r == NULL) {
		r = &t->r[t->count++];
		memset(r, 0, sizeof(*r));
		r->uid = ev->uid;
		r->pid = ev->pid;
		(void)snprintf(r->comm, sizeof(r->comm), "%s",
			       broker_lazy_comm(comm));
		r->first_wall = wall;
	}
	r->last_wall = wall;
	r->opens++;
	for (i = 0; i < r->version_count; i++)
		if (r->versions[i] == ev->version)
			return;
	if (r->version_count < BROKER_ACCESS_MAX_VERSIONS)
		r->versions[r->version_count++] = ev->version;
}

void broker_on_access(void *arg, const struct fs_access *ev)
{
	struct broker *b = arg;
	uint64_t now = clock_mono(b->clk);
	int64_t wall = clock_wall(b->clk);
	struct broker_lazy_comm comm = {.pid = ev->pid};
	bool coalesced = false;

	pthread_mutex_lock(&b->access.lock);
	broker_open_flush(b, now, false);
	if (ev->allowed) {
		coalesced = broker_open_coalesce(b, ev, &comm, now, wall);
		broker_note_reader(b, ev, &comm, wall);
	}
	if (!coalesced)
		broker_audit(
		    b, "open",
		    broker_actor_process("process", ev->uid, ev->pid,
					 broker_lazy_comm(&comm)),
		    broker_open_object(b, ev->slot, ev->file, ev->version),
		    ev->allowed ? 0 : -EACCES,
		    ev->allowed ? NULL : "not a reader of this secret",
		    json_pack("{s:I}", "gid", (json_int_t)ev->gid));
	pthread_mutex_unlock(&b->access.lock);
}

json_t *broker_blast_radius(struct broker *b, size_t slot)
{
	struct access_readers *t;
	json_t *list = json_array(), *versions;
	char first[40], last[40];
	size_t i, j;

	pthread_mutex_lock(&b->access.lock);
	t = &b->access.readers[slot];
	for (i = 0; list != NULL && i < t->count; i++) {
		versions = json_array();
		for (j = 0; versions && j < t->r[i].version_count; j++)
			(void)json_array_append_new(
			    versions,
			    json_integer((json_int_t)t->r[i].versions[j]));
		clock_format_rfc3339(t->r[i].first_wall, first, sizeof(first));
		clock_format_rfc3339(t->r[i].last_wall, last, sizeof(last));
		(void)json_array_append_new(
		    list, json_pack("{s:I, s:I, s:s, s:o, s:I, s:s, s:s}",
				    "uid", (json_int_t)t->r[i].uid, "pid",
				    (json_int_t)t->r[i].pid, "comm",
				    t->r[i].comm, "versions", versions, "opens",
				    (json_int_t)t->r[i].opens, "first", first,
				    "last", last));
	}
	pthread_mutex_unlock(&b->access.lock);
	return list;
}
