/* The vault backend's request sequences and token/lease lifecycle, over a
 * scripted transport: each test lists the requests it expects, in order,
 * with the answers Vault would give.  The wire format itself is covered by
 * test_vault_api; the real exchange with a Vault simulator by the
 * integration tests. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "clock.h"
#include "vault.h"
#include "vault_config.h"

#define MAX_STEPS 16
#define USEC 1000000LL

struct step {
	const char *method;
	const char *path; /* after /v1/ */
	long status;
	const char *body; /* the answer */
	int error;	  /* a transport failure instead */
};

struct seen {
	char method[8];
	char path[256];
	char token[64]; /* "" when none was sent */
	char ns[64];
	char body[1024];
	bool vault_request;
};

struct fake_http {
	struct http_transport base;
	struct step steps[MAX_STEPS];
	size_t count, next;
	struct seen seen[MAX_STEPS];
};

static struct fake_http fake;
static struct vault_config cfg;
static char jwt_path[] = "/tmp/cb-test-vault-jwt-XXXXXX";

static void copy_secret(const struct secret *s, char *buf, size_t size)
{
	size_t len = 0;
	const char *p = s ? secret_expose(s, &len) : "";

	ck_assert_uint_lt(len, size);
	memcpy(buf, p, len);
	buf[len] = '\0';
}

static int fake_perform(struct http_transport *t,
			const struct http_request *req,
			struct http_response *resp, struct errmsg *err)
{
	struct step *st;
	struct seen *sn;
	const char *path = strstr(req->url, "/v1/");
	size_t i;

	ck_assert_msg(fake.next < fake.count, "unexpected request %s %s",
		      req->method, req->url);
	st = &fake.steps[fake.next];
	sn = &fake.seen[fake.next++];
	ck_assert_ptr_nonnull(path);
	ck_assert_str_eq(req->method, st->method);
	ck_assert_str_eq(path + 4, st->path);
	(void)snprintf(sn->method, sizeof(sn->method), "%s", req->method);
	(void)snprintf(sn->path, sizeof(sn->path), "%s", path + 4);
	for (i = 0; i < req->header_count; i++) {
		const struct http_header *h = &req->headers[i];

		if (strcmp(h->name, "X-Vault-Token") == 0)
			copy_secret(h->secret_value, sn->token,
				    sizeof(sn->token));
		if (strcmp(h->name, "X-Vault-Namespace") == 0)
			(void)snprintf(sn->ns, sizeof(sn->ns), "%s", h->value);
		if (strcmp(h->name, "X-Vault-Request") == 0)
			sn->vault_request = strcmp(h->value, "true") == 0;
	}
	copy_secret(req->body, sn->body, sizeof(sn->body));
	if (st->error != 0)
		return errmsg_set(err, st->error, "scripted failure");
	resp->status = st->status;
	ck_assert_int_eq(secret_from(st->body, strlen(st->body), &resp->body),
			 0);
	return 0;
}

static void fake_destroy(struct http_transport *t)
{
}

static const struct http_transport_ops fake_ops = {fake_perform, fake_destroy};

static void script(const struct step *steps, size_t n)
{
	memset(&fake, 0, sizeof(fake));
	fake.base.ops = &fake_ops;
	if (n > 0)
		memcpy(fake.steps, steps, n * sizeof(*steps));
	fake.count = n;
}

static void write_jwt(const char *text)
{
	FILE *f = fopen(jwt_path, "we");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fputs(text, f), 0);
	ck_assert_int_eq(fclose(f), 0);
}

static void setup(void)
{
	int fd = mkstemp(jwt_path);

	ck_assert_int_ge(fd, 0);
	close(fd);
	write_jwt("aaa.bbb.ccc\n");
	memset(&cfg, 0, sizeof(cfg));
	(void)snprintf(cfg.address, sizeof(cfg.address),
		       "https://vault.test:8200");
	(void)snprintf(cfg.auth_mount, sizeof(cfg.auth_mount), "kubernetes");
	(void)snprintf(cfg.role, sizeof(cfg.role), "app");
	(void)snprintf(cfg.token_file, sizeof(cfg.token_file), "%s", jwt_path);
}

static void teardown(void)
{
	(void)unlink(jwt_path);
	(void)snprintf(jwt_path, sizeof(jwt_path),
		       "/tmp/cb-test-vault-jwt-XXXXXX");
}

static struct backend *backend(void)
{
	struct backend *b = NULL;

	ck_assert_int_eq(vault_backend_create_with(&cfg, &fake.base, &b), 0);
	return b;
}

#define LOGIN(token, ttl)                                                      \
	{                                                                      \
		"POST", "auth/kubernetes/login", 200,                          \
		    "{\"auth\":{\"client_token\":\"" token                     \
		    "\",\"accessor\":\"acc\","                                 \
		    "\"policies\":[\"default\"],\"lease_duration\":" #ttl      \
		    ",\"renewable\":true}}",                                   \
		    0                                                          \
	}
#define CREDS_BODY                                                             \
	"{\"request_id\":\"r\",\"lease_id\":\"database/creds/app/L1\","        \
	"\"renewable\":true,\"lease_duration\":30,\"data\":{\"username\":"     \
	"\"v-app-1\",\"password\":\"pw-1\"},\"wrap_info\":null,"               \
	"\"warnings\":null,\"auth\":null}"

static struct vault_secret_config leased(void)
{
	struct vault_secret_config sc;

	memset(&sc, 0, sizeof(sc));
	sc.kind = VAULT_LEASED;
	(void)snprintf(sc.path, sizeof(sc.path), "database/creds/app");
	(void)snprintf(sc.method, sizeof(sc.method), "GET");
	(void)snprintf(sc.host, sizeof(sc.host), "db.internal");
	return sc;
}

static int issue(struct backend *b, const struct vault_secret_config *sc,
		 struct lease *lease, struct kv *kv, struct errmsg *err)
{
	struct backend_issue_request req = {"db", sc, 1000 * USEC, 30 * USEC,
					    300 * USEC};

	memset(kv, 0, sizeof(*kv));
	return vault_backend_ops.issue(b, &req, lease, kv, err);
}

static const char *kv_str(const struct kv *kv, const char *key, char *buf,
			  size_t size)
{
	copy_secret(kv_get(kv, key), buf, size);
	return buf;
}

START_TEST(test_vault_login_rereads_jwt)
{
	static const struct step steps[] = {LOGIN("hvs.T1", 60),
					    LOGIN("hvs.T2", 60)};
	struct errmsg err;
	struct backend *b;
	json_t *body;

	script(steps, 2);
	b = backend();
	ck_assert_msg(vault_backend_ops.login(b, &err) == 0, "%s", err.text);
	ck_assert_str_eq(fake.seen[0].token, "");
	ck_assert(fake.seen[0].vault_request);
	body = json_loads(fake.seen[0].body, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(body, "role")),
			 "app");
	/* The trailing newline of the file is not part of the JWT. */
	ck_assert_str_eq(json_string_value(json_object_get(body, "jwt")),
			 "aaa.bbb.ccc");
	json_decref(body);
	/* The kubelet rotated the token: the next login sends the new one. */
	write_jwt("ddd.eee.fff");
	ck_assert_int_eq(vault_backend_ops.login(b, &err), 0);
	ck_assert_ptr_nonnull(strstr(fake.seen[1].body, "ddd.eee.fff"));
	vault_backend_ops.destroy(b);
}
END_TEST

START_TEST(test_vault_bad_token_file)
{
	struct errmsg err;
	struct backend *b;

	script(NULL, 0);
	b = backend();
	write_jwt("not a \"jwt\"");
	ck_assert_int_eq(vault_backend_ops.login(b, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.text, "does not hold a JWT"));
	ck_assert_ptr_null(strstr(err.text, "not a"));
	(void)unlink(jwt_path);
	ck_assert_int_eq(vault_backend_ops.login(b, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err.text, "auth.token_file"));
	vault_backend_ops.destroy(b);
}
END_TEST

START_TEST(test_vault_issue_leased)
{
	static const struct step steps[] = {
	    LOGIN("hvs.T1", 60),
	    {"GET", "database/creds/app", 200, CREDS_BODY, 0},
	};
	struct vault_secret_config sc = leased();
	struct lease lease;
	struct errmsg err;
	struct backend *b;
	struct kv kv;
	char buf[64];

	script(steps, 2);
	b = backend();
	ck_assert_int_eq(issue(b, &sc, &lease, &kv, &err), 0);
	ck_assert_str_eq(fake.seen[1].token, "hvs.T1");
	ck_assert_str_eq(lease.id, "database/creds/app/L1");
	ck_assert_int_eq(lease.expires_wall, 1030 * USEC);
	ck_assert_int_eq(lease.max_wall, LEASE_NO_EXPIRY);
	ck_assert(lease.renewable);
	ck_assert_uint_eq(lease.identity, 1);
	ck_assert_str_eq(kv_str(&kv, "username", buf, sizeof(buf)), "v-app-1");
	ck_assert_str_eq(kv_str(&kv, "password", buf, sizeof(buf)), "pw-1");
	ck_assert_str_eq(kv_str(&kv, "host", buf, sizeof(buf)), "db.internal");
	kv_clear(&kv);
	vault_backend_ops.destroy(b);
}
END_TEST

/* A token revoked behind the broker's back: one new login, one retry. */
START_TEST(test_vault_forbidden_logs_in_again)
{
	static const struct step steps[] = {
	    LOGIN("hvs.T1", 60),
	    {"GET", "database/creds/app", 403,
	     "{\"errors\":[\"permission denied\"]}", 0},
	    LOGIN("hvs.T2", 60),
	    {"GET", "database/creds/app", 200, CREDS_BODY, 0},
	};
	struct vault_secret_config sc = leased();
	struct lease lease;
	struct errmsg err;
	struct backend *b;
	struct kv kv;

	script(steps, 4);
	b = backend();
	ck_assert_int_eq(issue(b, &sc, &lease, &kv, &err), 0);
	ck_assert_str_eq(fake.seen[3].token, "hvs.T2");
	ck_assert_uint_eq(lease.identity, 2);
	kv_clear(&kv);
	vault_backend_ops.destroy(b);
}
END_TEST

/* Renewed at 2/3 of its TTL while Vault extends it by the full TTL; once
 * a renewal grants less (max TTL near), the next upkeep logs in again. */
START_TEST(test_vault_token_renewed_then_replaced)
{
	static const struct step steps[] = {
	    LOGIN("hvs.T1", 60),
	    {"POST", "auth/token/renew-self", 200,
	     "{\"auth\":{\"client_token\":\"hvs.T1\",\"lease_duration\":60,"
	     "\"renewable\":true}}",
	     0},
	    {"POST", "auth/token/renew-self", 200,
	     "{\"auth\":{\"client_token\":\"hvs.T1\",\"lease_duration\":25,"
	     "\"renewable\":true},\"warnings\":[\"TTL of \\\"1m\\\" exceeded "
	     "the effective max_ttl\"]}",
	     0},
	    LOGIN("hvs.T2", 60),
	};
	struct backend_identity id;
	struct errmsg err;
	struct backend *b;
	int64_t t0 = 5000 * USEC;

	script(steps, 4);
	b = backend();
	ck_assert_int_eq(vault_backend_ops.maintain(b, t0, &id, &err), 0);
	ck_assert_uint_eq(id.generation, 1);
	ck_assert_int_eq(id.expires_wall, t0 + 60 * USEC);
	ck_assert_int_eq(id.next_wall, t0 + 40 * USEC);
	/* Too early: nothing is sent. */
	ck_assert_int_eq(
	    vault_backend_ops.maintain(b, t0 + 10 * USEC, &id, &err), 0);
	ck_assert_uint_eq(fake.next, 1);
	ck_assert_int_eq(
	    vault_backend_ops.maintain(b, t0 + 41 * USEC, &id, &err), 0);
	ck_assert_str_eq(fake.seen[1].token, "hvs.T1");
	ck_assert_uint_eq(id.generation, 1);
	ck_assert_int_eq(id.expires_wall, t0 + 101 * USEC);
	ck_assert_int_eq(
	    vault_backend_ops.maintain(b, t0 + 82 * USEC, &id, &err), 0);
	ck_assert_int_eq(id.expires_wall, t0 + 107 * USEC);
	ck_assert_uint_eq(id.generation, 1);
	/* 2/3 of the capped grant: a new token, a new generation, while the
	 * old token still has a third of its life for re-issuing. */
	ck_assert_int_eq(
	    vault_backend_ops.maintain(b, t0 + 99 * USEC, &id, &err), 0);
	ck_assert_uint_eq(id.generation, 2);
	ck_assert_int_eq(id.expires_wall, t0 + 159 * USEC);
	ck_assert_uint_eq(fake.next, 4);
	vault_backend_ops.destroy(b);
}
END_TEST

START_TEST(test_vault_renew_self_forbidden_logs_in)
{
	static const struct step steps[] = {
	    LOGIN("hvs.T1", 60),
	    {"POST", "auth/token/renew-self", 403,
	     "{\"errors\":[\"permission denied\"]}", 0},
	    LOGIN("hvs.T2", 60),
	};
	struct backend_identity id;
	struct errmsg err;
	struct backend *b;

	script(steps, 3);
	b = backend();
	ck_assert_int_eq(vault_backend_ops.maintain(b, 0, &id, &err), 0);
	ck_assert_int_eq(vault_backend_ops.maintain(b, 45 * USEC, &id, &err),
			 0);
	ck_assert_uint_eq(id.generation, 2);
	vault_backend_ops.destroy(b);
}
END_TEST

START_TEST(test_vault_renew_lease)
{
	static const struct step steps[] = {
	    LOGIN("hvs.T1", 60),
	    {"PUT", "sys/leases/renew", 200,
	     "{\"lease_id\":\"database/creds/app/L1\",\"renewable\":true,"
	     "\"lease_duration\":30}",
	     0},
	    {"PUT", "sys/leases/renew", 200,
	     "{\"lease_id\":\"database/creds/app/L1\",\"renewable\":true,"
	     "\"lease_duration\":12}",
	     0},
	    {"PUT", "sys/leases/renew", 400,
	     "{\"errors\":[\"lease not found\"]}", 0},
	};
	struct lease lease;
	struct errmsg err;
	struct backend *b;
	int64_t now;
	json_t *body;

	script(steps, 4);
	b = backend();
	ck_assert_int_eq(vault_backend_ops.login(b, &err), 0);
	memset(&lease, 0, sizeof(lease));
	(void)snprintf(lease.id, sizeof(lease.id), "database/creds/app/L1");
	lease.max_wall = LEASE_NO_EXPIRY;
	now = clock_wall(clock_system());
	ck_assert_int_eq(
	    vault_backend_ops.renew(b, NULL, &lease, now + 30 * USEC, &err), 0);
	body = json_loads(fake.seen[1].body, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(body, "lease_id")),
			 "database/creds/app/L1");
	ck_assert_int_eq(json_integer_value(json_object_get(body, "increment")),
			 30);
	json_decref(body);
	ck_assert_int_eq(lease.max_wall, LEASE_NO_EXPIRY);
	ck_assert_int_ge(lease.expires_wall, now + 30 * USEC);
	/* Granted less than asked: the lease's max TTL is reached. */
	ck_assert_int_eq(
	    vault_backend_ops.renew(b, NULL, &lease, now + 30 * USEC, &err), 0);
	ck_assert_int_eq(lease.max_wall, lease.expires_wall);
	ck_assert_int_lt(lease.expires_wall, now + 14 * USEC);
	ck_assert_int_eq(
	    vault_backend_ops.renew(b, NULL, &lease, now + 30 * USEC, &err),
	    -ENOENT);
	vault_backend_ops.destroy(b);
}
END_TEST

START_TEST(test_vault_revoke_and_check)
{
	static const struct step steps[] = {
	    LOGIN("hvs.T1", 60),
	    {"PUT", "sys/leases/revoke", 204, "", 0},
	    {"PUT", "sys/leases/revoke", 400,
	     "{\"errors\":[\"invalid lease\"]}", 0},
	    {"PUT", "sys/leases/revoke", 400,
	     "{\"errors\":[\"failed to revoke entry: permission denied\"]}", 0},
	    {"PUT", "sys/leases/lookup", 200,
	     "{\"data\":{\"id\":\"database/creds/app/L1\",\"ttl\":20}}", 0},
	    {"PUT", "sys/leases/lookup", 400,
	     "{\"errors\":[\"invalid lease\"]}", 0},
	    {"PUT", "sys/leases/lookup", 400, "{\"errors\":[\"bad request\"]}",
	     0},
	    {"POST", "auth/token/revoke-self", 204, "", 0},
	    LOGIN("hvs.T2", 60),
	    {"GET", "database/creds/app", 200, CREDS_BODY, 0},
	};
	struct vault_secret_config sc = leased();
	struct backend_identity id;
	struct lease lease, kvlease;
	struct errmsg err;
	struct backend *b;
	struct kv kv;

	script(steps, 10);
	b = backend();
	ck_assert_int_eq(vault_backend_ops.login(b, &err), 0);
	memset(&lease, 0, sizeof(lease));
	(void)snprintf(lease.id, sizeof(lease.id), "database/creds/app/L1");
	lease.expires_wall = 100 * USEC;
	ck_assert_int_eq(vault_backend_ops.revoke(b, &lease, &err), 0);
	ck_assert_ptr_nonnull(
	    strstr(fake.seen[1].body, "database/creds/app/L1"));
	/* Already gone is revoked; a revocation Vault could not carry out
	 * is not. */
	ck_assert_int_eq(vault_backend_ops.revoke(b, &lease, &err), 0);
	ck_assert_int_eq(vault_backend_ops.revoke(b, &lease, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.text, "failed to revoke"));
	ck_assert_int_eq(vault_backend_ops.check(b, &lease, &err), 0);
	ck_assert_int_eq(vault_backend_ops.check(b, &lease, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err.text, "no longer knows"));
	/* A 400 that does not say the lease is unknown proves nothing. */
	ck_assert_int_eq(vault_backend_ops.check(b, &lease, &err), -EINVAL);
	/* A KV value has no lease: no request at all. */
	kvlease = lease;
	kvlease.expires_wall = LEASE_NO_EXPIRY;
	ck_assert_int_eq(vault_backend_ops.revoke(b, &kvlease, &err), 0);
	ck_assert_int_eq(vault_backend_ops.check(b, &kvlease, &err), 0);
	ck_assert_int_eq(vault_backend_ops.revoke_all(b, &err), 0);
	ck_assert_str_eq(fake.seen[7].token, "hvs.T1");
	/* Retired with it: no request logs in again by itself, and the
	 * upkeep does nothing, until an explicit login (unfreeze). */
	ck_assert_int_eq(issue(b, &sc, &lease, &kv, &err), -EACCES);
	ck_assert_ptr_nonnull(strstr(err.text, "revoke --all"));
	ck_assert_int_eq(vault_backend_ops.maintain(b, 0, &id, &err), 0);
	ck_assert_uint_eq(fake.next, 8);
	ck_assert_int_eq(vault_backend_ops.login(b, &err), 0);
	ck_assert_int_eq(issue(b, &sc, &lease, &kv, &err), 0);
	ck_assert_str_eq(fake.seen[9].token, "hvs.T2");
	kv_clear(&kv);
	vault_backend_ops.destroy(b);
}
END_TEST

START_TEST(test_vault_kv2_version_is_the_lease)
{
	static const struct step steps[] = {
	    LOGIN("hvs.T1", 60),
	    {"GET", "secret/data/app/config?version=3", 200,
	     "{\"lease_id\":\"\",\"lease_duration\":0,\"renewable\":false,"
	     "\"data\":{\"data\":{\"api_key\":\"k-3\"},\"metadata\":{"
	     "\"version\":3,\"destroyed\":false}}}",
	     0},
	};
	struct vault_secret_config sc;
	struct lease lease;
	struct errmsg err;
	struct backend *b;
	struct kv kv;
	char buf[16];

	memset(&sc, 0, sizeof(sc));
	sc.kind = VAULT_KV2;
	sc.version = 3;
	(void)snprintf(sc.path, sizeof(sc.path), "app/config");
	(void)snprintf(sc.mount, sizeof(sc.mount), "secret");
	script(steps, 2);
	b = backend();
	ck_assert_int_eq(issue(b, &sc, &lease, &kv, &err), 0);
	ck_assert_str_eq(lease.id, "secret/app/config@v3");
	ck_assert_int_eq(lease.expires_wall, LEASE_NO_EXPIRY);
	ck_assert_str_eq(kv_str(&kv, "api_key", buf, sizeof(buf)), "k-3");
	kv_clear(&kv);
	vault_backend_ops.destroy(b);
}
END_TEST

/* KV v1 has no version: equal data gives an equal id, so an unchanged
 * value is not republished, and the id reveals nothing of the data. */
START_TEST(test_vault_kv1_keyed_version)
{
#define KV1(v)                                                                 \
	{                                                                      \
		"GET", "kv/app", 200,                                          \
		    "{\"lease_id\":\"\",\"lease_duration\":2764800,"           \
		    "\"renewable\":false,"                                     \
		    "\"data\":{\"token\":\"" v "\"}}",                         \
		    0                                                          \
	}
	static const struct step steps[] = {LOGIN("hvs.T1", 60), KV1("one"),
					    KV1("one"), KV1("two")};
	struct vault_secret_config sc;
	struct lease l1, l2, l3;
	struct errmsg err;
	struct backend *b;
	struct kv kv;

	memset(&sc, 0, sizeof(sc));
	sc.kind = VAULT_KV1;
	(void)snprintf(sc.path, sizeof(sc.path), "kv/app");
	script(steps, 4);
	b = backend();
	ck_assert_int_eq(issue(b, &sc, &l1, &kv, &err), 0);
	kv_clear(&kv);
	ck_assert_int_eq(issue(b, &sc, &l2, &kv, &err), 0);
	kv_clear(&kv);
	ck_assert_int_eq(issue(b, &sc, &l3, &kv, &err), 0);
	kv_clear(&kv);
	ck_assert_str_eq(l1.id, l2.id);
	ck_assert_str_ne(l1.id, l3.id);
	ck_assert_int_eq(strncmp(l1.id, "kv/app@", 7), 0);
	ck_assert_int_eq(l1.expires_wall, LEASE_NO_EXPIRY);
	vault_backend_ops.destroy(b);
#undef KV1
}
END_TEST

START_TEST(test_vault_namespace_header)
{
	static const struct step steps[] = {
	    LOGIN("hvs.T1", 60),
	    {"GET", "database/creds/app", 200, CREDS_BODY, 0},
	};
	struct vault_secret_config sc = leased();
	struct lease lease;
	struct errmsg err;
	struct backend *b;
	struct kv kv;

	(void)snprintf(cfg.namespace_, sizeof(cfg.namespace_), "team-a");
	script(steps, 2);
	b = backend();
	ck_assert_int_eq(issue(b, &sc, &lease, &kv, &err), 0);
	ck_assert_str_eq(fake.seen[0].ns, "team-a");
	ck_assert_str_eq(fake.seen[1].ns, "team-a");
	kv_clear(&kv);
	vault_backend_ops.destroy(b);
}
END_TEST

START_TEST(test_vault_errors_named)
{
	static const struct step steps[] = {
	    LOGIN("hvs.T1", 60),
	    {"GET", "database/creds/app", 503,
	     "{\"errors\":[\"Vault is sealed\"]}", 0},
	    {"GET", "database/creds/app", 0, "", -ETIMEDOUT},
	    {"GET", "database/creds/app", 200, "{\"data\": [", 0},
	    {"GET", "database/creds/app", 400,
	     "{\"errors\":[\"unknown role: app\"]}", 0},
	};
	struct vault_secret_config sc = leased();
	struct lease lease;
	struct errmsg err;
	struct backend *b;
	struct kv kv;

	script(steps, 5);
	b = backend();
	ck_assert_int_eq(issue(b, &sc, &lease, &kv, &err), -EAGAIN);
	ck_assert_ptr_nonnull(strstr(err.text, "503"));
	ck_assert_ptr_nonnull(strstr(err.text, "Vault is sealed"));
	ck_assert_ptr_nonnull(strstr(err.text, "database/creds/app"));
	ck_assert_int_eq(issue(b, &sc, &lease, &kv, &err), -ETIMEDOUT);
	ck_assert_ptr_nonnull(strstr(err.text, "database/creds/app"));
	ck_assert_int_eq(issue(b, &sc, &lease, &kv, &err), -EPROTO);
	ck_assert_int_eq(issue(b, &sc, &lease, &kv, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.text, "unknown role"));
	vault_backend_ops.destroy(b);
}
END_TEST

static Suite *vault_suite(void)
{
	Suite *s = suite_create("vault");
	TCase *tc = tcase_create("lifecycle");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_vault_login_rereads_jwt);
	tcase_add_test(tc, test_vault_bad_token_file);
	tcase_add_test(tc, test_vault_issue_leased);
	tcase_add_test(tc, test_vault_forbidden_logs_in_again);
	tcase_add_test(tc, test_vault_token_renewed_then_replaced);
	tcase_add_test(tc, test_vault_renew_self_forbidden_logs_in);
	tcase_add_test(tc, test_vault_renew_lease);
	tcase_add_test(tc, test_vault_revoke_and_check);
	tcase_add_test(tc, test_vault_kv2_version_is_the_lease);
	tcase_add_test(tc, test_vault_kv1_keyed_version);
	tcase_add_test(tc, test_vault_namespace_header);
	tcase_add_test(tc, test_vault_errors_named);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(vault_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
