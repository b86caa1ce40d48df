/* The broker's lifecycle and its scheduler thread.  Upstream I/O never runs
 * with b->lock held, so the FUSE side and the control socket are never
 * blocked by a slow backend (invariant 3); a revoke that lands while an
 * issue is in flight bumps the secret's generation, and the late credential
 * is revoked instead of published (invariant 5). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "broker_int.h"
#include "freeze.h"
#include "hardening.h"
#include "seccomp.h"
#include "unmounter.h"
#include "fs.h"
#include "log.h"

uint32_t broker_random(void)
{
	uint32_t v = 0;

	if (getrandom(&v, sizeof(v), 0) != sizeof(v))
		v = (uint32_t)clock_mono(clock_system());
	return v;
}

int broker_schedule(struct broker *b, size_t slot, enum sched_kind kind,
		    uint64_t deadline, uint64_t tag)
{
	struct sched_job job = {
	    .deadline = deadline,
	    .slot = (uint32_t)slot,
	    .kind = kind,
	    .tag = tag,
	};
	int r;

	if (kind == SCHED_REFRESH)
		(void)sched_cancel(b->sched, (uint32_t)slot, SCHED_REFRESH);
	r = sched_push(b->sched, &job);
	if (r < 0)
		log_warnx("event=schedule_failed kind=%d slot=%zu errno=%d",
			  (int)kind, slot, -r);
	pthread_cond_signal(&b->wake);
	return r;
}

/* A wall-clock instant as a monotonic deadline, against one reading of
 * both clocks (ref_wall, ref_mono). */
static uint64_t broker_wall_to_mono_at(int64_t wall, int64_t ref_wall,
				       uint64_t ref_mono)
{
	if (wall == LEASE_NO_EXPIRY)
		return UINT64_MAX;
	if (wall <= ref_wall)
		return ref_mono;
	return ref_mono + (uint64_t)(wall - ref_wall);
}

/* Wall-clock instants from upstreams become monotonic deadlines once, here. */
static uint64_t broker_wall_to_mono(struct broker *b, int64_t wall)
{
	return broker_wall_to_mono_at(wall, clock_wall(b->clk),
				      clock_mono(b->clk));
}

/* The lease's deadlines on the monotonic clock, against the clocks as
 * they read when the request went out (the wall times were computed from
 * that reading): a wall clock that jumps during the request or later must
 * not move them. */
static void broker_lease_deadlines(struct broker_secret *s, int64_t ref_wall,
				   uint64_t ref_mono)
{
	s->expires_mono =
	    broker_wall_to_mono_at(s->lease.expires_wall, ref_wall, ref_mono);
	s->max_mono =
	    broker_wall_to_mono_at(s->lease.max_wall, ref_wall, ref_mono);
}

/* After a renewal: the expiry as granted; the max TTL can only come
 * closer, and only when the renewal revealed a new one (a grant shorter
 * than asked).  An unchanged max_wall is not converted again: against a
 * wall clock that jumped forward since the issue it would read as past,
 * and end a live credential at once. */
static void broker_lease_renewed(struct broker_secret *s, int64_t old_max_wall,
				 int64_t ref_wall, uint64_t ref_mono)
{
	uint64_t max;

	s->expires_mono =
	    broker_wall_to_mono_at(s->lease.expires_wall, ref_wall, ref_mono);
	if (s->lease.max_wall != old_max_wall) {
		max = broker_wall_to_mono_at(s->lease.max_wall, ref_wall,
					     ref_mono);
		if (max < s->max_mono)
			s->max_mono = max;
	}
	if (s->expires_mono > s->max_mono)
		s->expires_mono = s->max_mono;
}

static int broker_lease_json(const struct broker_secret *s, uint64_t seq,
			     const struct lease *lease, struct secret **ret)
{
	char issued[40], expires[40], max[40];
	struct secret *text = NULL;
	json_t *obj;
	size_t len;
	int r;

	clock_format_rfc3339(lease->issued_wall, issued, sizeof(issued));
	clock_format_rfc3339(lease->expires_wall, expires, sizeof(expires));
	clock_format_rfc3339(lease->max_wall, max, sizeof(max));
	/* A value that never expires says so with null. */
	obj = json_pack(
	    "{s:s, s:I, s:s, s:s, s:s, s:o, s:o, s:b}", "secret", s->cfg->name,
	    "version", (json_int_t)seq, "lease_id", lease->id, "backend",
	    s->ops->type, "issued", issued, "expires",
	    lease->expires_wall == LEASE_NO_EXPIRY ? json_null()
						   : json_string(expires),
	    "max_expires",
	    lease->max_wall == LEASE_NO_EXPIRY ? json_null() : json_string(max),
	    "renewable", lease->renewable);
	if (obj == NULL)
		return -ENOMEM;
	/* json_dumpb writes into our buffer: no jansson-allocated copy. */
	len = json_dumpb(obj, NULL, 0, JSON_INDENT(2));
	r = len == 0 ? -ENOMEM : secret_new(len + 1, &text);
	if (r == 0) {
		char *p = secret_expose(text, NULL);

		(void)json_dumpb(obj, p, len, JSON_INDENT(2));
		p[len] = '\n';
		r = secret_set_len(text, len + 1);
	}
	json_decref(obj);
	if (r < 0) {
		secret_free(text);
		return r;
	}
	*ret = text;
	return 0;
}

/* The index of file name in the secret's layout, appended when new: a
 * name keeps its index across versions (the FUSE side names files by
 * index), even when some version lacks it. */
static int broker_layout_index(struct broker_secret *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->layout_count; i++)
		if (strcmp(s->layout[i], name) == 0)
			return (int)i;
	if (s->layout_count == STORE_MAX_FILES)
		return -EMSGSIZE;
	(void)snprintf(s->layout[s->layout_count], STORE_MAX_FILE_NAME, "%s",
		       name);
	return (int)s->layout_count++;
}

static int broker_add_file(struct broker_secret *s, struct version *v,
			   const char *name, struct secret *data,
			   struct errmsg *err)
{
	int idx = broker_layout_index(s, name);

	if (idx < 0) {
		secret_free(data);
		return errmsg_set(err, idx, "more than %d files",
				  STORE_MAX_FILES);
	}
	return version_set_file(v, (size_t)idx, name, data);
}

/* A key can be its own file when it is a safe file name and no rendering
 * of the same name is configured. */
static bool broker_key_is_file(const char *key)
{
	size_t len = strlen(key);

	return len > 0 && len < STORE_MAX_FILE_NAME && key[0] != '.' &&
	       !render_is_format(key) &&
	       strspn(key,
		      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		      "0123456789._-") == len;
}

/* "*": one file per key of the values (KV data), as raw bytes. */
static int broker_add_every_key(struct broker_secret *s, struct version *v,
				const struct kv *values, struct errmsg *err)
{
	struct secret *data;
	size_t i, len;
	void *p;
	int r;

	for (i = 0; i < values->count; i++) {
		if (!broker_key_is_file(values->items[i].key)) {
			log_warnx("event=key_not_a_file secret=%s key_len=%zu",
				  s->cfg->name, strlen(values->items[i].key));
			continue;
		}
		p = secret_expose(values->items[i].value, &len);
		r = secret_from(p, len, &data);
		if (r == 0)
			r = broker_add_file(s, v, values->items[i].key, data,
					    err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Renders every configured file of one credential into a new version. */
static int broker_build_version(struct broker *b, struct broker_secret *s,
				uint64_t seq, const struct lease *lease,
				const struct kv *values, struct version **ret,
				struct errmsg *err)
{
	const char *const *defaults =
	    s->ops->secret_files != NULL
		? s->ops->secret_files(s->cfg->backend_cfg)
		: s->ops->default_files;
	struct version *v = NULL;
	struct secret *data;
	size_t i, count;
	int r;

	/* The deadline taken when the lease came (broker_lease_deadlines),
	 * not the wall time converted again: the wall clock may have jumped
	 * since. */
	r = version_new(seq, s->expires_mono, &v);
	if (r < 0)
		return r;
	count = s->cfg->file_count;
	if (count == 0)
		while (defaults[count] != NULL)
			count++;
	for (i = 0; i < count; i++) {
		const char *spec =
		    s->cfg->file_count ? s->cfg->files[i] : defaults[i];

		if (strcmp(spec, "*") == 0) {
			r = broker_add_every_key(s, v, values, err);
		} else {
			r = render_file(spec, values, s->ops->env_names, &data,
					err);
			if (r == 0)
				r = broker_add_file(s, v, spec, data, err);
		}
		if (r < 0)
			goto fail;
	}
	r = broker_lease_json(s, seq, lease, &data);
	if (r == 0)
		r = broker_add_file(s, v, ".lease.json", data, err);
	if (r < 0)
		goto fail;
	*ret = v;
	return 0;
fail:
	version_unref(v);
	return r;
}

static int broker_retired_grow(struct broker_secret *s)
{
	struct retired_lease *grown;
	size_t cap;

	if (s->retired_count < s->retired_capacity)
		return 0;
	if (s->retired_capacity >= BROKER_MAX_RETIRED)
		return -EMSGSIZE;
	cap = s->retired_capacity ? s->retired_capacity * 2 : 4;
	grown = realloc(s->retired, cap * sizeof(*grown));
	if (grown == NULL)
		return -ENOMEM;
	s->retired = grown;
	s->retired_capacity = cap;
	return 0;
}

/* Keeps a superseded lease so it can be revoked once it expires.  Only a
 * pathological backlog (an upstream refusing revocations for a thousand
 * rotations) overflows the list; the backend's revoke_all at exit still
 * knows the lease then. */
void broker_retire(struct broker *b, size_t slot, const struct lease *lease,
		   uint64_t deadline)
{
	struct broker_secret *s = &b->secrets[slot];
	struct retired_lease *rl;

	if (broker_retired_grow(s) < 0) {
		log_warnx("event=retire_backlog_full secret=%s lease=%s",
			  s->cfg->name, lease->id);
		return;
	}
	rl = &s->retired[s->retired_count++];
	rl->lease = *lease;
	rl->last_seq = s->version_seq;
	rl->id = ++b->next_retired_id;
	rl->failures = 0;
	(void)broker_schedule(b, slot, SCHED_RETIRE, deadline, rl->id);
}

static bool broker_retryable(int r)
{
	return r != -EINVAL && r != -EPERM && r != -EACCES;
}

/* A refusal that a retry will not fix (a 4xx from Vault, a TLS
 * verification failure, a bad statement) waits the backoff cap before the
 * next try instead of hammering the upstream; a responder's rotate tries
 * at once.  But a credential still served gets its tries before it
 * expires (at ~2/3 of what is left, at least the minimum backoff apart):
 * the fault may have cleared by then (a certificate from the wrong CA
 * fixed), and waiting out the cap would let a credential die that a
 * renewal could keep. */
static uint64_t broker_failed_delay(struct broker *b,
				    const struct broker_secret *s, int r)
{
	uint64_t now = clock_mono(b->clk), delay, before;

	if (broker_retryable(r))
		return sched_backoff(s->failures, broker_random());
	delay = sched_backoff(SCHED_MAX_ATTEMPT, broker_random());
	if (!s->has_lease || s->expires_mono == UINT64_MAX ||
	    s->expires_mono <= now + SCHED_BACKOFF_MIN_USEC)
		return delay;
	before = sched_renew_at(now, s->expires_mono, broker_random()) - now;
	if (before < SCHED_BACKOFF_MIN_USEC)
		before = SCHED_BACKOFF_MIN_USEC;
	return before < delay ? before : delay;
}

static void broker_failed(struct broker *b, size_t slot, const char *what,
			  int r, const struct errmsg *err)
{
	struct broker_secret *s = &b->secrets[slot];
	uint64_t delay = broker_failed_delay(b, s, r);

	s->failures++;
	(void)snprintf(s->last_error, sizeof(s->last_error), "%s: %s", what,
		       err->text);
	broker_audit_secret(b, what, s, NULL, r, err->text);
	log_warnx("event=%s_failed secret=%s errno=%d attempt=%u "
		  "retry_in_ms=%llu retryable=%s error=\"%s\"",
		  what, s->cfg->name, -r, s->failures,
		  (unsigned long long)(delay / 1000),
		  broker_retryable(r) ? "yes" : "no", err->text);
	(void)broker_schedule(b, slot, SCHED_REFRESH,
			      clock_mono(b->clk) + delay, 0);
	/* A waiting "rotate" answers with the failure now, not at its
	 * deadline. */
	pthread_cond_broadcast(&b->changed);
}

/* A value that never expires is polled; anything else is renewed or
 * rotated at ~2/3 of its remaining life. */
static uint64_t broker_next_refresh(struct broker *b,
				    const struct broker_secret *s, uint64_t now,
				    uint64_t expires)
{
	if (s->force_rotate)
		return now;
	if (expires == UINT64_MAX)
		return now + s->cfg->refresh_usec;
	return sched_renew_at(now, expires, broker_random());
}

/* Publishes a version of the current lease and schedules what follows:
 * the next refresh at ~2/3 of its remaining life, and its expiry. */
static int broker_publish(struct broker *b, size_t slot,
			  const struct kv *values, struct errmsg *err)
{
	struct broker_secret *s = &b->secrets[slot];
	uint64_t now = clock_mono(b->clk), expires;
	struct version *v;
	int r;

	r = broker_build_version(b, s, s->version_seq + 1, &s->lease, values,
				 &v, err);
	if (r < 0)
		return r;
	r = store_publish(b->store, slot, v);
	expires = version_expires(v);
	version_unref(v);
	if (r < 0)
		return errmsg_set(err, r, "publish failed");
	s->version_seq++;
	s->state = SECRET_ACTIVE;
	if (expires != UINT64_MAX)
		(void)broker_schedule(b, slot, SCHED_EXPIRE, expires, 0);
	(void)broker_schedule(b, slot, SCHED_REFRESH,
			      broker_next_refresh(b, s, now, expires), 0);
	pthread_cond_broadcast(&b->changed);
	return 0;
}

/* True when the identity that issued s's lease has died: the upstream took
 * the lease with it, so it is neither served nor renewed a moment longer,
 * whatever its own expiry says.  An identity newer than the last one
 * maintain reported (a login inside an issue) is alive. */
static bool broker_identity_dead(const struct broker *b,
				 const struct broker_secret *s, uint64_t now)
{
	const struct broker_backend *bs = &b->backend_state[s->cfg->backend];
	uint64_t id = s->lease.identity;

	if (!s->has_lease || id == 0 || bs->generation == 0 ||
	    id > bs->generation)
		return false;
	return now >=
	       (id == bs->generation ? bs->expires_mono : bs->old_expires_mono);
}

/* The identity behind slot's lease died (its token ran out and no login
 * replaced it): the credential leaves the mount now, as at its own expiry
 * (invariant 4).  A fault, not a revocation: no freeze, and the secret is
 * issued again as soon as an identity is back (broker_identity_back). */
static void broker_identity_lost(struct broker *b, size_t slot, uint64_t now)
{
	struct broker_secret *s = &b->secrets[slot];
	const struct broker_backend *bs = &b->backend_state[s->cfg->backend];
	const char *why =
	    bs->last_error[0] ? bs->last_error : "identity: expired";

	log_warnx("event=expired secret=%s lease=%s reason=identity_expired "
		  "identity=%llu error=\"%s\"",
		  s->cfg->name, s->lease.id,
		  (unsigned long long)s->lease.identity, why);
	broker_audit_secret(b, "expire", s, &s->lease, 0, NULL);
	store_kill_slot(b->store, slot);
	s->has_lease = false;
	kv_clear(&s->values);
	if (s->state == SECRET_ACTIVE)
		s->state = SECRET_PENDING;
	(void)snprintf(s->last_error, sizeof(s->last_error), "%s", why);
	/* Revoking a lease that died upstream succeeds; it also tells a
	 * backend that tracks its leases to forget this one. */
	broker_retire(b, slot, &s->lease, now);
	pthread_cond_broadcast(&b->changed);
}

/* When a superseded lease is revoked: at its expiry, or after the
 * configured overlap when that comes first, and no later than the death
 * of a replaced identity that issued it (whose expiry no renewal moves;
 * its versions go with the retirement). */
static uint64_t broker_retire_at(struct broker *b,
				 const struct broker_secret *s)
{
	const struct broker_backend *bs = &b->backend_state[s->cfg->backend];
	uint64_t at = s->expires_mono;
	uint64_t overlap = clock_mono(b->clk) + s->cfg->overlap_usec;

	if (s->lease.identity != 0 && s->lease.identity < bs->generation &&
	    bs->old_expires_mono < at)
		at = bs->old_expires_mono;
	return s->cfg->overlap_usec > 0 && overlap < at ? overlap : at;
}

/* A new credential: issue upstream, then publish unless a revoke or a stop
 * came in meanwhile, in which case the fresh credential is revoked. */
static void broker_do_issue(struct broker *b, size_t slot)
{
	struct broker_secret *s = &b->secrets[slot];
	uint64_t sent = clock_mono(b->clk);
	struct backend_issue_request req = {
	    .secret_name = s->cfg->name,
	    .secret_cfg = s->cfg->backend_cfg,
	    .now_wall = clock_wall(b->clk),
	    .ttl_usec = s->cfg->ttl_usec,
	    .max_ttl_usec = s->cfg->max_ttl_usec,
	};
	uint64_t gen = s->generation;
	struct errmsg err = {{0}};
	struct kv values;
	struct lease lease;
	int r;

	memset(&values, 0, sizeof(values));
	memset(&lease, 0, sizeof(lease));
	pthread_mutex_unlock(&b->lock);
	r = s->ops->issue(s->backend, &req, &lease, &values, &err);
	pthread_mutex_lock(&b->lock);
	if (r < 0) {
		broker_failed(b, slot, "issue", r, &err);
		goto out;
	}
	if (gen != s->generation || s->state == SECRET_FROZEN || b->stopping) {
		pthread_mutex_unlock(&b->lock);
		(void)s->ops->revoke(s->backend, &lease, &err);
		pthread_mutex_lock(&b->lock);
		log_info("event=issue_discarded secret=%s lease=%s "
			 "reason=revoked_meanwhile",
			 s->cfg->name, lease.id);
		goto out;
	}
	if (s->has_lease && !s->force_rotate &&
	    strcmp(lease.id, s->lease.id) == 0) {
		/* A polled value whose version did not change: no churn. */
		s->failures = 0;
		s->last_error[0] = '\0';
		(void)broker_schedule(b, slot, SCHED_REFRESH,
				      clock_mono(b->clk) + s->cfg->refresh_usec,
				      0);
		log_debug("event=unchanged secret=%s lease=%s", s->cfg->name,
			  lease.id);
		goto out;
	}
	if (s->has_lease && s->lease.expires_wall != LEASE_NO_EXPIRY)
		broker_retire(b, slot, &s->lease, broker_retire_at(b, s));
	s->lease = lease;
	broker_lease_deadlines(s, req.now_wall, sent);
	s->has_lease = true;
	s->force_rotate = false;
	kv_clear(&s->values);
	s->values = values;
	values.count = 0;
	r = broker_publish(b, slot, &s->values, &err);
	if (r < 0) {
		broker_failed(b, slot, "render", r, &err);
		goto out;
	}
	s->lease_seq = s->version_seq;
	s->failures = 0;
	s->last_error[0] = '\0';
	s->rotations++;
	broker_audit_secret(b, s->rotations == 1 ? "issue" : "rotate", s,
			    &lease, 0, NULL);
	if (s->rotations > 1)
		broker_rotate_hooks(b, slot, s->version_seq, lease.id);
	/* A polled value never expires: -1, not INT64_MAX minus now. */
	log_info("event=issued secret=%s version=%llu lease=%s ttl_s=%lld",
		 s->cfg->name, (unsigned long long)s->version_seq, lease.id,
		 lease.expires_wall == LEASE_NO_EXPIRY
		     ? -1LL
		     : (long long)((lease.expires_wall - lease.issued_wall) /
				   1000000));
out:
	kv_clear(&values);
}

/* Renewal moves the same credential's expiry; the files keep their bytes,
 * but a new version carries the new expiry in .lease.json. */
static void broker_do_renew(struct broker *b, size_t slot)
{
	struct broker_secret *s = &b->secrets[slot];
	uint64_t now = clock_mono(b->clk), ask = s->cfg->ttl_usec;
	int64_t now_wall = clock_wall(b->clk), want;
	struct lease lease = s->lease;
	uint64_t gen = s->generation;
	struct errmsg err = {{0}};
	int64_t old_max_wall;
	int r;

	/* Never past max TTL, measured on the monotonic clock. */
	if (s->max_mono != UINT64_MAX && s->max_mono - now < ask)
		ask = s->max_mono > now ? s->max_mono - now : 0;
	want = now_wall + (int64_t)ask;
	pthread_mutex_unlock(&b->lock);
	r = s->ops->renew(s->backend, s->cfg->backend_cfg, &lease, want, &err);
	pthread_mutex_lock(&b->lock);
	if (gen != s->generation || !s->has_lease ||
	    strcmp(lease.id, s->lease.id) != 0)
		return;
	if (r == -ENOENT && (s->expires_mono <= clock_mono(b->clk) ||
			     broker_identity_dead(b, s, clock_mono(b->clk)))) {
		/* Not revoked but run out, or gone with the identity that
		 * issued it: the renewal came too late (a stalled upstream or
		 * host, a login that failed).  A new credential, not a
		 * freeze. */
		log_warnx("event=renew_too_late secret=%s lease=%s "
			  "error=\"%s\"",
			  s->cfg->name, lease.id, err.text);
		s->force_rotate = true;
		(void)broker_schedule(b, slot, SCHED_REFRESH,
				      clock_mono(b->clk), 0);
		return;
	}
	if (r == -ENOENT) {
		/* Gone upstream (revoked there): not served a moment longer,
		 * as if the lease check had found it. */
		broker_revoked_upstream(b, slot, err.text);
		return;
	}
	if (r < 0)
		return broker_failed(b, slot, "renew", r, &err);
	/* A renewal may also reveal the max TTL (Vault grants less than
	 * asked) or end renewability. */
	old_max_wall = s->lease.max_wall;
	s->lease.expires_wall = lease.expires_wall;
	s->lease.max_wall = lease.max_wall;
	s->lease.renewable = lease.renewable;
	broker_lease_renewed(s, old_max_wall, now_wall, now);
	r = broker_publish(b, slot, &s->values, &err);
	if (r < 0)
		return broker_failed(b, slot, "render", r, &err);
	/* The same credential lives longer: so do the handles on its older
	 * versions. */
	(void)store_extend(b->store, slot, s->lease_seq, s->expires_mono);
	s->failures = 0;
	s->last_error[0] = '\0';
	s->renewals++;
	broker_audit_secret(b, "renew", s, &lease, 0, NULL);
	log_info("event=renewed secret=%s version=%llu lease=%s", s->cfg->name,
		 (unsigned long long)s->version_seq, lease.id);
}

/* Renew while renewal still buys a whole TTL; once the max TTL is near,
 * issue a fresh credential so the old one still has about a third of its
 * life left when the app switches over. */
static bool broker_should_rotate(struct broker *b,
				 const struct broker_secret *s)
{
	uint64_t now = clock_mono(b->clk);

	if (!s->has_lease || s->force_rotate || !s->lease.renewable)
		return true;
	if (s->max_mono == UINT64_MAX)
		return false;
	return s->max_mono <= now || s->max_mono - now < s->cfg->ttl_usec;
}

static void broker_job_refresh(struct broker *b, size_t slot)
{
	struct broker_secret *s = &b->secrets[slot];

	if (s->state == SECRET_FROZEN)
		return;
	if (broker_identity_dead(b, s, clock_mono(b->clk)))
		broker_identity_lost(b, slot, clock_mono(b->clk));
	if (broker_should_rotate(b, s))
		broker_do_issue(b, slot);
	else
		broker_do_renew(b, slot);
}

/* Hard expiry: the store drops every version past its expiry (readers see
 * ENOENT, open handles EIO); an expired current lease is retired at once. */
static void broker_job_expire(struct broker *b, size_t slot)
{
	struct broker_secret *s = &b->secrets[slot];
	size_t dropped;

	pthread_mutex_unlock(&b->lock);
	dropped = store_expire(b->store, slot);
	pthread_mutex_lock(&b->lock);
	if (!s->has_lease || s->expires_mono > clock_mono(b->clk))
		return;
	log_warnx("event=expired secret=%s lease=%s versions_dropped=%zu",
		  s->cfg->name, s->lease.id, dropped);
	broker_audit_secret(b, "expire", s, &s->lease, 0, NULL);
	s->has_lease = false;
	kv_clear(&s->values);
	if (s->state == SECRET_ACTIVE)
		s->state = SECRET_PENDING;
	broker_retire(b, slot, &s->lease, clock_mono(b->clk));
	pthread_cond_broadcast(&b->changed);
}

static struct retired_lease *broker_find_retired(struct broker_secret *s,
						 uint64_t id)
{
	size_t i;

	for (i = 0; i < s->retired_count; i++)
		if (s->retired[i].id == id)
			return &s->retired[i];
	return NULL;
}

/* Revokes a superseded lease upstream once it has expired. */
static void broker_job_retire(struct broker *b, size_t slot, uint64_t id)
{
	struct broker_secret *s = &b->secrets[slot];
	struct errmsg err = {{0}};
	struct retired_lease *rl;
	uint64_t delay, last_seq;
	struct lease lease;
	int r;

	rl = broker_find_retired(s, id);
	if (rl == NULL)
		return;
	lease = rl->lease;
	pthread_mutex_unlock(&b->lock);
	r = s->ops->revoke(s->backend, &lease, &err);
	pthread_mutex_lock(&b->lock);
	rl = broker_find_retired(s, id);
	if (rl == NULL)
		return;
	if (r < 0) {
		delay = sched_backoff(rl->failures++, broker_random());
		log_warnx("event=retire_failed secret=%s lease=%s errno=%d "
			  "retry_in_ms=%llu error=\"%s\"",
			  s->cfg->name, lease.id, -r,
			  (unsigned long long)(delay / 1000), err.text);
		(void)broker_schedule(b, slot, SCHED_RETIRE,
				      clock_mono(b->clk) + delay, id);
		return;
	}
	log_info("event=retired secret=%s lease=%s", s->cfg->name, lease.id);
	broker_audit_secret(b, "retire", s, &lease, 0, NULL);
	last_seq = rl->last_seq;
	*rl = s->retired[--s->retired_count];
	/* Revoked before its expiry (an overlap): its versions go too. */
	pthread_mutex_unlock(&b->lock);
	(void)store_kill_upto(b->store, slot, last_seq);
	pthread_mutex_lock(&b->lock);
}

/* Leases issued under an identity older than the backend's current one
 * die with it: re-issue them now, under the new identity, so that readers
 * switch before the old identity (and its leases) expire.  A secret left
 * without a credential (its identity died) tries at once too, instead of
 * waiting out the backoff its failed issues set. */
static void broker_reissue_old_identity(struct broker *b, size_t backend,
					uint64_t generation)
{
	struct broker_secret *s;
	size_t i;

	for (i = 0; i < b->cfg->secret_count; i++) {
		s = &b->secrets[i];
		if (s->cfg->backend != backend || s->state == SECRET_FROZEN)
			continue;
		if (!s->has_lease && s->state == SECRET_PENDING) {
			(void)broker_schedule(b, i, SCHED_REFRESH,
					      clock_mono(b->clk), 0);
			continue;
		}
		if (!s->has_lease || s->lease.identity == 0 ||
		    s->lease.identity >= generation)
			continue;
		log_info("event=reissue_for_new_identity secret=%s lease=%s",
			 s->cfg->name, s->lease.id);
		s->force_rotate = true;
		(void)broker_schedule(b, i, SCHED_REFRESH, clock_mono(b->clk),
				      0);
	}
}

/* Takes every lease of backend whose identity has died out of the mount. */
static void broker_reap_identity(struct broker *b, size_t backend)
{
	uint64_t now = clock_mono(b->clk);
	size_t i;

	for (i = 0; i < b->cfg->secret_count; i++)
		if (b->secrets[i].cfg->backend == backend &&
		    b->secrets[i].state != SECRET_FROZEN &&
		    broker_identity_dead(b, &b->secrets[i], now))
			broker_identity_lost(b, i, now);
}

/* Records the expiry maintain reported, before generation moves on.  A
 * replaced identity lives on until its own expiry, and so do its leases
 * until they are re-issued: the earliest such death still to come is
 * kept. */
static void broker_identity_track(struct broker *b, size_t backend,
				  const struct backend_identity *id)
{
	struct broker_backend *bs = &b->backend_state[backend];
	uint64_t now = clock_mono(b->clk);

	if (bs->generation == 0)
		bs->old_expires_mono = UINT64_MAX;
	else if (id->generation != bs->generation &&
		 (bs->old_expires_mono <= now ||
		  bs->expires_mono < bs->old_expires_mono))
		bs->old_expires_mono = bs->expires_mono;
	bs->expires_mono = broker_wall_to_mono(b, id->expires_wall);
}

/* The next maintain: when wanted, but no later than the death of an
 * identity that may still back a lease, so that its leases leave the
 * mount on time even while every login fails. */
static uint64_t broker_maintain_at(const struct broker_backend *bs,
				   uint64_t now, uint64_t want)
{
	if (bs->generation == 0)
		return want;
	if (bs->expires_mono > now && bs->expires_mono < want)
		want = bs->expires_mono;
	if (bs->old_expires_mono > now && bs->old_expires_mono < want)
		want = bs->old_expires_mono;
	return want;
}

static void broker_maintain_failed(struct broker *b, size_t backend, int r,
				   const struct errmsg *err)
{
	const struct config_backend *cb = &b->cfg->backends[backend];
	struct broker_backend *bs = &b->backend_state[backend];
	uint64_t now = clock_mono(b->clk);
	uint64_t at = broker_maintain_at(
	    bs, now, now + sched_backoff(bs->failures++, broker_random()));

	(void)snprintf(bs->last_error, sizeof(bs->last_error), "identity: %s",
		       err->text);
	log_warnx("event=identity_failed backend=%s errno=%d "
		  "retry_in_ms=%llu error=\"%s\"",
		  cb->name, -r, (unsigned long long)((at - now) / 1000),
		  err->text);
	broker_reap_identity(b, backend);
	(void)broker_schedule(b, backend, SCHED_MAINTAIN, at, 0);
}

static void broker_job_maintain(struct broker *b, size_t backend)
{
	const struct config_backend *cb = &b->cfg->backends[backend];
	struct broker_backend *bs = &b->backend_state[backend];
	struct backend_identity id = {0, 0, 0};
	struct errmsg err = {{0}};
	int r;

	pthread_mutex_unlock(&b->lock);
	r = cb->ops->maintain(b->backends[backend], clock_wall(b->clk), &id,
			      &err);
	pthread_mutex_lock(&b->lock);
	if (r < 0)
		return broker_maintain_failed(b, backend, r, &err);
	/* What died while maintain ran goes first, judged by what was known
	 * before this answer. */
	broker_reap_identity(b, backend);
	bs->failures = 0;
	bs->last_error[0] = '\0';
	if (id.generation != bs->generation && bs->generation != 0)
		broker_audit(b, "login", broker_actor_scheduler(),
			     json_pack("{s:s, s:s, s:I}", "backend", cb->name,
				       "type", cb->ops->type, "identity",
				       (json_int_t)id.generation),
			     0, NULL, NULL);
	broker_identity_track(b, backend, &id);
	if (id.generation != bs->generation) {
		if (bs->generation != 0)
			broker_reissue_old_identity(b, backend, id.generation);
		bs->generation = id.generation;
	}
	broker_reap_identity(b, backend);
	(void)broker_schedule(
	    b, backend, SCHED_MAINTAIN,
	    broker_maintain_at(bs, clock_mono(b->clk),
			       broker_wall_to_mono(b, id.next_wall)),
	    0);
}

/* An upstream that no longer knows a current lease had it revoked from
 * outside (a responder's "vault lease revoke -prefix", a DBA's DROP
 * ROLE): the secret is taken out of the mount and frozen, as if revoked
 * here. */
static int broker_check_one(struct broker *b, size_t slot)
{
	struct broker_secret *s = &b->secrets[slot];
	struct errmsg err = {{0}};
	uint64_t gen = s->generation;
	struct lease lease = s->lease;
	int r;

	/* A lease that died with its identity is not found either: that is
	 * an expiry, not a revocation from outside. */
	if (broker_identity_dead(b, s, clock_mono(b->clk))) {
		broker_identity_lost(b, slot, clock_mono(b->clk));
		return 0;
	}
	pthread_mutex_unlock(&b->lock);
	r = s->ops->check(s->backend, &lease, &err);
	pthread_mutex_lock(&b->lock);
	if (r != -ENOENT || gen != s->generation || !s->has_lease ||
	    strcmp(lease.id, s->lease.id) != 0) {
		if (r < 0 && r != -ENOENT)
			log_debug("event=check_failed secret=%s errno=%d",
				  s->cfg->name, -r);
		return r == -ENOENT ? 0 : r;
	}
	if (broker_identity_dead(b, s, clock_mono(b->clk)))
		broker_identity_lost(b, slot, clock_mono(b->clk));
	else
		broker_revoked_upstream(b, slot, err.text);
	return 0;
}

/* Visits at most BROKER_CHECK_BATCH leases a second, so a broker with many
 * secrets never floods its upstream with lookups. */
static void broker_job_check(struct broker *b)
{
	size_t n = b->cfg->secret_count, visited = 0, slot;
	uint64_t now;

	while (b->check_cursor < n && visited < BROKER_CHECK_BATCH &&
	       !b->stopping) {
		slot = b->check_cursor++;
		if (b->secrets[slot].ops->check == NULL ||
		    !b->secrets[slot].has_lease ||
		    b->secrets[slot].state != SECRET_ACTIVE)
			continue;
		visited++;
		/* A lookup that failed (an upstream slow or down) ends the
		 * batch: ten timeouts in a row would stall the scheduler. */
		if (broker_check_one(b, slot) < 0)
			break;
	}
	now = clock_mono(b->clk);
	if (b->check_cursor < n) {
		(void)broker_schedule(b, 0, SCHED_CHECK, now + USEC_PER_SEC, 0);
		return;
	}
	b->check_cursor = 0;
	(void)broker_schedule(b, 0, SCHED_CHECK, now + b->cfg->lease_check_usec,
			      0);
}

static void broker_run_job(struct broker *b, const struct sched_job *job)
{
	switch (job->kind) {
	case SCHED_REFRESH:
		broker_job_refresh(b, job->slot);
		break;
	case SCHED_EXPIRE:
		broker_job_expire(b, job->slot);
		break;
	case SCHED_RETIRE:
		broker_job_retire(b, job->slot, job->tag);
		break;
	case SCHED_MAINTAIN:
		broker_job_maintain(b, job->slot);
		break;
	case SCHED_CHECK:
		broker_job_check(b);
		break;
	}
}

static void broker_wait(struct broker *b, uint64_t deadline)
{
	struct timespec ts;

	if (deadline == UINT64_MAX) {
		pthread_cond_wait(&b->wake, &b->lock);
		return;
	}
	/* The condition variable runs on CLOCK_MONOTONIC, the same clock as
	 * the system clock's mono(); a jump of the wall clock cannot stall
	 * or rush renewals. */
	ts.tv_sec = (time_t)(deadline / USEC_PER_SEC);
	ts.tv_nsec = (long)(deadline % USEC_PER_SEC) * 1000;
	(void)pthread_cond_timedwait(&b->wake, &b->lock, &ts);
}

uint64_t broker_run_due(struct broker *b)
{
	struct sched_job job;

	while (!b->stopping &&
	       sched_pop_due(b->sched, clock_mono(b->clk), &job))
		broker_run_job(b, &job);
	return sched_peek(b->sched, &job) ? job.deadline : UINT64_MAX;
}

void broker_schedule_all(struct broker *b)
{
	uint64_t now = clock_mono(b->clk);
	size_t i;

	for (i = 0; i < b->backend_count; i++)
		if (b->cfg->backends[i].ops->maintain != NULL &&
		    !b->backend_state[i].dormant)
			(void)broker_schedule(b, i, SCHED_MAINTAIN, now, 0);
	for (i = 0; i < b->cfg->secret_count; i++)
		if (b->secrets[i].state != SECRET_FROZEN)
			(void)broker_schedule(b, i, SCHED_REFRESH, now, 0);
	if (b->cfg->lease_check_usec > 0)
		(void)broker_schedule(b, 0, SCHED_CHECK,
				      now + b->cfg->lease_check_usec, 0);
}

static void *broker_thread(void *arg)
{
	struct broker *b = arg;
	uint64_t next;

	pthread_mutex_lock(&b->lock);
	while (!b->stopping) {
		next = broker_run_due(b);
		if (!b->stopping)
			broker_wait(b, next);
	}
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

static int broker_init_sync(struct broker *b)
{
	pthread_condattr_t attr;
	int r = -ENOMEM;

	if (pthread_condattr_init(&attr) != 0)
		return -ENOMEM;
	if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0)
		goto out;
	if (pthread_cond_init(&b->wake, &attr) != 0)
		goto out;
	if (pthread_cond_init(&b->changed, &attr) != 0) {
		pthread_cond_destroy(&b->wake);
		goto out;
	}
	pthread_mutex_init(&b->lock, NULL);
	pthread_mutex_init(&b->hooks_lock, NULL);
	pthread_cond_init(&b->hooks_done, NULL);
	r = 0;
out:
	pthread_condattr_destroy(&attr);
	return r;
}

static int broker_make_store(struct broker *b)
{
	struct store_slot_info *slots;
	size_t i;
	int r;

	slots = calloc(b->cfg->secret_count, sizeof(*slots));
	if (slots == NULL)
		return -ENOMEM;
	for (i = 0; i < b->cfg->secret_count; i++) {
		const struct config_secret *cs = &b->cfg->secrets[i];

		(void)snprintf(slots[i].name, sizeof(slots[i].name), "%s",
			       cs->name);
		slots[i].uid = cs->uid;
		slots[i].gid = cs->gid;
		slots[i].mode = cs->mode;
		slots[i].reader_count =
		    cs->reader_count ? cs->reader_count : b->cfg->reader_count;
		memcpy(slots[i].readers,
		       cs->reader_count ? cs->readers : b->cfg->readers,
		       slots[i].reader_count * sizeof(uid_t));
	}
	r = store_new(slots, b->cfg->secret_count, b->clk, &b->store);
	free(slots);
	return r;
}

static int broker_make_backends(struct broker *b, struct errmsg *err)
{
	size_t i;
	int r;

	b->backends = calloc(b->cfg->backend_count ? b->cfg->backend_count : 1,
			     sizeof(*b->backends));
	b->backend_state =
	    calloc(b->cfg->backend_count ? b->cfg->backend_count : 1,
		   sizeof(*b->backend_state));
	if (b->backends == NULL || b->backend_state == NULL)
		return -ENOMEM;
	b->backend_count = b->cfg->backend_count;
	for (i = 0; i < b->backend_count; i++) {
		const struct config_backend *cb = &b->cfg->backends[i];

		r = cb->ops->create(cb->cfg, &b->backends[i]);
		if (r < 0)
			return errmsg_set(err, r,
					  "backends.%s: cannot create "
					  "(%s)",
					  cb->name, strerror(-r));
	}
	for (i = 0; i < b->cfg->secret_count; i++) {
		struct broker_secret *s = &b->secrets[i];

		s->cfg = &b->cfg->secrets[i];
		s->backend = b->backends[s->cfg->backend];
		s->ops = b->cfg->backends[s->cfg->backend].ops;
	}
	return 0;
}

/* Secrets a responder froze stay frozen across restarts. */
static int broker_load_freeze(struct broker *b, struct errmsg *err)
{
	size_t i;
	int r;

	r = freeze_load(b->cfg->state_file, &b->frozen, err);
	if (r < 0)
		return r;
	for (i = 0; i < b->cfg->secret_count; i++) {
		if (json_object_get(b->frozen, b->cfg->secrets[i].name) == NULL)
			continue;
		b->secrets[i].state = SECRET_FROZEN;
		broker_audit(
		    b, "freeze", json_pack("{s:s}", "type", "broker"),
		    json_pack("{s:s}", "secret", b->cfg->secrets[i].name), 0,
		    NULL,
		    json_pack("{s:s}", "reason",
			      "frozen at start "
			      "(state_file)"));
		log_warnx("event=frozen_at_start secret=%s state_file=%s "
			  "hint=\"credbroker unfreeze %s\"",
			  b->cfg->secrets[i].name, b->cfg->state_file,
			  b->cfg->secrets[i].name);
	}
	return 0;
}

int broker_new(struct config *cfg, const struct clock *clk, struct broker **ret,
	       struct errmsg *err)
{
	struct broker *b;
	int r = -ENOMEM;

	b = calloc(1, sizeof(*b));
	if (b == NULL) {
		config_free(cfg);
		return errmsg_set(err, -ENOMEM, "out of memory");
	}
	b->cfg = cfg;
	b->clk = clk;
	b->secrets = calloc(cfg->secret_count ? cfg->secret_count : 1,
			    sizeof(*b->secrets));
	if (b->secrets == NULL || broker_init_sync(b) < 0)
		goto fail_early;
	r = sched_new(SCHED_MAX_JOBS, &b->sched);
	if (r < 0)
		goto fail;
	r = broker_make_store(b);
	if (r < 0)
		goto fail;
	r = fs_new(b->store, &b->fs);
	if (r < 0)
		goto fail;
	/* Reads judge expiry by the same clock as the store. */
	fs_set_clock(b->fs, clk);
	fs_set_cache_mode(b->fs, b->cfg->mount_cache);
	store_set_listener(b->store, fs_invalidate, b->fs);
	r = broker_make_backends(b, err);
	if (r == 0)
		r = broker_access_init(b);
	if (r == 0)
		r = audit_open(&cfg->audit, clk, &b->audit, err);
	if (r == 0)
		r = broker_load_freeze(b, err);
	if (r < 0)
		goto fail;
	*ret = b;
	return 0;
fail:
	broker_free(b);
	if (err != NULL && err->text[0] == '\0')
		(void)errmsg_set(err, r, "cannot set up the broker: %s",
				 strerror(-r));
	return r;
fail_early:
	free(b->secrets);
	free(b);
	config_free(cfg);
	return errmsg_set(err, r, "out of memory");
}

/* A backend whose every secret is frozen stays logged out until an
 * unfreeze: a restart after an incident takes no new identity either. */
static bool broker_backend_needed(const struct broker *b, size_t backend)
{
	size_t i;

	for (i = 0; i < b->cfg->secret_count; i++)
		if (b->cfg->secrets[i].backend == backend &&
		    b->secrets[i].state != SECRET_FROZEN)
			return true;
	return b->cfg->secret_count == 0;
}

static int broker_login_one(struct broker *b, size_t i, struct errmsg *err)
{
	const struct config_backend *cb = &b->cfg->backends[i];
	int r;

	r = cb->ops->login(b->backends[i], err);
	broker_audit(
	    b, "login", broker_actor_scheduler(),
	    json_pack("{s:s, s:s}", "backend", cb->name, "type", cb->ops->type),
	    r, err->text, NULL);
	if (r == 0)
		log_info("event=login backend=%s type=%s", cb->name,
			 cb->ops->type);
	return r;
}

int broker_wake_backend(struct broker *b, size_t backend, struct errmsg *err)
{
	bool dormant;
	int r;

	pthread_mutex_lock(&b->lock);
	dormant = b->backend_state[backend].dormant;
	pthread_mutex_unlock(&b->lock);
	if (!dormant)
		return 0;
	r = broker_login_one(b, backend, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&b->lock);
	b->backend_state[backend].dormant = false;
	if (b->cfg->backends[backend].ops->maintain != NULL)
		(void)broker_schedule(b, backend, SCHED_MAINTAIN,
				      clock_mono(b->clk), 0);
	pthread_mutex_unlock(&b->lock);
	return 0;
}

static int broker_login_all(struct broker *b, struct errmsg *err)
{
	size_t i;
	int r;

	for (i = 0; i < b->backend_count; i++) {
		const struct config_backend *cb = &b->cfg->backends[i];

		if (!broker_backend_needed(b, i)) {
			b->backend_state[i].dormant = true;
			log_warnx("event=backend_dormant backend=%s "
				  "reason=\"every secret is frozen\"",
				  cb->name);
			continue;
		}
		r = broker_login_one(b, i, err);
		broker_audit(b, "login", broker_actor_scheduler(),
			     json_pack("{s:s, s:s}", "backend", cb->name,
				       "type", cb->ops->type),
			     r, err->text, NULL);
		if (r < 0)
			return errmsg_prefix(
			    err, r, "backends.%s: login failed", cb->name);
	}
	return 0;
}

static const char *broker_str_or(const json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v != NULL ? v : "?";
}

/* Who the mount belongs to, as the CSI plugin said: logged and audited. */
static void broker_note_handoff(struct broker *b)
{
	const char *info = fs_handoff_info(b->fs);
	json_t *o = json_loads(info, JSON_REJECT_DUPLICATES, NULL);
	json_t *pod = json_object_get(o, "pod");

	log_info("event=handoff_received pod=%.64s/%.64s pod_uid=%.64s",
		 broker_str_or(pod, "namespace"), broker_str_or(pod, "name"),
		 broker_str_or(pod, "uid"));
	broker_audit(b, "handoff", json_pack("{s:s}", "type", "broker"),
		     json_is_object(pod) ? json_incref(pod) : json_object(), 0,
		     NULL, NULL);
	json_decref(o);
}

static bool broker_mounted_by_others(const struct broker *b)
{
	return b->cfg->mount_fd_socket[0] != '\0' ||
	       strncmp(b->cfg->mount_path, "/dev/fd/", 8) == 0;
}

int broker_start(struct broker *b, struct errmsg *err)
{
	int r;

	broker_audit(b, "config_load", json_pack("{s:s}", "type", "broker"),
		     json_pack("{s:I, s:I}", "secrets",
			       (json_int_t)b->cfg->secret_count, "backends",
			       (json_int_t)b->backend_count),
		     0, NULL, NULL);
	/* Mounting ourselves as root: the unmount at exit goes to a process
	 * forked now, before any secret exists, so that this one can drop
	 * every capability once the mount is up. */
	if (!broker_mounted_by_others(b) && hardening_privileged()) {
		r = unmounter_start(b->cfg->mount_path, &b->unmounter, err);
		if (r < 0)
			return r;
	}
	r = broker_login_all(b, err);
	if (r < 0)
		return r;
	fs_set_access_listener(b->fs, broker_on_access, b);
	if (b->cfg->mount_fd_socket[0] != '\0')
		r = fs_mount_from_socket(b->fs, b->cfg->mount_fd_socket, err);
	else
		r = fs_mount(b->fs, b->cfg->mount_path, err);
	if (r < 0)
		return r;
	if (b->cfg->mount_fd_socket[0] != '\0')
		broker_note_handoff(b);
	if (b->unmounter != NULL)
		fs_disown_mount(b->fs);
	/* Nothing left needs a capability (someone else mounted, or the
	 * unmounter will unmount), and no thread has started yet to keep
	 * one. */
	if (broker_mounted_by_others(b) || b->unmounter != NULL) {
		r = hardening_drop_privileges();
		if (r < 0)
			return errmsg_set(err, r, "cannot drop privileges: %s",
					  strerror(-r));
		log_info("event=privileges_dropped capabilities=none "
			 "no_new_privs=1 unmounter_pid=%d",
			 b->unmounter ? unmounter_pid(b->unmounter) : 0);
	}
	r = fs_start(b->fs);
	if (r < 0)
		return errmsg_set(err, r, "cannot start the FUSE thread");
	r = control_start(b->cfg->control_socket, b->cfg->responders,
			  b->cfg->responder_count, broker_control, b,
			  &b->control, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&b->lock);
	broker_schedule_all(b);
	pthread_mutex_unlock(&b->lock);
	r = -pthread_create(&b->thread, NULL, broker_thread, b);
	if (r < 0)
		return errmsg_set(err, r, "cannot start the scheduler thread");
	b->thread_started = true;
	/* Start-up is over: from here on, only the calls serving needs.  The
	 * spawner and the unmounter were forked before and stay outside. */
	if (b->cfg->seccomp) {
		r = seccomp_install(err);
		if (r < 0)
			return r;
	} else {
		/* Loud: a sandbox switched off must not go unnoticed. */
		log_warnx("event=seccomp_disabled warning=\"SECCOMP ALLOWLIST "
			  "OFF (config seccomp=false): for valgrind runs only, "
			  "never in production\"");
	}
	log_info("event=started mount=%s secrets=%zu control=%s seccomp=%s",
		 b->cfg->mount_path, b->cfg->secret_count,
		 b->cfg->control_socket, b->cfg->seccomp ? "kill" : "off");
	return 0;
}

/* The backends' own identities (a Vault token: revoke-self also revokes
 * every lease created with it, so nothing this broker issued outlives the
 * call, even a lease it lost track of). */
int broker_revoke_identities(struct broker *b, json_t **result)
{
	json_t *list = json_array();
	struct errmsg err;
	bool confirmed = true;
	size_t i;
	int r;

	for (i = 0; i < b->backend_count; i++) {
		err.text[0] = '\0';
		r = b->cfg->backends[i].ops->revoke_all(b->backends[i], &err);
		if (r < 0) {
			confirmed = false;
			log_warnx("event=revoke_all_failed backend=%s errno=%d "
				  "error=\"%s\"",
				  b->cfg->backends[i].name, -r, err.text);
		} else {
			log_info("event=revoked_all backend=%s",
				 b->cfg->backends[i].name);
			pthread_mutex_lock(&b->lock);
			b->backend_state[i].dormant = true;
			(void)sched_cancel(b->sched, (uint32_t)i,
					   SCHED_MAINTAIN);
			pthread_mutex_unlock(&b->lock);
		}
		(void)json_array_append_new(
		    list, json_pack("{s:s, s:b, s:s}", "backend",
				    b->cfg->backends[i].name, "confirmed",
				    r == 0, "error", r == 0 ? "" : err.text));
	}
	if (result != NULL)
		*result = list;
	else
		json_decref(list);
	return confirmed ? 0 : -EIO;
}

/* At exit every lease this broker holds is revoked upstream: a sidecar that
 * goes away should not leave live credentials behind (Vault Agent does,
 * hashicorp/vault#6492). */
static void broker_revoke_on_exit(struct broker *b)
{
	struct revoke_request rq = {.all = true,
				    .uid = geteuid(),
				    .pid = getpid(),
				    .comm = "shutdown",
				    .by_broker = true};
	json_t *report = NULL;

	/* Every lease at once, then the identities: a grace period is
	 * short, and N hung leases must not cost N timeouts. */
	(void)broker_revoke(b, &rq, &report);
	json_decref(report);
}

/* The mount is dead once fs_stop() closed the device; the unmounter
 * takes it away. */
static void broker_detach_mount(struct broker *b)
{
	struct errmsg err = {{0}};

	if (b->unmounter == NULL)
		return;
	if (unmounter_detach(b->unmounter, &err) < 0)
		log_warnx("event=unmount_failed path=%s error=\"%s\"",
			  b->cfg->mount_path, err.text);
	unmounter_free(b->unmounter);
	b->unmounter = NULL;
}

void broker_stop(struct broker *b)
{
	size_t i;

	pthread_mutex_lock(&b->lock);
	if (b->stopped) {
		pthread_mutex_unlock(&b->lock);
		return;
	}
	b->stopping = true;
	b->stopped = true;
	pthread_cond_broadcast(&b->wake);
	pthread_cond_broadcast(&b->changed);
	pthread_mutex_unlock(&b->lock);
	if (b->thread_started)
		pthread_join(b->thread, NULL);
	control_stop(b->control);
	b->control = NULL;
	if (b->cfg->revoke_on_exit && b->thread_started)
		broker_revoke_on_exit(b);
	for (i = 0; b->store != NULL && i < b->cfg->secret_count; i++)
		store_kill_slot(b->store, i);
	fs_stop(b->fs);
	broker_detach_mount(b);
	broker_hooks_wait(b);
	if (b->access.readers != NULL)
		broker_access_flush(b);
	broker_audit(b, "stop", json_pack("{s:s}", "type", "broker"), NULL, 0,
		     NULL, NULL);
	log_info("event=stopped");
}

void broker_free(struct broker *b)
{
	size_t i;

	if (b == NULL)
		return;
	broker_stop(b);
	if (b->store != NULL)
		store_set_listener(b->store, NULL, NULL);
	fs_free(b->fs);
	store_free(b->store);
	for (i = 0; i < b->cfg->secret_count; i++) {
		kv_clear(&b->secrets[i].values);
		free(b->secrets[i].retired);
	}
	for (i = 0; i < b->backend_count; i++)
		if (b->backends[i] != NULL)
			b->cfg->backends[i].ops->destroy(b->backends[i]);
	free(b->backends);
	free(b->backend_state);
	sched_free(b->sched);
	audit_close(b->audit);
	if (b->access.readers != NULL)
		broker_access_free(b);
	json_decref(b->frozen);
	pthread_cond_destroy(&b->wake);
	pthread_cond_destroy(&b->changed);
	pthread_mutex_destroy(&b->lock);
	pthread_mutex_destroy(&b->hooks_lock);
	pthread_cond_destroy(&b->hooks_done);
	free(b->secrets);
	config_free(b->cfg);
	free(b);
}
