/* The broker's lifecycle decisions, driven by a fake clock and a fake
 * backend, with no thread, no mount and no sleeping: issue, renew at ~2/3
 * TTL, rotate near max_ttl, retire superseded leases at their expiry,
 * back off on failures, drop expired versions, revoke and unfreeze.
 * The backend registry is wrapped at link time (-Wl,--wrap=backend_find). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "broker_int.h"
#include "config.h"
#include "zalloc.h"

#define SEC 1000000ULL

/* ---- fake clock: mono and wall move together ---- */

static uint64_t now_usec;

static uint64_t fake_mono(void *arg)
{
	(void)arg;
	return now_usec;
}

static int64_t fake_wall(void *arg)
{
	(void)arg;
	return (int64_t)now_usec + 1700000000LL * 1000000;
}

static const struct clock fake_clock = {fake_mono, fake_wall, NULL};

/* ---- fake backend ---- */

static struct {
	int issue_result;
	int renew_result;
	int revoke_result;
	int check_result;
	int maintain_result;
	bool polled;	     /* issue values that never expire (KV) */
	unsigned kv_version; /* the polled value's version */
	unsigned issues, renews, revokes, maintains, checks, revoke_alls;
	int revoke_all_result;
	uint64_t identity; /* current identity generation */
	char revoked[16][LEASE_MAX_ID];
	int64_t last_want;
} fake;

struct backend {
	int unused;
};

static struct backend fake_instance;

static int fake_create(const void *cfg, struct backend **ret)
{
	(void)cfg;
	*ret = &fake_instance;
	return 0;
}

static int fake_login(struct backend *b, struct errmsg *err)
{
	return 0;
}

static int fake_issue(struct backend *b,
		      const struct backend_issue_request *req,
		      struct lease *lease, struct kv *values,
		      struct errmsg *err)
{
	char pw[32];
	int r;

	if (fake.issue_result < 0)
		return errmsg_set(err, fake.issue_result, "fake issue failed");
	fake.issues++;
	snprintf(lease->id, sizeof(lease->id), "role%u", fake.issues);
	lease->issued_wall = req->now_wall;
	lease->expires_wall = req->now_wall + (int64_t)req->ttl_usec;
	lease->max_wall = req->now_wall + (int64_t)req->max_ttl_usec;
	lease->renewable = true;
	lease->identity = fake.identity;
	if (fake.polled) {
		snprintf(lease->id, sizeof(lease->id), "kv@%u",
			 fake.kv_version);
		lease->expires_wall = lease->max_wall = LEASE_NO_EXPIRY;
		lease->renewable = false;
	}
	snprintf(pw, sizeof(pw), "pw-%u", fake.issues);
	r = kv_set_str(values, "username", lease->id);
	if (r == 0)
		r = kv_set_str(values, "password", pw);
	/* KV-like data whose keys come and go between versions. */
	if (r == 0 && fake.polled && fake.kv_version % 2 == 0)
		r = kv_set_str(values, "extra", "x");
	if (r == 0 && fake.polled)
		r = kv_set_str(values, "bad/key", "y");
	return r;
}

static int fake_renew(struct backend *b, const void *scfg, struct lease *lease,
		      int64_t want, struct errmsg *err)
{
	if (fake.renew_result < 0)
		return errmsg_set(err, fake.renew_result, "fake renew failed");
	fake.renews++;
	fake.last_want = want;
	lease->expires_wall = want;
	return 0;
}

static int fake_revoke(struct backend *b, const struct lease *lease,
		       struct errmsg *err)
{
	if (fake.revoke_result < 0)
		return errmsg_set(err, fake.revoke_result,
				  "fake revoke failed");
	snprintf(fake.revoked[fake.revokes++ % 16], LEASE_MAX_ID, "%s",
		 lease->id);
	return 0;
}

/* The identity is renewed every 10 s; the test bumps fake.identity to
 * simulate a new login. */
static int fake_maintain(struct backend *b, int64_t now_wall,
			 struct backend_identity *out, struct errmsg *err)
{
	fake.maintains++;
	if (fake.maintain_result < 0)
		return errmsg_set(err, fake.maintain_result,
				  "fake login failed");
	out->generation = fake.identity;
	out->expires_wall = now_wall + 60 * (int64_t)SEC;
	out->next_wall = now_wall + 10 * (int64_t)SEC;
	return 0;
}

static int fake_check(struct backend *b, const struct lease *lease,
		      struct errmsg *err)
{
	fake.checks++;
	if (fake.check_result < 0)
		return errmsg_set(err, fake.check_result, "lease %s unknown",
				  lease->id);
	return 0;
}

static int fake_revoke_all(struct backend *b, struct errmsg *err)
{
	fake.revoke_alls++;
	if (fake.revoke_all_result < 0)
		return errmsg_set(err, fake.revoke_all_result,
				  "fake revoke_all failed");
	return 0;
}

static void fake_destroy(struct backend *b)
{
}

static int fake_parse(const json_t *obj, const char *path, void **ret,
		      struct errmsg *err)
{
	*ret = NULL;
	return 0;
}

static void fake_free(void *cfg)
{
}

static const char *const fake_files[] = {"username", "password", NULL};

static const struct backend_ops fake_ops = {
    .type = "fake",
    .default_files = fake_files,
    .env_names = NULL,
    .parse_config = fake_parse,
    .free_config = fake_free,
    .parse_secret_config = fake_parse,
    .free_secret_config = fake_free,
    .create = fake_create,
    .login = fake_login,
    .issue = fake_issue,
    .renew = fake_renew,
    .revoke = fake_revoke,
    .revoke_all = fake_revoke_all,
    .destroy = fake_destroy,
};

/* The same backend with an identity to keep alive and lease lookups. */
static const struct backend_ops fakeid_ops = {
    .type = "fakeid",
    .default_files = fake_files,
    .env_names = NULL,
    .parse_config = fake_parse,
    .free_config = fake_free,
    .parse_secret_config = fake_parse,
    .free_secret_config = fake_free,
    .create = fake_create,
    .login = fake_login,
    .issue = fake_issue,
    .renew = fake_renew,
    .revoke = fake_revoke,
    .maintain = fake_maintain,
    .check = fake_check,
    .revoke_all = fake_revoke_all,
    .destroy = fake_destroy,
};

const struct backend_ops *__real_backend_find(const char *type);
const struct backend_ops *__wrap_backend_find(const char *type);

const struct backend_ops *__wrap_backend_find(const char *type)
{
	if (strcmp(type, "fake") == 0)
		return &fake_ops;
	if (strcmp(type, "fakeid") == 0)
		return &fakeid_ops;
	return __real_backend_find(type);
}

/* ---- helpers ---- */

static const char *files_json = "";
static char state_file[64];

static struct broker *make_broker_of(const char *type, const char *ttl,
				     const char *max_ttl)
{
	char text[1024];
	struct errmsg err = {{0}};
	struct config *cfg;
	struct broker *b;

	memset(&fake, 0, sizeof(fake));
	now_usec = 1000 * SEC;
	snprintf(state_file, sizeof(state_file), "/tmp/cb-test-broker-%d.json",
		 (int)getpid());
	(void)unlink(state_file);
	snprintf(text, sizeof(text),
		 "{\"mount\": {\"path\": \"/nonexistent\", \"readers\": [0]},"
		 " \"audit\": {\"stdout\": false},"
		 " \"state_file\": \"%s\","
		 " \"lease_check_interval\": \"30s\","
		 " \"backends\": {\"f\": {\"type\": \"%s\"}},"
		 " \"secrets\": [{\"name\": \"db\", \"backend\": \"f\","
		 " \"ttl\": \"%s\", \"max_ttl\": \"%s\", "
		 "\"refresh\": \"20s\"%s}]}",
		 state_file, type, ttl, max_ttl, files_json);
	ck_assert_msg(config_parse(text, strlen(text), &cfg, &err) == 0, "%s",
		      err.text);
	ck_assert_msg(broker_new(cfg, &fake_clock, &b, &err) == 0, "%s",
		      err.text);
	pthread_mutex_lock(&b->lock);
	broker_schedule_all(b);
	pthread_mutex_unlock(&b->lock);
	return b;
}

static struct broker *make_broker(const char *ttl, const char *max_ttl)
{
	return make_broker_of("fake", ttl, max_ttl);
}

/* Advances the fake clock to t and runs what is due; returns the next
 * deadline. */
static uint64_t run_at(struct broker *b, uint64_t t)
{
	uint64_t next;

	now_usec = t;
	pthread_mutex_lock(&b->lock);
	next = broker_run_due(b);
	pthread_mutex_unlock(&b->lock);
	return next;
}

/* Runs every job until the clock reaches t, jumping deadline to deadline. */
static void run_until(struct broker *b, uint64_t t)
{
	uint64_t next = run_at(b, now_usec);

	while (next <= t)
		next = run_at(b, next);
	now_usec = t;
}

static uint64_t current_seq(struct broker *b)
{
	struct version *v = store_pin_current(b->store, 0);
	uint64_t seq = v ? version_seq(v) : 0;

	version_unref(v);
	return seq;
}

static void read_current(struct broker *b, const char *file, char *buf,
			 size_t size)
{
	struct version *v = store_pin_current(b->store, 0);
	ssize_t n;
	int idx;

	ck_assert_ptr_nonnull(v);
	idx = version_find_file(v, file);
	ck_assert_int_ge(idx, 0);
	n = version_read(v, (size_t)idx, buf, size - 1, 0, now_usec);
	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	version_unref(v);
}

/* ---- tests ---- */

START_TEST(test_broker_issues_and_publishes)
{
	struct broker *b = make_broker("30s", "1h");
	char buf[512];

	run_at(b, now_usec);
	ck_assert_uint_eq(fake.issues, 1);
	ck_assert_uint_eq(current_seq(b), 1);
	ck_assert_int_eq(b->secrets[0].state, SECRET_ACTIVE);
	read_current(b, "password", buf, sizeof(buf));
	ck_assert_str_eq(buf, "pw-1");
	read_current(b, ".lease.json", buf, sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "\"lease_id\": \"role1\""));
	ck_assert_ptr_null(strstr(buf, "pw-1"));
	broker_free(b);
}
END_TEST

START_TEST(test_broker_renews_at_two_thirds)
{
	struct broker *b = make_broker("30s", "1h");
	uint64_t start = now_usec, next;

	next = run_at(b, now_usec);
	/* The next job is the renewal, at 62-72 % of the 30 s. */
	ck_assert_uint_ge(next, start + 30 * SEC * 62 / 100);
	ck_assert_uint_le(next, start + 30 * SEC * 72 / 100);
	run_at(b, next);
	ck_assert_uint_eq(fake.renews, 1);
	ck_assert_uint_eq(fake.issues, 1);
	ck_assert_int_eq(fake.last_want, fake_wall(NULL) + 30 * (int64_t)SEC);
	ck_assert_uint_eq(current_seq(b), 2);
	ck_assert_str_eq(b->secrets[0].lease.id, "role1");
	broker_free(b);
}
END_TEST

/* A handle opened before a renewal reads on past the old expiry: it is
 * the same credential, now valid for longer. */
START_TEST(test_broker_renewal_extends_open_handles)
{
	struct broker *b = make_broker("30s", "1h");
	uint64_t start = now_usec, next;
	struct version *v1;
	char buf[64];
	int idx;

	next = run_at(b, now_usec);
	v1 = store_pin_current(b->store, 0);
	ck_assert_ptr_nonnull(v1);
	run_at(b, next);
	ck_assert_uint_eq(fake.renews, 1);
	run_until(b, start + 35 * SEC);
	idx = version_find_file(v1, "password");
	ck_assert_int_ge(idx, 0);
	ck_assert_int_eq(
	    version_read(v1, (size_t)idx, buf, sizeof(buf), 0, now_usec), 4);
	version_unref(v1);
	broker_free(b);
}
END_TEST

START_TEST(test_broker_rotates_near_max_ttl_and_retires_at_expiry)
{
	struct broker *b = make_broker("30s", "60s");
	uint64_t start = now_usec;
	struct version *old;

	/* Renewals while they buy a whole ttl, then a new lease. */
	while (fake.issues < 2 && now_usec < start + 120 * SEC)
		run_at(b, run_at(b, now_usec));
	ck_assert_uint_eq(fake.issues, 2);
	ck_assert_uint_ge(fake.renews, 1);
	ck_assert_str_eq(b->secrets[0].lease.id, "role2");
	/* The old lease is not revoked before it expires... */
	ck_assert_uint_eq(fake.revokes, 0);
	ck_assert_uint_eq(b->secrets[0].retired_count, 1);
	old = store_pin_seq(b->store, 0, current_seq(b) - 1);
	ck_assert_ptr_nonnull(old);
	version_unref(old);
	/* ...and is revoked once it has: never past max_ttl. */
	run_until(b, start + 60 * SEC + 1);
	ck_assert_uint_ge(fake.revokes, 1);
	ck_assert_str_eq(fake.revoked[0], "role1");
	ck_assert_uint_eq(b->secrets[0].retired_count, 0);
	broker_free(b);
}
END_TEST

START_TEST(test_broker_backs_off_and_recovers)
{
	struct broker *b = make_broker("30s", "1h");
	uint64_t t0 = now_usec, next, delay1, delay2;

	fake.issue_result = -ECONNREFUSED;
	next = run_at(b, now_usec);
	ck_assert_uint_eq(b->secrets[0].failures, 1);
	delay1 = next - t0;
	ck_assert_uint_ge(delay1, 1 * SEC);
	ck_assert_uint_le(delay1, 2 * SEC);
	ck_assert_ptr_nonnull(
	    strstr(b->secrets[0].last_error, "fake issue failed"));
	t0 = next;
	next = run_at(b, next);
	delay2 = next - t0;
	ck_assert_uint_ge(delay2, 2 * SEC);
	ck_assert_uint_le(delay2, 4 * SEC);
	fake.issue_result = 0;
	run_at(b, next);
	ck_assert_uint_eq(fake.issues, 1);
	ck_assert_uint_eq(b->secrets[0].failures, 0);
	ck_assert_str_eq(b->secrets[0].last_error, "");
	broker_free(b);
}
END_TEST

/* A refusal a retry will not fix waits the backoff cap (with jitter). */
START_TEST(test_broker_refusal_waits_the_cap)
{
	struct broker *b = make_broker("30s", "1h");
	uint64_t t0 = now_usec;

	fake.issue_result = -EACCES;
	run_until(b, t0 + SCHED_BACKOFF_MAX_USEC / 2 - SEC);
	ck_assert_uint_eq(b->secrets[0].failures, 1);
	run_until(b, t0 + SCHED_BACKOFF_MAX_USEC + SEC);
	ck_assert_uint_eq(b->secrets[0].failures, 2);
	broker_free(b);
}
END_TEST

/* ... but not past the expiry of a credential still served: a TLS
 * verification failure that clears (the wrong CA gone) is retried before
 * the credential dies, and the renewal keeps it. */
START_TEST(test_broker_refusal_retried_before_expiry)
{
	struct broker *b = make_broker("30s", "1h");
	uint64_t start = now_usec;

	run_at(b, now_usec);
	fake.renew_result = -EPERM;
	run_until(b, start + 23 * SEC);
	ck_assert_uint_eq(b->secrets[0].failures, 1);
	ck_assert_uint_eq(b->secrets[0].renewals, 0);
	fake.renew_result = 0;
	run_until(b, start + 30 * SEC - 1);
	ck_assert_uint_eq(b->secrets[0].renewals, 1);
	ck_assert_uint_eq(b->secrets[0].failures, 0);
	run_until(b, start + 31 * SEC);
	ck_assert_int_eq(b->secrets[0].state, SECRET_ACTIVE);
	ck_assert(b->secrets[0].has_lease);
	broker_free(b);
}
END_TEST

START_TEST(test_broker_serves_last_good_until_expiry_only)
{
	struct broker *b = make_broker("30s", "1h");
	uint64_t start = now_usec;

	run_at(b, now_usec);
	fake.renew_result = -ECONNREFUSED;
	fake.revoke_result = -ECONNREFUSED;
	fake.issue_result = -ECONNREFUSED;
	run_until(b, start + 30 * SEC - 1);
	/* Renewals failed, the credential is still served. */
	ck_assert_uint_ge(b->secrets[0].failures, 2);
	ck_assert_uint_eq(current_seq(b), 1);
	run_until(b, start + 30 * SEC);
	ck_assert_uint_eq(current_seq(b), 0);
	ck_assert_int_eq(b->secrets[0].state, SECRET_PENDING);
	ck_assert(!b->secrets[0].has_lease);
	/* The upstream comes back: a new lease, and the expired one is
	 * revoked. */
	fake.renew_result = fake.revoke_result = fake.issue_result = 0;
	run_until(b, start + 400 * SEC);
	ck_assert_uint_eq(fake.issues, 2);
	ck_assert_str_eq(fake.revoked[0], "role1");
	ck_assert_int_eq(b->secrets[0].state, SECRET_ACTIVE);
	broker_free(b);
}
END_TEST

START_TEST(test_broker_revoke_freezes_until_unfreeze)
{
	struct broker *b = make_broker("30s", "30s");
	struct version *pinned;
	json_t *report = NULL;
	char buf[8];

	run_at(b, now_usec);
	run_until(b, now_usec + 25 * SEC); /* one rotation: role2 */
	ck_assert_uint_eq(fake.issues, 2);
	pinned = store_pin_current(b->store, 0);
	ck_assert_int_eq(broker_revoke_slot(b, 0, &report), 0);
	ck_assert(json_is_true(json_object_get(report, "confirmed")));
	ck_assert_uint_eq(
	    json_array_size(json_object_get(
		json_array_get(json_object_get(report, "revoked"), 0),
		"leases")),
	    2);
	json_decref(report);
	/* Gone from the store, open handles fail, both leases revoked. */
	ck_assert_ptr_null(store_pin_current(b->store, 0));
	ck_assert_int_eq(version_read(pinned, 0, buf, sizeof(buf), 0, now_usec),
			 -EIO);
	version_unref(pinned);
	ck_assert_uint_eq(fake.revokes, 2);
	ck_assert_int_eq(b->secrets[0].state, SECRET_FROZEN);
	/* Frozen: time passes, nothing is issued. */
	run_until(b, now_usec + 600 * SEC);
	ck_assert_uint_eq(fake.issues, 2);
	broker_free(b);
}
END_TEST

/* revoke --all also revokes the backends' own identities, and says so. */
START_TEST(test_broker_revoke_all_revokes_identities)
{
	struct broker *b = make_broker("30s", "1h");
	struct control_peer peer = {0, 1, "test"};
	json_t *req = json_pack("{s:s, s:b}", "cmd", "revoke", "all", 1);
	json_t *reply, *ids;

	run_at(b, now_usec);
	reply = broker_control(b, &peer, req);
	ck_assert(json_is_true(json_object_get(reply, "confirmed")));
	ids = json_object_get(reply, "identities");
	ck_assert_uint_eq(json_array_size(ids), 1);
	ck_assert_str_eq(json_string_value(json_object_get(
			     json_array_get(ids, 0), "backend")),
			 "f");
	ck_assert_uint_eq(fake.revoke_alls, 1);
	json_decref(reply);
	/* An identity Vault would not revoke: not confirmed. */
	fake.revoke_all_result = -EAGAIN;
	reply = broker_control(b, &peer, req);
	ck_assert(json_is_false(json_object_get(reply, "confirmed")));
	json_decref(reply);
	/* One secret: only its leases. */
	json_decref(req);
	req = json_pack("{s:s, s:s}", "cmd", "revoke", "name", "db");
	reply = broker_control(b, &peer, req);
	ck_assert_ptr_null(json_object_get(reply, "identities"));
	ck_assert_uint_eq(fake.revoke_alls, 2);
	json_decref(reply);
	json_decref(req);
	broker_free(b);
}
END_TEST

/* An incident record too large for one control reply keeps its leases
 * and confirmations and drops the reader lists (the audit log has them). */
START_TEST(test_broker_record_fits_the_reply)
{
	json_t *readers = json_array(), *rec;
	size_t i;

	for (i = 0; i < 64; i++)
		json_array_append_new(readers,
				      json_pack("{s:i, s:s}", "pid", (int)i,
						"comm", "a-long-process-name"));
	rec = json_pack("{s:b, s:[{s:s, s:[{s:s}], s:o}]}", "confirmed", 1,
			"revoked", "name", "db", "leases", "lease_id", "L1",
			"blast_radius", readers);
	broker_fit_record(rec, 1 << 20);
	ck_assert_ptr_null(json_object_get(rec, "truncated"));
	broker_fit_record(rec, 512);
	ck_assert(json_is_true(json_object_get(rec, "truncated")));
	ck_assert_int_eq(
	    json_integer_value(json_object_get(
		json_object_get(
		    json_array_get(json_object_get(rec, "revoked"), 0),
		    "blast_radius"),
		"readers")),
	    64);
	ck_assert_uint_lt(json_dumpb(rec, NULL, 0, JSON_COMPACT), 512);
	ck_assert_str_eq(
	    json_string_value(json_object_get(
		json_array_get(
		    json_object_get(
			json_array_get(json_object_get(rec, "revoked"), 0),
			"leases"),
		    0),
		"lease_id")),
	    "L1");
	json_decref(rec);
}
END_TEST

/* The blast radius keeps one entry per process, grown on demand up to
 * BROKER_ACCESS_MAX_READERS; later readers are counted as dropped. */
START_TEST(test_broker_readers_grow_to_the_cap)
{
	struct broker *b = make_broker("30s", "1h");
	struct fs_access ev = {.slot = 0,
			       .secret = "db",
			       .file = "password",
			       .version = 1,
			       .uid = 1000,
			       .allowed = true};
	json_t *list;
	int pid;

	for (pid = 1; pid <= BROKER_ACCESS_MAX_READERS + 5; pid++) {
		ev.pid = 100000 + pid;
		broker_on_access(b, &ev);
		broker_on_access(b, &ev);
	}
	list = broker_blast_radius(b, 0);
	ck_assert_uint_eq(json_array_size(list), BROKER_ACCESS_MAX_READERS);
	ck_assert_int_eq(json_integer_value(
			     json_object_get(json_array_get(list, 3), "opens")),
			 2);
	ck_assert_uint_eq(b->access.readers[0].dropped, 10);
	json_decref(list);
	broker_free(b);
}
END_TEST

START_TEST(test_broker_revoke_unconfirmed_is_retried)
{
	struct broker *b = make_broker("30s", "1h");
	json_t *report = NULL;

	run_at(b, now_usec);
	fake.revoke_result = -ETIMEDOUT;
	ck_assert_int_eq(broker_revoke_slot(b, 0, &report), -EIO);
	ck_assert(!json_is_true(json_object_get(report, "confirmed")));
	json_decref(report);
	ck_assert_ptr_null(store_pin_current(b->store, 0));
	/* The revocation is retried in the background until it lands. */
	fake.revoke_result = 0;
	run_until(b, now_usec + 10 * SEC);
	ck_assert_uint_eq(fake.revokes, 1);
	ck_assert_str_eq(fake.revoked[0], "role1");
	ck_assert_uint_eq(b->secrets[0].retired_count, 0);
	broker_free(b);
}
END_TEST

START_TEST(test_broker_polls_unchanged_value_without_churn)
{
	struct broker *b = make_broker("30s", "1h");
	char buf[512];

	fake.polled = true;
	fake.kv_version = 1;
	run_at(b, now_usec);
	ck_assert_uint_eq(current_seq(b), 1);
	read_current(b, ".lease.json", buf, sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "\"expires\": null"));
	/* Polled every 20 s; the same version publishes nothing. */
	run_until(b, now_usec + 100 * SEC);
	ck_assert_uint_eq(fake.issues, 6);
	ck_assert_uint_eq(current_seq(b), 1);
	ck_assert_int_eq(b->secrets[0].state, SECRET_ACTIVE);
	/* A new version is published at the next poll, and never expires. */
	fake.kv_version = 2;
	run_until(b, now_usec + 20 * SEC);
	ck_assert_uint_eq(current_seq(b), 2);
	ck_assert_str_eq(b->secrets[0].lease.id, "kv@2");
	run_until(b, now_usec + 3600 * SEC);
	ck_assert_uint_eq(current_seq(b), 2);
	ck_assert_uint_eq(fake.revokes, 0);
	broker_free(b);
}
END_TEST

START_TEST(test_broker_new_identity_reissues_old_leases)
{
	struct broker *b = make_broker_of("fakeid", "30s", "1h");

	fake.identity = 1;
	run_at(b, now_usec);
	ck_assert_uint_eq(fake.maintains, 1);
	ck_assert_uint_eq(fake.issues, 1);
	/* Renewals of the identity: nothing to re-issue. */
	run_until(b, now_usec + 15 * SEC);
	ck_assert_uint_ge(fake.maintains, 2);
	ck_assert_uint_eq(fake.issues, 1);
	/* A new login: the lease of the old identity is replaced at once. */
	fake.identity = 2;
	run_until(b, now_usec + 10 * SEC);
	ck_assert_uint_eq(fake.issues, 2);
	ck_assert_uint_eq(b->secrets[0].lease.identity, 2);
	ck_assert_str_eq(b->secrets[0].lease.id, "role2");
	broker_free(b);
}
END_TEST

/* Logins fail while the identity runs out (its last renewal at 10 s made
 * it live until 70 s): the lease, good for an hour by itself, died with
 * it, so it is served until 70 s and not after; the upstream no longer
 * knowing it is no revocation (no freeze), and once a login works a new
 * credential comes at once. */
START_TEST(test_broker_identity_death_expires_its_leases)
{
	struct broker *b = make_broker_of("fakeid", "1h", "24h");
	uint64_t start = now_usec;

	fake.identity = 1;
	run_at(b, now_usec);
	ck_assert_uint_eq(fake.issues, 1);
	run_until(b, start + 15 * SEC);
	fake.maintain_result = -EACCES;
	run_until(b, start + 70 * SEC - 1);
	ck_assert_uint_ge(fake.maintains, 4);
	ck_assert_uint_eq(current_seq(b), 1);
	ck_assert_int_eq(b->secrets[0].state, SECRET_ACTIVE);
	run_until(b, start + 70 * SEC);
	ck_assert_ptr_null(store_pin_current(b->store, 0));
	ck_assert(!b->secrets[0].has_lease);
	ck_assert_int_eq(b->secrets[0].state, SECRET_PENDING);
	ck_assert_ptr_nonnull(
	    strstr(b->secrets[0].last_error, "fake login failed"));
	/* Gone upstream with its identity: looked up, renewed or revoked,
	 * the lease is unknown now. */
	fake.check_result = fake.renew_result = -ENOENT;
	run_until(b, start + 100 * SEC);
	ck_assert_int_eq(b->secrets[0].state, SECRET_PENDING);
	ck_assert_uint_eq(fake.issues, 1);
	/* A login works again: a new credential at once. */
	fake.maintain_result = fake.check_result = fake.renew_result = 0;
	fake.identity = 2;
	run_until(b, start + 300 * SEC);
	ck_assert_uint_eq(fake.issues, 2);
	ck_assert_int_eq(b->secrets[0].state, SECRET_ACTIVE);
	ck_assert_uint_eq(b->secrets[0].lease.identity, 2);
	ck_assert_str_eq(b->secrets[0].last_error, "");
	ck_assert_str_eq(fake.revoked[0], "role1");
	broker_free(b);
}
END_TEST

/* A new login leaves the old identity alive until its expiry: a lease of
 * it that cannot be re-issued (issues fail) leaves the mount then, not at
 * its own expiry. */
START_TEST(test_broker_old_identity_death_expires_its_leases)
{
	struct broker *b = make_broker_of("fakeid", "1h", "24h");
	uint64_t start = now_usec;

	fake.identity = 1;
	run_at(b, now_usec);
	run_until(b, start + 15 * SEC);
	/* Identity 1 was renewed at 10 s: it dies at 70 s. */
	fake.identity = 2;
	fake.issue_result = -ECONNREFUSED;
	run_until(b, start + 70 * SEC - 1);
	ck_assert_uint_eq(current_seq(b), 1);
	ck_assert_int_eq(b->secrets[0].state, SECRET_ACTIVE);
	ck_assert_uint_eq(b->secrets[0].lease.identity, 1);
	run_until(b, start + 70 * SEC);
	ck_assert_ptr_null(store_pin_current(b->store, 0));
	ck_assert_int_eq(b->secrets[0].state, SECRET_PENDING);
	fake.issue_result = 0;
	run_until(b, start + 400 * SEC);
	ck_assert_int_eq(b->secrets[0].state, SECRET_ACTIVE);
	ck_assert_uint_eq(b->secrets[0].lease.identity, 2);
	broker_free(b);
}
END_TEST

/* A renewal that finds the lease gone upstream takes the credential out
 * of the mount at once and freezes, as the lease check would. */
START_TEST(test_broker_renewal_finding_lease_gone_freezes)
{
	struct broker *b = make_broker("30s", "1h");

	run_at(b, now_usec);
	ck_assert_uint_eq(fake.issues, 1);
	fake.renew_result = -ENOENT;
	run_until(b, now_usec + 25 * SEC);
	ck_assert_int_eq(b->secrets[0].state, SECRET_FROZEN);
	ck_assert_ptr_null(store_pin_current(b->store, 0));
	run_until(b, now_usec + 100 * SEC);
	ck_assert_uint_eq(fake.issues, 1);
	broker_free(b);
	/* The revocation ran (on its own thread) before the broker went. */
	ck_assert_uint_eq(fake.revokes, 1);
}
END_TEST

/* A renewal that reaches the upstream only after the lease ran out (a
 * stalled host) finds it gone too: that is no revocation, and a new
 * credential follows at once instead of a freeze. */
START_TEST(test_broker_late_renewal_reissues)
{
	struct broker *b = make_broker("30s", "1h");
	uint64_t start = now_usec;

	run_at(b, now_usec);
	ck_assert_uint_eq(fake.issues, 1);
	fake.renew_result = -ENOENT;
	/* The renewal was due at ~20 s; the host wakes at 31 s. */
	run_at(b, start + 31 * SEC);
	fake.renew_result = 0;
	run_until(b, start + 32 * SEC);
	ck_assert_int_eq(b->secrets[0].state, SECRET_ACTIVE);
	ck_assert_uint_eq(fake.issues, 2);
	ck_assert_str_eq(b->secrets[0].lease.id, "role2");
	ck_assert_uint_eq(current_seq(b), 2);
	broker_free(b);
}
END_TEST

START_TEST(test_broker_lease_revoked_outside_is_frozen)
{
	struct broker *b = make_broker_of("fakeid", "1h", "1h");

	run_at(b, now_usec);
	run_until(b, now_usec + 31 * SEC);
	ck_assert_uint_eq(fake.checks, 1);
	ck_assert_int_eq(b->secrets[0].state, SECRET_ACTIVE);
	fake.check_result = -ENOENT;
	run_until(b, now_usec + 30 * SEC);
	ck_assert_uint_eq(fake.checks, 2);
	ck_assert_int_eq(b->secrets[0].state, SECRET_FROZEN);
	ck_assert_ptr_null(store_pin_current(b->store, 0));
	/* A failing lookup is not a revocation. */
	broker_free(b);
	b = make_broker_of("fakeid", "1h", "1h");
	run_at(b, now_usec);
	fake.check_result = -ETIMEDOUT;
	run_until(b, now_usec + 31 * SEC);
	ck_assert_uint_eq(fake.checks, 1);
	ck_assert_int_eq(b->secrets[0].state, SECRET_ACTIVE);
	broker_free(b);
}
END_TEST

static int file_index(struct broker *b, const char *name)
{
	struct version *v = store_pin_current(b->store, 0);
	int idx = version_find_file(v, name);

	version_unref(v);
	return idx;
}

START_TEST(test_broker_every_key_keeps_file_indexes)
{
	struct broker *b;
	int extra, pw;

	files_json = ", \"files\": [\"*\", \"json\"]";
	b = make_broker("30s", "1h");
	files_json = "";
	fake.polled = true;
	fake.kv_version = 2; /* with "extra" */
	run_at(b, now_usec);
	extra = file_index(b, "extra");
	pw = file_index(b, "password");
	ck_assert_int_ge(extra, 0);
	ck_assert_int_ge(pw, 0);
	ck_assert_int_eq(file_index(b, "bad/key"), -ENOENT);
	ck_assert_int_ge(file_index(b, "json"), 0);
	fake.kv_version = 3; /* "extra" gone: a hole, same indexes */
	run_until(b, now_usec + 20 * SEC);
	ck_assert_uint_eq(current_seq(b), 2);
	ck_assert_int_eq(file_index(b, "extra"), -ENOENT);
	ck_assert_int_eq(file_index(b, "password"), pw);
	fake.kv_version = 4; /* back at its old index */
	run_until(b, now_usec + 20 * SEC);
	ck_assert_int_eq(file_index(b, "extra"), extra);
	broker_free(b);
}
END_TEST

static bool pinnable(struct broker *b, uint64_t seq)
{
	struct version *v = store_pin_seq(b->store, 0, seq);
	bool found = v != NULL;

	version_unref(v);
	return found;
}

START_TEST(test_broker_overlap_revokes_old_credential_early)
{
	struct broker *b;
	uint64_t start, rotated, old_seq;

	files_json = ", \"overlap\": \"5s\"";
	b = make_broker("30s", "30s");
	files_json = "";
	start = now_usec;
	run_at(b, now_usec);
	while (fake.issues < 2 && now_usec < start + 60 * SEC)
		run_at(b, run_at(b, now_usec));
	ck_assert_uint_eq(fake.issues, 2);
	rotated = now_usec;
	old_seq = current_seq(b) - 1;
	ck_assert(pinnable(b, old_seq));
	run_until(b, rotated + 5 * SEC + 1);
	/* Revoked 5 s after the rotation, long before its expiry, and its
	 * version is no longer served. */
	ck_assert_uint_eq(fake.revokes, 1);
	ck_assert_str_eq(fake.revoked[0], "role1");
	ck_assert(!pinnable(b, old_seq));
	ck_assert(pinnable(b, old_seq + 1));
	broker_free(b);
}
END_TEST

/* ---- the wall clock jumping ----
 *
 * The broker schedules on CLOCK_MONOTONIC and keeps leases in wall time.
 * Here the wall clock jumps by an hour while monotonic time runs on: the
 * upstream granted each lease a lifetime, counted from when it granted it
 * (Vault's clock does not jump with ours), so a credential is valid from
 * its publication for its TTL of monotonic time -- no longer (not served
 * once expired) and no shorter (neither dropped nor revoked early).
 * Renewals stay at ~2/3 of the TTL and nothing loops. */

static int64_t wall_jump;

static int64_t jumpy_wall(void *arg)
{
	return fake_wall(arg) + wall_jump;
}

/* The same monotonic clock as fake_clock (which the store and the FUSE
 * side keep and read mono from), with a wall clock that can jump. */
static const struct clock jumpy_clock = {fake_mono, jumpy_wall, NULL};

static struct broker *make_jumpy_broker(const char *type, const char *ttl,
					const char *max_ttl)
{
	struct broker *b = make_broker_of(type, ttl, max_ttl);

	wall_jump = 0;
	b->clk = &jumpy_clock;
	return b;
}

/* run_until, counting the steps (each runs at least one job), so a job
 * that keeps rescheduling itself a moment later shows up as a large count
 * (one rescheduling itself "now" would spin in broker_run_due: the check
 * timeout catches that). */
static unsigned run_until_steps(struct broker *b, uint64_t t)
{
	uint64_t next = run_at(b, now_usec);
	unsigned steps = 0;

	while (next <= t && steps < 100000) {
		next = run_at(b, next);
		steps++;
	}
	now_usec = t;
	return steps;
}

#define HOUR (3600 * (int64_t)SEC)

/* Healthy upstream, wall clock +1 h or -1 h five seconds after the issue:
 * the credential stays until its renewal at ~2/3 of the TTL, which comes
 * on time, and from then on every renewal does; no extra issue, no
 * revocation, a bounded number of jobs. */
static void check_jump_keeps_schedule(int64_t jump, const char *max_ttl)
{
	struct broker *b = make_jumpy_broker("fakeid", "30s", max_ttl);
	uint64_t start = now_usec;
	unsigned steps;

	fake.identity = 1;
	run_at(b, now_usec);
	ck_assert_uint_eq(fake.issues, 1);
	run_until(b, start + 5 * SEC);
	wall_jump = jump;
	run_until(b, start + 18 * SEC);
	ck_assert_uint_eq(current_seq(b), 1);
	ck_assert_uint_eq(fake.renews, 0);
	ck_assert_int_eq(b->secrets[0].state, SECRET_ACTIVE);
	run_until(b, start + 22 * SEC);
	ck_assert_uint_eq(fake.renews, 1);
	ck_assert_uint_eq(fake.issues, 1);
	ck_assert_uint_eq(current_seq(b), 2);
	/* Upstreams are told times in our (jumped) wall clock. */
	ck_assert_int_ge(fake.last_want, jumpy_wall(NULL) + 26 * (int64_t)SEC);
	ck_assert_int_le(fake.last_want, jumpy_wall(NULL) + 30 * (int64_t)SEC);
	/* Ten minutes: a renewal every 18.6-21.6 s, nothing else. */
	steps = run_until_steps(b, start + 622 * SEC);
	ck_assert_uint_ge(fake.renews, 600 / 22);
	ck_assert_uint_le(fake.renews, 622 / 18 + 1);
	ck_assert_uint_eq(fake.issues, 1);
	ck_assert_uint_eq(fake.revokes, 0);
	ck_assert_int_eq(b->secrets[0].state, SECRET_ACTIVE);
	ck_assert_str_eq(b->secrets[0].lease.id, "role1");
	/* renewals + expiries + identity every 10 s + checks every 30 s */
	ck_assert_uint_le(steps, 4 * 622 / 10);
	ck_assert_uint_le(sched_count(b->sched), 8);
	broker_free(b);
}

START_TEST(test_broker_wall_jump_forward_keeps_schedule)
{
	check_jump_keeps_schedule(HOUR, "24h");
}
END_TEST

/* A jump past the max TTL (by the wall clock): the renewal must not read
 * the lease's unchanged max_wall against the jumped clock as past (it
 * once expired and dropped the live credential at its first renewal). */
START_TEST(test_broker_wall_jump_past_max_ttl_keeps_schedule)
{
	check_jump_keeps_schedule(3 * HOUR, "1h");
}
END_TEST

START_TEST(test_broker_wall_jump_back_keeps_schedule)
{
	check_jump_keeps_schedule(-HOUR, "24h");
}
END_TEST

/* Upstream down from the first renewal on, wall clock +1 h: by the wall
 * clock the lease ran out at once, but it is served until its monotonic
 * expiry (30 s after the issue), not a moment longer; the upstream back,
 * a new lease, and the expired one revoked. */
START_TEST(test_broker_wall_jump_forward_outage_expires_on_time)
{
	struct broker *b = make_jumpy_broker("fakeid", "30s", "24h");
	uint64_t start = now_usec;
	unsigned steps;

	fake.identity = 1;
	run_at(b, now_usec);
	fake.renew_result = fake.issue_result = fake.revoke_result =
	    -ECONNREFUSED;
	run_until(b, start + 5 * SEC);
	wall_jump = HOUR;
	steps = run_until_steps(b, start + 30 * SEC - 1);
	ck_assert_uint_eq(current_seq(b), 1);
	ck_assert_int_eq(b->secrets[0].state, SECRET_ACTIVE);
	ck_assert_uint_ge(b->secrets[0].failures, 2);
	ck_assert_uint_eq(fake.issues, 1);
	run_until(b, start + 30 * SEC);
	ck_assert_uint_eq(current_seq(b), 0);
	ck_assert_int_eq(b->secrets[0].state, SECRET_PENDING);
	ck_assert(!b->secrets[0].has_lease);
	fake.renew_result = fake.issue_result = fake.revoke_result = 0;
	steps += run_until_steps(b, start + 400 * SEC);
	ck_assert_uint_eq(fake.issues, 2);
	ck_assert_str_eq(fake.revoked[0], "role1");
	ck_assert_int_eq(b->secrets[0].state, SECRET_ACTIVE);
	ck_assert_str_eq(b->secrets[0].lease.id, "role2");
	ck_assert_uint_ge(current_seq(b), 2);
	ck_assert_uint_le(steps, 4 * 400 / 10);
	broker_free(b);
}
END_TEST

/* An outage with the wall clock jumping back 1 h: at the monotonic
 * expiry the credential is expired for good (pending, no lease, retired;
 * no renewal of the dead lease), and once the upstream is back a new one
 * is issued, not a freeze.  (The broker once compared the wall clock
 * here, and froze the secret when the upstream said "lease not found".) */
START_TEST(test_broker_wall_jump_back_outage_expires_on_time)
{
	struct broker *b = make_jumpy_broker("fakeid", "30s", "24h");
	uint64_t start = now_usec;

	fake.identity = 1;
	run_at(b, now_usec);
	fake.renew_result = fake.issue_result = fake.revoke_result =
	    -ECONNREFUSED;
	run_until(b, start + 5 * SEC);
	wall_jump = -HOUR;
	run_until(b, start + 30 * SEC - 1);
	ck_assert_uint_eq(current_seq(b), 1);
	run_until(b, start + 30 * SEC);
	ck_assert_uint_eq(current_seq(b), 0);
	/* Expired is expired: pending, no lease, retired. */
	ck_assert_int_eq(b->secrets[0].state, SECRET_PENDING);
	ck_assert(!b->secrets[0].has_lease);
	/* The upstream back; it no longer knows the expired lease. */
	fake.issue_result = fake.revoke_result = 0;
	fake.renew_result = -ENOENT;
	while (fake.issues < 2 && now_usec < start + 400 * SEC)
		run_at(b, run_at(b, now_usec));
	/* The new lease renews normally. */
	fake.renew_result = 0;
	run_until(b, start + 400 * SEC);
	ck_assert_int_eq(b->secrets[0].state, SECRET_ACTIVE);
	ck_assert_uint_eq(fake.issues, 2);
	ck_assert_str_eq(b->secrets[0].lease.id, "role2");
	ck_assert_str_eq(fake.revoked[0], "role1");
	broker_free(b);
}
END_TEST

/* max_ttl 1 h and the wall clock +1 h five seconds after the issue: the
 * refresh at ~20 s renews (20 s of the hour have passed, whatever the wall
 * clock says), and nothing is revoked early.  (Measured on the wall clock,
 * the broker once rotated and revoked the old lease 10 s before it
 * expired.) */
START_TEST(test_broker_wall_jump_forward_no_early_revoke)
{
	struct broker *b = make_jumpy_broker("fakeid", "30s", "1h");
	uint64_t start = now_usec;

	fake.identity = 1;
	run_at(b, now_usec);
	run_until(b, start + 5 * SEC);
	wall_jump = HOUR;
	run_until(b, start + 29 * SEC);
	ck_assert_uint_eq(fake.revokes, 0);
	ck_assert_uint_eq(fake.issues, 1);
	ck_assert_uint_eq(fake.renews, 1);
	broker_free(b);
}
END_TEST

/* max_ttl 60 s and the wall clock -1 h five seconds after the issue: the
 * credential is rotated before 60 s and the old lease revoked at its
 * expiry, never kept past max_ttl.  (Measured on the wall clock, it was
 * once renewed for an hour.) */
START_TEST(test_broker_wall_jump_back_keeps_max_ttl)
{
	struct broker *b = make_jumpy_broker("fakeid", "30s", "60s");
	uint64_t start = now_usec;

	fake.identity = 1;
	run_at(b, now_usec);
	run_until(b, start + 5 * SEC);
	wall_jump = -HOUR;
	run_until(b, start + 60 * SEC + 1);
	ck_assert_uint_ge(fake.issues, 2);
	ck_assert_uint_ge(fake.revokes, 1);
	ck_assert_str_eq(fake.revoked[0], "role1");
	broker_free(b);
}
END_TEST

static Suite *broker_suite(void)
{
	Suite *s = suite_create("broker");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_broker_issues_and_publishes);
	tcase_add_test(tc, test_broker_renews_at_two_thirds);
	tcase_add_test(tc, test_broker_renewal_extends_open_handles);
	tcase_add_test(tc,
		       test_broker_rotates_near_max_ttl_and_retires_at_expiry);
	tcase_add_test(tc, test_broker_backs_off_and_recovers);
	tcase_add_test(tc, test_broker_refusal_waits_the_cap);
	tcase_add_test(tc, test_broker_refusal_retried_before_expiry);
	tcase_add_test(tc, test_broker_serves_last_good_until_expiry_only);
	tcase_add_test(tc, test_broker_revoke_freezes_until_unfreeze);
	tcase_add_test(tc, test_broker_readers_grow_to_the_cap);
	tcase_add_test(tc, test_broker_revoke_unconfirmed_is_retried);
	tcase_add_test(tc, test_broker_record_fits_the_reply);
	tcase_add_test(tc, test_broker_revoke_all_revokes_identities);
	tcase_add_test(tc, test_broker_polls_unchanged_value_without_churn);
	tcase_add_test(tc, test_broker_new_identity_reissues_old_leases);
	tcase_add_test(tc, test_broker_identity_death_expires_its_leases);
	tcase_add_test(tc, test_broker_old_identity_death_expires_its_leases);
	tcase_add_test(tc, test_broker_lease_revoked_outside_is_frozen);
	tcase_add_test(tc, test_broker_renewal_finding_lease_gone_freezes);
	tcase_add_test(tc, test_broker_late_renewal_reissues);
	tcase_add_test(tc, test_broker_every_key_keeps_file_indexes);
	tcase_add_test(tc, test_broker_overlap_revokes_old_credential_early);
	tcase_add_test(tc, test_broker_wall_jump_forward_keeps_schedule);
	tcase_add_test(tc, test_broker_wall_jump_past_max_ttl_keeps_schedule);
	tcase_add_test(tc, test_broker_wall_jump_back_keeps_schedule);
	tcase_add_test(tc,
		       test_broker_wall_jump_forward_outage_expires_on_time);
	tcase_add_test(tc, test_broker_wall_jump_back_outage_expires_on_time);
	tcase_add_test(tc, test_broker_wall_jump_forward_no_early_revoke);
	tcase_add_test(tc, test_broker_wall_jump_back_keeps_max_ttl);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(broker_suite());
	int failed;

	/* As the daemon does: jansson's blocks are wiped, and freeing one
	 * with free() would be caught. */
	json_set_alloc_funcs(zalloc_malloc, zalloc_free);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
