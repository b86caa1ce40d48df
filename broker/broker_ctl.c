/* The control-socket commands: status, ls, rotate, revoke, unfreeze, ready.
 * Replies carry names, versions, lease ids and times, never a secret
 * value. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "broker_int.h"
#include "freeze.h"
#include "log.h"

static const char *const state_names[] = {
    [SECRET_PENDING] = "pending",
    [SECRET_ACTIVE] = "active",
    [SECRET_FROZEN] = "frozen",
};

static json_t *reply_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static json_t *reply_error(const char *fmt, ...)
{
	char text[256];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	return json_pack("{s:b, s:s}", "ok", 0, "error", text);
}

static json_t *secret_status(struct broker *b, const struct broker_secret *s)
{
	char issued[40] = "", expires[40] = "";
	json_t *obj;

	if (s->has_lease) {
		clock_format_rfc3339(s->lease.issued_wall, issued,
				     sizeof(issued));
		if (s->lease.expires_wall != LEASE_NO_EXPIRY)
			clock_format_rfc3339(s->lease.expires_wall, expires,
					     sizeof(expires));
		else
			(void)snprintf(expires, sizeof(expires), "never");
	}
	obj = json_pack(
	    "{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:I, s:I, s:I, "
	    "s:I, s:s}",
	    "name", s->cfg->name, "backend",
	    b->cfg->backends[s->cfg->backend].name, "state",
	    state_names[s->state], "version", (json_int_t)s->version_seq,
	    "lease_id", s->has_lease ? s->lease.id : "", "issued", issued,
	    "expires", expires, "failures", (json_int_t)s->failures,
	    "rotations", (json_int_t)s->rotations, "renewals",
	    (json_int_t)s->renewals, "retired_pending",
	    (json_int_t)s->retired_count, "last_error", s->last_error);
	return obj;
}

static json_t *cmd_status(struct broker *b, const struct control_peer *peer,
			  const json_t *req)
{
	json_t *list = json_array();
	size_t i;

	if (list == NULL)
		return NULL;
	pthread_mutex_lock(&b->lock);
	for (i = 0; i < b->cfg->secret_count; i++)
		(void)json_array_append_new(list,
					    secret_status(b, &b->secrets[i]));
	pthread_mutex_unlock(&b->lock);
	return json_pack("{s:b, s:s, s:o}", "ok", 1, "mount",
			 b->cfg->mount_path, "secrets", list);
}

static json_t *cmd_ls(struct broker *b, const struct control_peer *peer,
		      const json_t *req)
{
	json_t *list = json_array(), *files;
	struct version *v;
	size_t i, j;

	if (list == NULL)
		return NULL;
	for (i = 0; i < b->cfg->secret_count; i++) {
		files = json_array();
		v = store_pin_current(b->store, i);
		for (j = 0; v != NULL && j < version_file_count(v); j++)
			if (version_has_file(v, j))
				(void)json_array_append_new(
				    files,
				    json_pack(
					"{s:s, s:I}", "name",
					version_file_name(v, j), "size",
					(json_int_t)version_file_size(v, j)));
		(void)json_array_append_new(
		    list, json_pack("{s:s, s:I, s:o}", "name",
				    b->cfg->secrets[i].name, "version",
				    (json_int_t)(v ? version_seq(v) : 0),
				    "files", files));
		version_unref(v);
	}
	return json_pack("{s:b, s:s, s:o}", "ok", 1, "mount",
			 b->cfg->mount_path, "secrets", list);
}

static int find_slot(struct broker *b, const json_t *req, const char **name)
{
	const json_t *jname = json_object_get(req, "name");

	*name = json_is_string(jname) ? json_string_value(jname) : "";
	return store_slot_find(b->store, *name);
}

/* The incident record is the reply: what was revoked, confirmations,
 * timings, reason, who asked, and the blast radius. */
static json_t *cmd_revoke(struct broker *b, const struct control_peer *peer,
			  const json_t *req)
{
	const json_t *reason = json_object_get(req, "reason");
	struct revoke_request rq = {
	    .all = json_is_true(json_object_get(req, "all")),
	    .verify = json_is_true(json_object_get(req, "verify")),
	    .persist = true,
	    .uid = peer->uid,
	    .pid = peer->pid,
	    .comm = peer->comm,
	};
	json_t *record = NULL;
	const char *name = "";
	int slot = 0;

	if (reason != NULL &&
	    (!json_is_string(reason) || json_string_length(reason) > 512))
		return reply_error("reason: a string of at most 512 bytes");
	rq.reason = json_string_value(reason);
	if (!rq.all)
		slot = find_slot(b, req, &name);
	if (slot < 0)
		return reply_error("no secret named \"%.64s\"", name);
	rq.slot = (size_t)slot;
	(void)broker_revoke(b, &rq, &record);
	/* 256 secrets with 64 readers each would not fit in one reply. */
	if (record != NULL)
		broker_fit_record(record, CONTROL_MAX_REPLY - 4096);
	return record;
}

static json_t *cmd_unfreeze(struct broker *b, const struct control_peer *peer,
			    const json_t *req)
{
	struct errmsg err = {{0}};
	int saved;
	struct broker_secret *s;
	const char *name;
	int slot = find_slot(b, req, &name);

	if (slot < 0)
		return reply_error("no secret named \"%.64s\"", name);
	s = &b->secrets[slot];
	if (broker_wake_backend(b, s->cfg->backend, &err) < 0)
		return reply_error("secret \"%.64s\": backend %s cannot log "
				   "in: %s",
				   name, b->cfg->backends[s->cfg->backend].name,
				   err.text);
	pthread_mutex_lock(&b->lock);
	if (s->state != SECRET_FROZEN) {
		pthread_mutex_unlock(&b->lock);
		return reply_error("secret \"%.64s\" is not frozen", name);
	}
	s->state = SECRET_PENDING;
	s->failures = 0;
	(void)broker_schedule(b, (size_t)slot, SCHED_REFRESH,
			      clock_mono(b->clk), 0);
	(void)json_object_del(b->frozen, name);
	saved = freeze_save(b->cfg->state_file, b->frozen, &err);
	pthread_mutex_unlock(&b->lock);
	if (saved < 0)
		log_warnx("event=freeze_not_saved error=\"%s\"", err.text);
	broker_audit(
	    b, "unfreeze",
	    broker_actor_process("responder", peer->uid, peer->pid, peer->comm),
	    json_pack("{s:s}", "secret", name), 0, NULL, NULL);
	log_info("event=unfrozen secret=%s", name);
	return json_pack("{s:b, s:s}", "ok", 1, "name", name);
}

/* Waits (bounded) until the rotation publishes or fails, so the command's
 * answer says which. */
static json_t *cmd_rotate(struct broker *b, const struct control_peer *peer,
			  const json_t *req)
{
	uint64_t deadline, before_rot, before_fail;
	struct broker_secret *s;
	struct timespec ts;
	const char *name;
	int slot = find_slot(b, req, &name);
	json_t *reply;
	bool rotated;

	if (slot < 0)
		return reply_error("no secret named \"%.64s\"", name);
	s = &b->secrets[slot];
	pthread_mutex_lock(&b->lock);
	if (s->state == SECRET_FROZEN) {
		pthread_mutex_unlock(&b->lock);
		return reply_error(
		    "secret \"%.64s\" is frozen: unfreeze it first", name);
	}
	before_rot = s->rotations;
	before_fail = s->failures;
	s->force_rotate = true;
	(void)broker_schedule(b, (size_t)slot, SCHED_REFRESH,
			      clock_mono(b->clk), 0);
	deadline = clock_mono(clock_system()) + BROKER_ROTATE_WAIT_USEC;
	ts.tv_sec = (time_t)(deadline / USEC_PER_SEC);
	ts.tv_nsec = (long)(deadline % USEC_PER_SEC) * 1000;
	while (s->rotations == before_rot && s->failures == before_fail &&
	       s->state != SECRET_FROZEN && !b->stopping &&
	       pthread_cond_timedwait(&b->changed, &b->lock, &ts) != ETIMEDOUT)
		;
	rotated = s->rotations != before_rot;
	if (rotated)
		reply = json_pack("{s:b, s:s, s:I, s:s}", "ok", 1, "name", name,
				  "version", (json_int_t)s->version_seq,
				  "lease_id", s->lease.id);
	else
		reply = json_pack(
		    "{s:b, s:s}", "ok", 0, "error",
		    s->state == SECRET_FROZEN ? "revoked while rotating"
		    : s->last_error[0]	      ? s->last_error
					      : "rotation still pending");
	pthread_mutex_unlock(&b->lock);
	/* The kernel may still hold the previous version's names (the
	 * invalidations run on their own thread): the answer waits until
	 * they are gone, so a read after it sees the new version.  Not under
	 * b->lock: a notification may wait on a FUSE request in flight. */
	if (rotated && b->fs != NULL &&
	    fs_flush_invalidations(b->fs, BROKER_HIDE_FLUSH_MS) < 0)
		log_warnx("event=rotate_flush msg=\"the kernel's cache was not "
			  "dropped within %d ms; it will be\"",
			  BROKER_HIDE_FLUSH_MS);
	return reply;
}

static json_t *cmd_ready(struct broker *b, const struct control_peer *peer,
			 const json_t *req)
{
	json_t *missing = json_array();
	size_t i;

	if (missing == NULL)
		return NULL;
	pthread_mutex_lock(&b->lock);
	for (i = 0; i < b->cfg->secret_count; i++)
		if (b->secrets[i].state != SECRET_ACTIVE)
			(void)json_array_append_new(
			    missing, json_string(b->secrets[i].cfg->name));
	pthread_mutex_unlock(&b->lock);
	return json_pack("{s:b, s:b, s:o}", "ok", 1, "ready",
			 json_array_size(missing) == 0, "missing", missing);
}

static const struct {
	const char *name;
	json_t *(*run)(struct broker *b, const struct control_peer *peer,
		       const json_t *req);
} commands[] = {
    {"status", cmd_status},	{"ls", cmd_ls},		{"revoke", cmd_revoke},
    {"unfreeze", cmd_unfreeze}, {"rotate", cmd_rotate}, {"ready", cmd_ready},
};

static void broker_audit_command(struct broker *b,
				 const struct control_peer *peer,
				 const char *cmd, const json_t *request, int r)
{
	const json_t *name = json_object_get(request, "name");

	broker_audit(
	    b, "control",
	    broker_actor_process("responder", peer->uid, peer->pid, peer->comm),
	    json_pack("{s:s, s:s}", "command", cmd, "secret",
		      json_is_string(name) ? json_string_value(name) : ""),
	    r, r == -EACCES ? "not a responder" : NULL, NULL);
}

json_t *broker_control(void *arg, const struct control_peer *peer,
		       const json_t *request)
{
	const json_t *jcmd = json_object_get(request, "cmd");
	const char *cmd = json_is_string(jcmd) ? json_string_value(jcmd) : "";
	struct broker *b = arg;
	size_t i;

	if (request == NULL) {
		broker_audit_command(b, peer, "(refused)", NULL, -EACCES);
		return NULL;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(commands[i].name, cmd) != 0)
			continue;
		log_info("event=control cmd=%s uid=%u pid=%d comm=\"%s\"", cmd,
			 (unsigned)peer->uid, (int)peer->pid, peer->comm);
		broker_audit_command(b, peer, cmd, request, 0);
		return commands[i].run(b, peer, request);
	}
	log_warnx("event=control_unknown uid=%u pid=%d", (unsigned)peer->uid,
		  (int)peer->pid);
	broker_audit_command(b, peer, "(unknown)", request, -EINVAL);
	return reply_error("unknown command \"%.40s\"", cmd);
}
