/* Revocation, in the order a responder's runbook needs (invariant 5):
 * every target secret is hidden and frozen first, then its leases are
 * revoked upstream in parallel (each call bounded by its backend's own
 * timeouts, so a hung upstream delays only its own answer), then the
 * backends' identities (revoke --all), then the proof (--verify), then the
 * credential bytes are wiped, the freeze saved, the hooks run and the
 * incident record written to the audit log and returned. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker_int.h"
#include "freeze.h"
#include "log.h"

#define REVOKE_PARALLEL 32

/* One lease to revoke, and what came of it. */
struct revoke_job {
	struct broker *b;
	size_t slot;
	struct lease lease;
	struct kv values; /* the current credential's, for --verify only */
	bool verify;
	int r;
	char error[ERRMSG_MAX];
	uint64_t ms;
	int verify_r;
	char verify_detail[ERRMSG_MAX];
};

struct revoke_plan {
	size_t count, capacity;
	struct revoke_job *jobs;
};

static int broker_plan_add(struct revoke_plan *p, struct broker *b, size_t slot,
			   const struct lease *lease, struct kv *values,
			   bool verify)
{
	struct revoke_job *grown, *j;
	size_t cap;

	if (p->count == p->capacity) {
		cap = p->capacity ? 2 * p->capacity : 16;
		grown = realloc(p->jobs, cap * sizeof(*grown));
		if (grown == NULL)
			return -ENOMEM;
		p->jobs = grown;
		p->capacity = cap;
	}
	j = &p->jobs[p->count++];
	memset(j, 0, sizeof(*j));
	j->b = b;
	j->slot = slot;
	j->lease = *lease;
	j->verify = verify;
	if (values != NULL) {
		j->values = *values;
		values->count = 0;
	}
	return 0;
}

static void broker_cancel_jobs(struct broker *b, size_t slot)
{
	(void)sched_cancel(b->sched, (uint32_t)slot, SCHED_REFRESH);
	(void)sched_cancel(b->sched, (uint32_t)slot, SCHED_EXPIRE);
	(void)sched_cancel(b->sched, (uint32_t)slot, SCHED_RETIRE);
}

/* Freezes slot and moves its leases (and, for verification, the current
 * values) into the plan.  Called with b->lock held.  Out of memory, the
 * leases stay known to the backend's revoke_all. */
static int broker_take_slot(struct broker *b, size_t slot, bool verify,
			    struct revoke_plan *p)
{
	struct broker_secret *s = &b->secrets[slot];
	size_t i;
	int r = 0;

	s->state = SECRET_FROZEN;
	s->generation++;
	s->force_rotate = false;
	if (s->has_lease)
		r = broker_plan_add(p, b, slot, &s->lease,
				    verify ? &s->values : NULL, verify);
	for (i = 0; r == 0 && i < s->retired_count; i++)
		r = broker_plan_add(p, b, slot, &s->retired[i].lease, NULL,
				    verify);
	s->has_lease = false;
	s->retired_count = 0;
	kv_clear(&s->values);
	broker_cancel_jobs(b, slot);
	pthread_cond_broadcast(&b->changed);
	return r;
}

static void *broker_revoke_one(void *arg)
{
	struct revoke_job *j = arg;
	struct broker_secret *s = &j->b->secrets[j->slot];
	uint64_t start = clock_mono(j->b->clk);
	struct errmsg err = {{0}};

	j->r = s->ops->revoke(s->backend, &j->lease, &err);
	j->ms = (clock_mono(j->b->clk) - start) / 1000;
	(void)snprintf(j->error, sizeof(j->error), "%s", err.text);
	if (j->verify && j->r == 0) {
		err.text[0] = '\0';
		j->verify_r =
		    s->ops->verify == NULL
			? -ENOTSUP
			: s->ops->verify(s->backend, &j->lease, &j->values,
					 j->verify_detail, &err);
		if (j->verify_r < 0)
			(void)snprintf(
			    j->verify_detail, sizeof(j->verify_detail), "%s",
			    j->verify_r == -ENOTSUP && err.text[0] == '\0'
				? "the backend cannot verify"
				: err.text);
	}
	kv_clear(&j->values);
	return NULL;
}

/* In waves of REVOKE_PARALLEL threads; a job whose thread cannot start
 * runs here. */
static void broker_run_plan(struct revoke_plan *p)
{
	pthread_t threads[REVOKE_PARALLEL];
	bool started[REVOKE_PARALLEL];
	size_t base, i, n;

	for (base = 0; base < p->count; base += REVOKE_PARALLEL) {
		n = p->count - base < REVOKE_PARALLEL ? p->count - base
						      : REVOKE_PARALLEL;
		for (i = 0; i < n; i++)
			started[i] =
			    pthread_create(&threads[i], NULL, broker_revoke_one,
					   &p->jobs[base + i]) == 0;
		for (i = 0; i < n; i++) {
			if (started[i])
				pthread_join(threads[i], NULL);
			else
				(void)broker_revoke_one(&p->jobs[base + i]);
		}
	}
}

static json_t *broker_job_json(const struct revoke_job *j)
{
	json_t *o =
	    json_pack("{s:s, s:b, s:s, s:I}", "lease_id", j->lease.id,
		      "confirmed", j->r == 0, "error",
		      j->r == 0 ? "" : j->error, "ms", (json_int_t)j->ms);

	if (o != NULL && j->verify)
		(void)json_object_set_new(
		    o, "verified",
		    json_pack("{s:b, s:s}", "ok", j->r == 0 && j->verify_r == 0,
			      "detail",
			      j->r == 0 ? j->verify_detail
					: "not revoked, so not verified"));
	return o;
}

/* Logs and audits each lease's outcome; unconfirmed ones are retried. */
static bool broker_plan_outcome(struct broker *b, const struct revoke_plan *p,
				const struct revoke_request *rq)
{
	const struct revoke_job *j;
	bool confirmed = true;
	size_t i;

	for (i = 0; i < p->count; i++) {
		j = &p->jobs[i];
		broker_audit(
		    b, "revoke",
		    broker_actor_process(rq->by_broker ? "broker" : "responder",
					 rq->uid, rq->pid, rq->comm),
		    json_pack("{s:s, s:s}", "secret",
			      b->cfg->secrets[j->slot].name, "lease_id",
			      j->lease.id),
		    j->r, j->error, NULL);
		if (j->r == 0) {
			log_info("event=revoked secret=%s lease=%s ms=%llu",
				 b->cfg->secrets[j->slot].name, j->lease.id,
				 (unsigned long long)j->ms);
			if (j->verify && j->verify_r != 0)
				confirmed = false;
			continue;
		}
		confirmed = false;
		log_warnx("event=revoke_failed secret=%s lease=%s errno=%d "
			  "error=\"%s\"",
			  b->cfg->secrets[j->slot].name, j->lease.id, -j->r,
			  j->error);
		pthread_mutex_lock(&b->lock);
		broker_retire(b, j->slot, &j->lease,
			      clock_mono(b->clk) +
				  sched_backoff(0, broker_random()));
		pthread_mutex_unlock(&b->lock);
	}
	return confirmed;
}

/* Persists the freeze of the targets (unless shutting down), so that a
 * restart after an incident fetches nothing. */
static void broker_persist_freeze(struct broker *b,
				  const struct revoke_request *rq)
{
	char when[40];
	struct errmsg err = {{0}};
	json_t *entry;
	size_t i;
	int r;

	clock_format_rfc3339(clock_wall(b->clk), when, sizeof(when));
	pthread_mutex_lock(&b->lock);
	for (i = 0; i < b->cfg->secret_count; i++) {
		if (!rq->all && i != rq->slot)
			continue;
		entry = json_pack("{s:s, s:s, s:I}", "since", when, "reason",
				  rq->reason ? rq->reason : "", "uid",
				  (json_int_t)rq->uid);
		(void)json_object_set_new(b->frozen, b->cfg->secrets[i].name,
					  entry);
		broker_audit(
		    b, "freeze",
		    broker_actor_process(rq->by_broker ? "broker" : "responder",
					 rq->uid, rq->pid, rq->comm),
		    json_pack("{s:s}", "secret", b->cfg->secrets[i].name), 0,
		    NULL,
		    json_pack("{s:s}", "reason", rq->reason ? rq->reason : ""));
	}
	r = freeze_save(b->cfg->state_file, b->frozen, &err);
	pthread_mutex_unlock(&b->lock);
	if (r < 0)
		log_warnx("event=freeze_not_saved error=\"%s\"", err.text);
}

/* Each target's own on_revoke hooks, then the global ones once for the
 * whole revocation. */
static json_t *broker_revoke_hooks(struct broker *b,
				   const struct revoke_request *rq,
				   bool confirmed)
{
	const char *reason = rq->reason ? rq->reason : "";
	const char *scope = rq->all ? "all" : "secret";
	json_t *results = json_array(), *event;
	char names[4096] = "";
	size_t i, len = 0;

	for (i = 0; results != NULL && i < b->cfg->secret_count; i++) {
		if (!rq->all && i != rq->slot)
			continue;
		if (len < sizeof(names))
			len += (size_t)snprintf(
			    names + len, sizeof(names) - len, "%s%s",
			    len ? "," : "", b->cfg->secrets[i].name);
		event = json_pack("{s:s, s:s, s:s, s:s, s:b, s:I}", "event",
				  "revoke", "secret", b->cfg->secrets[i].name,
				  "reason", reason, "scope", scope, "confirmed",
				  confirmed, "uid", (json_int_t)rq->uid);
		if (event != NULL)
			(void)broker_run_hooks(b, &b->cfg->secrets[i].hooks,
					       true, b->cfg->secrets[i].name,
					       event, results);
		json_decref(event);
	}
	event = json_pack("{s:s, s:s, s:s, s:s, s:b, s:I}", "event", "revoke",
			  "secrets", names, "reason", reason, "scope", scope,
			  "confirmed", confirmed, "uid", (json_int_t)rq->uid);
	if (results != NULL && event != NULL)
		(void)broker_run_hooks(b, &b->cfg->hooks, true, "*", event,
				       results);
	json_decref(event);
	return results;
}

static json_t *broker_secret_report(struct broker *b, size_t slot,
				    const struct revoke_plan *p)
{
	json_t *leases = json_array();
	bool confirmed = true;
	size_t i;

	for (i = 0; leases != NULL && i < p->count; i++) {
		if (p->jobs[i].slot != slot)
			continue;
		confirmed = confirmed && p->jobs[i].r == 0;
		(void)json_array_append_new(leases,
					    broker_job_json(&p->jobs[i]));
	}
	return json_pack("{s:s, s:b, s:o, s:o}", "name",
			 b->cfg->secrets[slot].name, "confirmed", confirmed,
			 "leases", leases, "blast_radius",
			 broker_blast_radius(b, slot));
}

static json_t *broker_incident_record(struct broker *b,
				      const struct revoke_request *rq,
				      const struct revoke_plan *p,
				      json_t *identities, json_t *hooks,
				      bool confirmed, int64_t started,
				      uint64_t hide_ms)
{
	char t0[40], t1[40];
	json_t *secrets = json_array();
	size_t i;

	for (i = 0; secrets != NULL && i < b->cfg->secret_count; i++)
		if (rq->all || i == rq->slot)
			(void)json_array_append_new(
			    secrets, broker_secret_report(b, i, p));
	clock_format_rfc3339(started, t0, sizeof(t0));
	clock_format_rfc3339(clock_wall(b->clk), t1, sizeof(t1));
	return json_pack(
	    "{s:b, s:b, s:s, s:s, s:o, s:s, s:s, s:I, s:I, s:o, s:o*, s:o*}",
	    "ok", 1, "confirmed", confirmed, "scope",
	    rq->all ? "all" : "secret", "reason", rq->reason ? rq->reason : "",
	    "actor",
	    broker_actor_process(rq->by_broker ? "broker" : "responder",
				 rq->uid, rq->pid, rq->comm),
	    "started", t0, "finished", t1, "hidden_ms", (json_int_t)hide_ms,
	    "ms", (json_int_t)((clock_wall(b->clk) - started) / 1000),
	    "revoked", secrets, "identities", identities, "hooks", hooks);
}

/* The record goes to the audit log one secret at a time (each well under
 * a record's size cap, even with a full reader table), then a summary
 * without the per-secret parts. */
static void broker_audit_incident(struct broker *b,
				  const struct revoke_request *rq,
				  const json_t *rec, bool confirmed)
{
	json_t *summary = json_deep_copy(rec), *s;
	size_t i;

	json_array_foreach(json_object_get(rec, "revoked"), i, s)
	{
		broker_audit(
		    b, "incident_secret",
		    broker_actor_process(rq->by_broker ? "broker" : "responder",
					 rq->uid, rq->pid, rq->comm),
		    json_pack("{s:O}", "secret", json_object_get(s, "name")),
		    json_is_true(json_object_get(s, "confirmed")) ? 0 : -EIO,
		    NULL, json_pack("{s:O}", "detail", s));
	}
	if (summary != NULL)
		(void)json_object_set_new(
		    summary, "revoked",
		    json_integer((json_int_t)json_array_size(
			json_object_get(rec, "revoked"))));
	broker_audit(
	    b, "incident",
	    broker_actor_process(rq->by_broker ? "broker" : "responder",
				 rq->uid, rq->pid, rq->comm),
	    NULL, confirmed ? 0 : -EIO, NULL,
	    json_pack("{s:o}", "record", summary));
}

int broker_revoke(struct broker *b, const struct revoke_request *rq,
		  json_t **record)
{
	struct revoke_plan plan = {0, 0, NULL};
	int64_t started = clock_wall(b->clk);
	json_t *identities = NULL, *hooks, *rec;
	uint64_t t0 = clock_mono(b->clk), hide_ms;
	bool confirmed;
	size_t i;
	int r = 0;

	pthread_mutex_lock(&b->lock);
	for (i = 0; i < b->cfg->secret_count; i++)
		if ((rq->all || i == rq->slot) &&
		    broker_take_slot(b, i, rq->verify, &plan) < 0)
			r = -ENOMEM;
	pthread_mutex_unlock(&b->lock);
	for (i = 0; i < b->cfg->secret_count; i++)
		if (rq->all || i == rq->slot)
			store_kill_slot(b->store, i);
	/* The kernel's cached pages too, before anything slower runs. */
	if (fs_flush_invalidations(b->fs, BROKER_HIDE_FLUSH_MS) < 0)
		log_warnx("event=revoke_hide msg=\"the kernel's cache was not "
			  "dropped within %d ms; it will be\"",
			  BROKER_HIDE_FLUSH_MS);
	hide_ms = (clock_mono(b->clk) - t0) / 1000;
	if (rq->persist)
		broker_persist_freeze(b, rq);
	broker_run_plan(&plan);
	confirmed = broker_plan_outcome(b, &plan, rq) && r == 0;
	if (rq->all && broker_revoke_identities(b, &identities) < 0)
		confirmed = false;
	for (i = 0; i < b->cfg->secret_count; i++)
		if (rq->all || i == rq->slot)
			log_info("event=frozen secret=%s confirmed=%s",
				 b->cfg->secrets[i].name,
				 confirmed ? "yes" : "no");
	broker_access_flush(b);
	hooks = rq->persist ? broker_revoke_hooks(b, rq, confirmed) : NULL;
	rec = broker_incident_record(b, rq, &plan, identities, hooks, confirmed,
				     started, hide_ms);
	free(plan.jobs);
	if (rq->persist && rec != NULL)
		broker_audit_incident(b, rq, rec, confirmed);
	if (record != NULL)
		*record = rec;
	else
		json_decref(rec);
	return confirmed ? 0 : -EIO;
}

int broker_revoke_slot(struct broker *b, size_t slot, json_t **result)
{
	struct revoke_request rq = {.slot = slot, .comm = "broker"};

	return broker_revoke(b, &rq, result);
}

/* A revocation noticed upstream (a lease lookup, a renewal) is handled
 * like a responder's, on a thread of its own: the scheduler must not wait
 * for upstream calls and hooks. */
struct upstream_job {
	struct broker *b;
	size_t slot;
	char reason[ERRMSG_MAX + 32];
};

static void *broker_upstream_thread(void *arg)
{
	struct upstream_job *job = arg;
	struct broker *b = job->b;
	struct revoke_request rq = {.slot = job->slot,
				    .reason = job->reason,
				    .persist = true,
				    .uid = geteuid(),
				    .pid = getpid(),
				    .comm = "lease-check",
				    .by_broker = true};
	json_t *record = NULL;

	(void)broker_revoke(b, &rq, &record);
	json_decref(record);
	free(job);
	pthread_mutex_lock(&b->hooks_lock);
	b->hooks_running--;
	pthread_cond_broadcast(&b->hooks_done);
	pthread_mutex_unlock(&b->hooks_lock);
	return NULL;
}

void broker_revoked_upstream(struct broker *b, size_t slot, const char *detail)
{
	struct broker_secret *s = &b->secrets[slot];
	struct upstream_job *job;
	pthread_attr_t attr;
	pthread_t thread;
	int r = -ENOMEM;

	log_warnx("event=revoked_upstream secret=%s lease=%s action=frozen "
		  "detail=\"%s\"",
		  s->cfg->name, s->lease.id, detail);
	/* Out of the mount now; no re-issue meanwhile. */
	s->state = SECRET_FROZEN;
	/* The revoke thread owns every lease of the slot now: an expiry or
	 * retirement firing first would revoke it a second time. */
	broker_cancel_jobs(b, slot);
	store_kill_slot(b->store, slot);
	job = calloc(1, sizeof(*job));
	if (job != NULL) {
		job->b = b;
		job->slot = slot;
		(void)snprintf(job->reason, sizeof(job->reason),
			       "revoked upstream: %s", detail);
		pthread_mutex_lock(&b->hooks_lock);
		b->hooks_running++;
		pthread_mutex_unlock(&b->hooks_lock);
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		r = -pthread_create(&thread, &attr, broker_upstream_thread,
				    job);
		pthread_attr_destroy(&attr);
	}
	if (r < 0 && job != NULL) {
		free(job);
		pthread_mutex_lock(&b->hooks_lock);
		b->hooks_running--;
		pthread_mutex_unlock(&b->hooks_lock);
	}
	if (r < 0)
		log_warnx("event=revoke_not_started secret=%s errno=%d",
			  s->cfg->name, -r);
}

void broker_fit_record(json_t *record, size_t max)
{
	json_t *secret, *radius;
	size_t i;

	if (json_dumpb(record, NULL, 0, JSON_COMPACT) < max)
		return;
	json_array_foreach(json_object_get(record, "revoked"), i, secret)
	{
		radius = json_object_get(secret, "blast_radius");
		(void)json_object_set_new(
		    secret, "blast_radius",
		    json_pack("{s:I, s:s}", "readers",
			      (json_int_t)json_array_size(radius), "omitted",
			      "too large to print: see the audit log's "
			      "incident_secret records"));
	}
	(void)json_object_set_new(record, "truncated", json_true());
}
