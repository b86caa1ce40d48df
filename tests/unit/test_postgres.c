/* The postgres backend against a real, throwaway PostgreSQL: run under
 * tests/integration/with_pg.py, which exports CB_TEST_PG_DSN_FILE (admin
 * DSN, superuser, database cbtest with tables granted_t and secret_t),
 * CB_TEST_PG_SOCKET and CB_TEST_PG_PORT.  Without them only the config
 * tests run. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "backend.h"
#include "kv.h"
#include "postgres.h"
#include "secret.h"

static const struct backend_ops *ops = &postgres_backend_ops;

/* ---- helpers ---------------------------------------------------------- */

static json_t *json(const char *text)
{
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);

	ck_assert_msg(j != NULL, "bad test JSON: %s", jerr.text);
	return j;
}

static int parse_cfg(const char *text, void **cfg, struct errmsg *err)
{
	json_t *j = json(text);
	int r;

	memset(err, 0, sizeof(*err));
	r = ops->parse_config(j, "backends.pg", cfg, err);
	json_decref(j);
	return r;
}

static int parse_secret(const char *text, void **cfg, struct errmsg *err)
{
	json_t *j = text != NULL ? json(text) : NULL;
	int r;

	memset(err, 0, sizeof(*err));
	r = ops->parse_secret_config(j, "secrets[0].postgres", cfg, err);
	json_decref(j);
	return r;
}

static void assert_cfg_error(const char *text, const char *want)
{
	struct errmsg err;
	void *cfg = NULL;
	int r = parse_cfg(text, &cfg, &err);

	ck_assert_int_eq(r, -EINVAL);
	ck_assert_ptr_null(cfg);
	ck_assert_msg(strstr(err.text, want) != NULL, "\"%s\" lacks \"%s\"",
		      err.text, want);
}

static void assert_secret_error(const char *text, const char *want)
{
	struct errmsg err;
	void *cfg = NULL;
	int r = parse_secret(text, &cfg, &err);

	ck_assert_int_eq(r, -EINVAL);
	ck_assert_ptr_null(cfg);
	ck_assert_msg(strstr(err.text, want) != NULL, "\"%s\" lacks \"%s\"",
		      err.text, want);
}

static const char *dsn_file(void)
{
	const char *f = getenv("CB_TEST_PG_DSN_FILE");

	ck_assert_msg(f != NULL, "CB_TEST_PG_DSN_FILE not set");
	return f;
}

static int64_t now_wall(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static double now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A 0600 (or mode) temp file holding text; the caller unlinks it. */
static char *temp_file(const char *text, mode_t mode)
{
	char *path = strdup("/tmp/cbpgtest-XXXXXX");
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static struct backend *backend_for(const char *file, const char *extra)
{
	char text[1024];
	struct errmsg err = {{0}};
	struct backend *b = NULL;
	void *cfg = NULL;

	snprintf(text, sizeof(text),
		 "{\"type\": \"postgres\", \"admin_dsn_file\": \"%s\"%s}", file,
		 extra != NULL ? extra : "");
	ck_assert_int_eq(parse_cfg(text, &cfg, &err), 0);
	ck_assert_int_eq(ops->create(cfg, &b), 0);
	ops->free_config(cfg);
	return b;
}

static struct backend *backend_new(void)
{
	struct backend *b = backend_for(dsn_file(), NULL);
	struct errmsg err = {{0}};

	ck_assert_msg(ops->login(b, &err) == 0, "login: %s", err.text);
	return b;
}

static void *secret_cfg(const char *text)
{
	struct errmsg err;
	void *cfg = NULL;

	ck_assert_msg(parse_secret(text, &cfg, &err) == 0, "%s", err.text);
	return cfg;
}

/* kv value as a NUL-terminated string in buf. */
static const char *value(const struct kv *kv, const char *key, char *buf,
			 size_t size)
{
	const struct secret *s = kv_get(kv, key);
	size_t len;
	const char *p;

	ck_assert_msg(s != NULL, "no %s", key);
	p = secret_expose(s, &len);
	ck_assert_uint_lt(len, size);
	memcpy(buf, p, len);
	buf[len] = '\0';
	return buf;
}

/* The server logs every statement (with_pg.py sets log_statement=all):
 * the password just issued must not be in its log, nor in the message. */
static void assert_not_in_server_log(const struct kv *kv)
{
	const char *path = getenv("CB_TEST_PG_LOG");
	static char log[4 * 1024 * 1024];
	const struct secret *pw = kv_get(kv, "password");
	size_t n, len;
	const void *p;
	FILE *f;

	ck_assert_msg(path != NULL, "CB_TEST_PG_LOG not set");
	ck_assert_ptr_nonnull(pw);
	p = secret_expose(pw, &len);
	f = fopen(path, "re");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	n = fread(log, 1, sizeof(log), f);
	fclose(f);
	ck_assert_uint_gt(n, 0);
	ck_assert_msg(memmem(log, n, p, len) == NULL,
		      "an issued password is in the server log");
}

static int issue(struct backend *b, void *scfg, const char *name,
		 uint64_t ttl_sec, struct lease *lease, struct kv *kv,
		 struct errmsg *err)
{
	struct backend_issue_request req = {
	    .secret_name = name,
	    .secret_cfg = scfg,
	    .now_wall = now_wall(),
	    .ttl_usec = ttl_sec * 1000000,
	    .max_ttl_usec = 2 * ttl_sec * 1000000,
	};

	int r;

	memset(err, 0, sizeof(*err));
	r = ops->issue(b, &req, lease, kv, err);
	if (r == 0)
		assert_not_in_server_log(kv);
	return r;
}

static PGconn *admin_conn(void)
{
	char dsn[1024];
	FILE *f = fopen(dsn_file(), "r");
	PGconn *c;

	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(dsn, sizeof(dsn), f));
	fclose(f);
	dsn[strcspn(dsn, "\n")] = '\0';
	c = PQconnectdb(dsn);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "admin: %s",
		      PQerrorMessage(c));
	return c;
}

/* The issued credentials' own session. */
static PGconn *role_conn(const struct kv *kv)
{
	char user[128], pw[128], host[512], port[16], db[128];
	const char *keys[] = {"user", "password", "host",
			      "port", "dbname",	  NULL};
	const char *vals[6];

	vals[0] = value(kv, "username", user, sizeof(user));
	vals[1] = value(kv, "password", pw, sizeof(pw));
	vals[2] = value(kv, "host", host, sizeof(host));
	vals[3] = value(kv, "port", port, sizeof(port));
	vals[4] = value(kv, "dbname", db, sizeof(db));
	vals[5] = NULL;
	return PQconnectdbParams(keys, vals, 0);
}

/* One value from a one-parameter query, or "" for no row. */
static const char *query1(PGconn *c, const char *sql, const char *param,
			  char *buf, size_t size)
{
	const char *params[1] = {param};
	PGresult *res =
	    PQexecParams(c, sql, param != NULL, NULL, params, NULL, NULL, 0);

	ck_assert_msg(PQresultStatus(res) == PGRES_TUPLES_OK, "%s: %s", sql,
		      PQresultErrorMessage(res));
	snprintf(buf, size, "%s",
		 PQntuples(res) > 0 ? PQgetvalue(res, 0, 0) : "");
	PQclear(res);
	return buf;
}

static bool role_exists(PGconn *admin, const char *role)
{
	char buf[16];

	return strcmp(query1(admin,
			     "SELECT count(*) FROM pg_roles WHERE rolname = $1",
			     role, buf, sizeof(buf)),
		      "1") == 0;
}

/* A test-side integer parse that fails the test on garbage. */
static long to_long(const char *text)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	ck_assert_msg(errno == 0 && end != text && *end == '\0',
		      "not an integer: \"%s\"", text);
	return v;
}

static long roles_like(PGconn *admin, const char *prefix)
{
	char buf[16], pat[64];

	snprintf(pat, sizeof(pat), "%s%%", prefix);
	return to_long(
	    query1(admin, "SELECT count(*) FROM pg_roles WHERE rolname LIKE $1",
		   pat, buf, sizeof(buf)));
}

static long valid_until(PGconn *admin, const char *role)
{
	char buf[32];

	return to_long(query1(admin,
			      "SELECT (extract(epoch FROM rolvaliduntil) "
			      "* 1000000)::bigint "
			      "FROM pg_roles WHERE rolname = $1",
			      role, buf, sizeof(buf)));
}

/* SQLSTATE of running sql on c ("" when it succeeds). */
static const char *sqlstate(PGconn *c, const char *sql, char *buf, size_t size)
{
	PGresult *res = PQexec(c, sql);
	const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	snprintf(buf, size, "%s",
		 PQresultStatus(res) == PGRES_TUPLES_OK ? ""
		 : st != NULL				? st
							: "none");
	PQclear(res);
	return buf;
}

/* ---- config ----------------------------------------------------------- */

START_TEST(test_postgres_config_unknown_key)
{
	assert_cfg_error("{\"admin_dsn_file\": \"/x\", \"foo\": 1}",
			 "backends.pg.foo: unknown key");
}
END_TEST

START_TEST(test_postgres_config_wrong_type)
{
	assert_cfg_error("{\"admin_dsn_file\": 5}",
			 "backends.pg.admin_dsn_file: expected a string");
	assert_cfg_error("{\"admin_dsn_file\": \"/x\", \"connect_timeout\": 5}",
			 "backends.pg.connect_timeout: expected a duration");
	assert_cfg_error("[]", "backends.pg: expected an object");
}
END_TEST

START_TEST(test_postgres_config_bad_duration)
{
	assert_cfg_error(
	    "{\"admin_dsn_file\": \"/x\", "
	    "\"statement_timeout\": \"soon\"}",
	    "backends.pg.statement_timeout: expected a duration like");
	assert_cfg_error("{\"admin_dsn_file\": \"/x\", "
			 "\"connect_timeout\": \"1h\"}",
			 "backends.pg.connect_timeout: must be from");
}
END_TEST

START_TEST(test_postgres_config_missing_dsn_file)
{
	assert_cfg_error("{\"connect_timeout\": \"5s\"}",
			 "backends.pg.admin_dsn_file: required");
	assert_cfg_error("{\"admin_dsn_file\": \"\"}",
			 "backends.pg.admin_dsn_file: must be");
}
END_TEST

START_TEST(test_postgres_config_defaults)
{
	struct errmsg err;
	void *cfg = NULL;

	ck_assert_int_eq(parse_cfg("{\"admin_dsn_file\": \"/x\", "
				   "\"connect_timeout\": \"2s\"}",
				   &cfg, &err),
			 0);
	ops->free_config(cfg);
	cfg = NULL;
	ck_assert_int_eq(parse_secret(NULL, &cfg, &err), 0);
	ck_assert_ptr_nonnull(cfg);
	ops->free_secret_config(cfg);
	cfg = NULL;
	ck_assert_int_eq(parse_secret("{\"port\": 6432, \"host\": \"db\", "
				      "\"dbname\": \"app\", "
				      "\"role_prefix\": \"app_\"}",
				      &cfg, &err),
			 0);
	ops->free_secret_config(cfg);
	ops->free_config(NULL);
	ops->free_secret_config(NULL);
	ops->destroy(NULL);
	ck_assert_str_eq(ops->type, "postgres");
	ck_assert_str_eq(ops->default_files[2], "dsn");
	ck_assert_str_eq(ops->env_names[1].var, "PGPASSWORD");
}
END_TEST

START_TEST(test_postgres_config_unknown_placeholder)
{
	assert_secret_error("{\"creation_statements\": [\"CREATE ROLE "
			    "{{name}}\", \"ALTER ROLE {{name}} {{bogus}}\"]}",
			    "secrets[0].postgres.creation_statements[1]: "
			    "unknown placeholder {{bogus}}");
	assert_secret_error("{\"grants\": [\"GRANT x TO {{password}}\"]}",
			    "secrets[0].postgres.grants[0]: unknown "
			    "placeholder {{password}}");
	assert_secret_error("{\"grants\": [\"GRANT x TO {{name\"]}",
			    "secrets[0].postgres.grants[0]: unterminated");
}
END_TEST

START_TEST(test_postgres_config_secret_errors)
{
	assert_secret_error("{\"nope\": 1}",
			    "secrets[0].postgres.nope: unknown key");
	assert_secret_error("{\"creation_statements\": []}",
			    "secrets[0].postgres.creation_statements: must");
	assert_secret_error("{\"grants\": \"GRANT\"}",
			    "secrets[0].postgres.grants: expected an array");
	assert_secret_error("{\"grants\": [7]}",
			    "secrets[0].postgres.grants[0]: expected a string");
	assert_secret_error("{\"role_prefix\": \"Bad-Prefix\"}",
			    "secrets[0].postgres.role_prefix:");
	assert_secret_error("{\"port\": 70000}", "secrets[0].postgres.port:");
	assert_secret_error("{\"host\": 1}",
			    "secrets[0].postgres.host: expected a string");
}
END_TEST

/* ---- the admin connection --------------------------------------------- */

START_TEST(test_postgres_dsn_file_world_readable)
{
	char *path = temp_file("host=/nowhere", 0644);
	struct backend *b = backend_for(path, NULL);
	struct errmsg err = {{0}};

	ck_assert_int_eq(ops->login(b, &err), -EACCES);
	ck_assert_msg(strstr(err.text, path) != NULL, "%s", err.text);
	ck_assert_msg(strstr(err.text, "group or others") != NULL, "%s",
		      err.text);
	ops->destroy(b);
	unlink(path);
	free(path);
}
END_TEST

START_TEST(test_postgres_unreachable)
{
	char *path = temp_file("host=/nonexistent/cbsock port=5432 "
			       "user=cbadmin password=DsnPw4Test9z dbname=x\n",
			       0600);
	struct backend *b = backend_for(path, ", \"connect_timeout\": \"2s\"");
	struct errmsg err = {{0}};
	struct lease lease;
	struct kv kv = {0};
	double t0 = now_mono();
	void *scfg = secret_cfg(NULL);

	ck_assert_int_eq(ops->login(b, &err), -ECONNREFUSED);
	ck_assert_msg(strstr(err.text, "connecting to PostgreSQL") != NULL,
		      "%s", err.text);
	ck_assert_ptr_null(strstr(err.text, "DsnPw4Test9z"));
	ck_assert_int_lt(issue(b, scfg, "app", 60, &lease, &kv, &err), 0);
	ck_assert_ptr_null(strstr(err.text, "DsnPw4Test9z"));
	ck_assert_uint_eq(kv.count, 0);
	ck_assert_msg(now_mono() - t0 < 5.0, "took %.1fs", now_mono() - t0);
	ops->destroy(b);
	ops->free_secret_config(scfg);
	unlink(path);
	free(path);
}
END_TEST

START_TEST(test_postgres_dsn_syntax_error_hides_dsn)
{
	char *path = temp_file("host=/x password=DsnPw4Test9z oops\n", 0600);
	struct backend *b = backend_for(path, NULL);
	struct errmsg err = {{0}};

	ck_assert_int_eq(ops->login(b, &err), -EINVAL);
	ck_assert_msg(strstr(err.text, "not a valid connection string") != NULL,
		      "%s", err.text);
	ck_assert_ptr_null(strstr(err.text, "DsnPw4Test9z"));
	ck_assert_ptr_null(strstr(err.text, "oops"));
	ops->destroy(b);
	unlink(path);
	free(path);
}
END_TEST

/* ---- issue, renew, revoke --------------------------------------------- */

START_TEST(test_postgres_issue_login_and_grants)
{
	struct backend *b = backend_new();
	void *scfg = secret_cfg("{\"grants\": [\"GRANT SELECT ON granted_t TO "
				"{{name}}\"]}");
	PGconn *admin = admin_conn(), *c;
	struct lease lease, lease2;
	struct kv kv = {0}, kv2 = {0};
	struct errmsg err;
	char buf[128], pw[128], user[128];
	int64_t t0 = now_wall();

	ck_assert_msg(issue(b, scfg, "My-App.db", 600, &lease, &kv, &err) == 0,
		      "%s", err.text);
	value(&kv, "username", user, sizeof(user));
	value(&kv, "password", pw, sizeof(pw));
	ck_assert_str_eq(lease.id, user);
	ck_assert_msg(strncmp(user, "cb_my_app_db_", 13) == 0, "%s", user);
	ck_assert_uint_lt(strlen(user), 63);
	ck_assert_uint_ge(strlen(pw), 32);
	ck_assert_str_eq(value(&kv, "dbname", buf, sizeof(buf)), "cbtest");
	ck_assert_str_eq(value(&kv, "port", buf, sizeof(buf)),
			 getenv("CB_TEST_PG_PORT"));
	ck_assert_str_eq(value(&kv, "host", buf, sizeof(buf)),
			 getenv("CB_TEST_PG_SOCKET"));
	ck_assert(lease.renewable);
	ck_assert_int_ge(lease.expires_wall, t0 + 599000000LL);
	ck_assert_int_le(lease.expires_wall, now_wall() + 600000000LL);
	/* VALID UNTIL carries the lease's expiry to the microsecond. */
	ck_assert_int_eq(valid_until(admin, user), lease.expires_wall);

	c = role_conn(&kv);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	ck_assert_str_eq(
	    sqlstate(c, "SELECT v FROM granted_t", buf, sizeof(buf)), "");
	ck_assert_str_eq(
	    sqlstate(c, "SELECT v FROM secret_t", buf, sizeof(buf)), "42501");
	PQfinish(c);

	/* Names are unique even for the same secret. */
	ck_assert_int_eq(issue(b, scfg, "My-App.db", 600, &lease2, &kv2, &err),
			 0);
	ck_assert_str_ne(lease.id, lease2.id);
	ck_assert_int_eq(ops->revoke_all(b, &err), 0);
	kv_clear(&kv);
	kv_clear(&kv2);
	PQfinish(admin);
	ops->free_secret_config(scfg);
	ops->destroy(b);
}
END_TEST

START_TEST(test_postgres_long_name_fits)
{
	struct backend *b = backend_new();
	void *scfg = secret_cfg("{\"role_prefix\": \"abcdefghijklmnop\"}");
	struct lease lease;
	struct kv kv = {0};
	struct errmsg err;
	const char *name = "a-very-long-secret-name-that-goes-on-and-on-"
			   "and-on-and-on-beyond-the-limit";

	ck_assert_msg(issue(b, scfg, name, 60, &lease, &kv, &err) == 0, "%s",
		      err.text);
	ck_assert_uint_le(strlen(lease.id), 62);
	ck_assert_int_eq(ops->revoke(b, &lease, &err), 0);
	kv_clear(&kv);
	ops->free_secret_config(scfg);
	ops->destroy(b);
}
END_TEST

START_TEST(test_postgres_renew_moves_valid_until)
{
	struct backend *b = backend_new();
	void *scfg = secret_cfg(NULL);
	PGconn *admin = admin_conn();
	struct lease lease;
	struct kv kv = {0};
	struct errmsg err;
	int64_t want;

	ck_assert_int_eq(issue(b, scfg, "renewme", 60, &lease, &kv, &err), 0);
	want = now_wall() + 3600LL * 1000000 + 123456;
	ck_assert_msg(ops->renew(b, scfg, &lease, want, &err) == 0, "%s",
		      err.text);
	ck_assert_int_eq(lease.expires_wall, want);
	ck_assert_int_eq(valid_until(admin, lease.id), want);
	ck_assert_int_eq(ops->revoke(b, &lease, &err), 0);
	kv_clear(&kv);
	PQfinish(admin);
	ops->free_secret_config(scfg);
	ops->destroy(b);
}
END_TEST

START_TEST(test_postgres_renew_missing_role)
{
	struct backend *b = backend_new();
	struct lease lease = {.id = "cb_gone_0123456789abcdef"};
	struct errmsg err = {{0}};

	lease.expires_wall = 42;
	ck_assert_int_eq(
	    ops->renew(b, NULL, &lease, now_wall() + 60000000, &err), -ENOENT);
	ck_assert_msg(strstr(err.text, "does not exist") != NULL, "%s",
		      err.text);
	ck_assert_int_eq(lease.expires_wall, 42);
	/* Revoking what is gone succeeds. */
	ck_assert_int_eq(ops->revoke(b, &lease, &err), 0);
	snprintf(lease.id, sizeof(lease.id), "cbadmin");
	ck_assert_int_eq(ops->revoke(b, &lease, &err), -EPERM);
	snprintf(lease.id, sizeof(lease.id), "x\"; DROP ROLE cbadmin; --");
	ck_assert_int_eq(ops->revoke(b, &lease, &err), -EINVAL);
	ops->destroy(b);
}
END_TEST

START_TEST(test_postgres_revoke_terminates_sessions)
{
	struct backend *b = backend_new();
	void *scfg = secret_cfg("{\"grants\": [\"GRANT SELECT ON granted_t TO "
				"{{name}}\"]}");
	PGconn *admin = admin_conn(), *c;
	struct lease lease;
	struct kv kv = {0};
	struct errmsg err;
	char buf[32];
	bool dead = false;
	double t0;

	ck_assert_int_eq(issue(b, scfg, "victim", 600, &lease, &kv, &err), 0);
	c = role_conn(&kv);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	ck_assert_str_eq(sqlstate(c, "SELECT 1", buf, sizeof(buf)), "");

	ck_assert_msg(ops->revoke(b, &lease, &err) == 0, "%s", err.text);
	for (t0 = now_mono(); !dead && now_mono() - t0 < 5.0;) {
		dead = strcmp(sqlstate(c, "SELECT 1", buf, sizeof(buf)), "") !=
			   0 ||
		       PQstatus(c) != CONNECTION_OK;
		if (!dead)
			usleep(50000);
	}
	ck_assert_msg(dead, "the role's session survived revoke");
	ck_assert(!role_exists(admin, lease.id));
	PQfinish(c);
	/* New logins fail, and a second revoke succeeds. */
	c = role_conn(&kv);
	ck_assert_int_ne(PQstatus(c), CONNECTION_OK);
	PQfinish(c);
	ck_assert_int_eq(ops->revoke(b, &lease, &err), 0);
	kv_clear(&kv);
	PQfinish(admin);
	ops->free_secret_config(scfg);
	ops->destroy(b);
}
END_TEST

START_TEST(test_postgres_revoke_reassigns_owned_objects)
{
	struct backend *b = backend_new();
	void *scfg = secret_cfg("{\"role_prefix\": \"own_\", "
				"\"creation_statements\": [\"CREATE ROLE "
				"{{name}} LOGIN PASSWORD {{password}} VALID "
				"UNTIL {{expiration}}\", \"GRANT CREATE ON "
				"SCHEMA public TO {{name}}\"]}");
	PGconn *admin = admin_conn(), *c;
	struct lease lease;
	struct kv kv = {0};
	struct errmsg err;
	char buf[32];

	ck_assert_int_eq(issue(b, scfg, "owner", 600, &lease, &kv, &err), 0);
	c = role_conn(&kv);
	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	PQclear(PQexec(c, "CREATE TABLE owned_by_role (x int)"));
	PQfinish(c);
	ck_assert_msg(ops->revoke(b, &lease, &err) == 0, "%s", err.text);
	ck_assert(!role_exists(admin, lease.id));
	/* REASSIGN OWNED handed the table to the admin. */
	ck_assert_str_eq(query1(admin,
				"SELECT tableowner FROM pg_tables WHERE "
				"tablename = 'owned_by_role'",
				NULL, buf, sizeof(buf)),
			 "cbadmin");
	PQclear(PQexec(admin, "DROP TABLE owned_by_role"));
	PQclear(PQexec(admin, "REVOKE CREATE ON SCHEMA public FROM PUBLIC"));
	kv_clear(&kv);
	PQfinish(admin);
	ops->free_secret_config(scfg);
	ops->destroy(b);
}
END_TEST

START_TEST(test_postgres_revoke_all)
{
	struct backend *b = backend_new();
	void *scfg = secret_cfg("{\"role_prefix\": \"all_\"}");
	PGconn *admin = admin_conn();
	struct lease lease[3];
	struct kv kv[3] = {{0}};
	struct errmsg err;
	int i;

	for (i = 0; i < 3; i++)
		ck_assert_int_eq(
		    issue(b, scfg, "many", 600, &lease[i], &kv[i], &err), 0);
	ck_assert_int_eq(ops->revoke(b, &lease[1], &err), 0);
	ck_assert_int_eq(roles_like(admin, "all_"), 2);
	ck_assert_msg(ops->revoke_all(b, &err) == 0, "%s", err.text);
	ck_assert_int_eq(roles_like(admin, "all_"), 0);
	/* The instance reconnects after revoke_all closed its session. */
	ck_assert_int_eq(issue(b, scfg, "again", 600, &lease[0], &kv[0], &err),
			 0);
	ck_assert_int_eq(ops->revoke_all(b, &err), 0);
	ck_assert_int_eq(roles_like(admin, "all_"), 0);
	for (i = 0; i < 3; i++)
		kv_clear(&kv[i]);
	PQfinish(admin);
	ops->free_secret_config(scfg);
	ops->destroy(b);
}
END_TEST

START_TEST(test_postgres_issue_failure_rolls_back)
{
	struct backend *b = backend_new();
	void *scfg = secret_cfg("{\"role_prefix\": \"rb_\", \"grants\": "
				"[\"GRANT SELECT ON no_such_table TO "
				"{{name}}\"]}");
	PGconn *admin = admin_conn();
	struct lease lease = {.id = "untouched"};
	struct kv kv = {0};
	struct errmsg err;

	ck_assert_int_eq(issue(b, scfg, "app", 600, &lease, &kv, &err),
			 -EINVAL);
	ck_assert_msg(strstr(err.text, "grants[0]") != NULL &&
			  strstr(err.text, "42P01") != NULL,
		      "%s", err.text);
	ck_assert_str_eq(lease.id, "untouched");
	ck_assert_uint_eq(kv.count, 0);
	ck_assert_int_eq(roles_like(admin, "rb_"), 0);
	/* The session is usable afterwards. */
	ops->free_secret_config(scfg);
	scfg = secret_cfg("{\"role_prefix\": \"rb_\"}");
	ck_assert_int_eq(issue(b, scfg, "app", 600, &lease, &kv, &err), 0);
	ck_assert_int_eq(ops->revoke_all(b, &err), 0);
	kv_clear(&kv);
	PQfinish(admin);
	ops->free_secret_config(scfg);
	ops->destroy(b);
}
END_TEST

START_TEST(test_postgres_statement_timeout)
{
	struct backend *b =
	    backend_for(dsn_file(), ", \"statement_timeout\": \"1s\"");
	void *scfg = secret_cfg("{\"role_prefix\": \"slow_\", "
				"\"creation_statements\": [\"CREATE ROLE "
				"{{name}} LOGIN PASSWORD {{password}}\", "
				"\"SELECT pg_sleep(30)\"]}");
	PGconn *admin = admin_conn();
	struct lease lease;
	struct kv kv = {0};
	struct errmsg err;
	double t0 = now_mono();

	ck_assert_int_eq(issue(b, scfg, "app", 600, &lease, &kv, &err),
			 -ETIMEDOUT);
	ck_assert_msg(now_mono() - t0 < 5.0, "took %.1fs", now_mono() - t0);
	ck_assert_msg(strstr(err.text, "57014") != NULL, "%s", err.text);
	ck_assert_int_eq(roles_like(admin, "slow_"), 0);
	PQfinish(admin);
	ops->free_secret_config(scfg);
	ops->destroy(b);
}
END_TEST

START_TEST(test_postgres_reconnects)
{
	struct backend *b = backend_new();
	void *scfg = secret_cfg(NULL);
	PGconn *admin = admin_conn();
	struct lease lease;
	struct kv kv = {0};
	struct errmsg err;
	char buf[16];

	/* Kill the backend's admin session behind its back. */
	query1(admin,
	       "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
	       "WHERE application_name = $1",
	       "credbroker", buf, sizeof(buf));
	ck_assert_str_eq(buf, "1");
	usleep(200000);
	ck_assert_msg(issue(b, scfg, "app", 600, &lease, &kv, &err) == 0, "%s",
		      err.text);
	ck_assert_int_eq(ops->revoke(b, &lease, &err), 0);
	kv_clear(&kv);
	PQfinish(admin);
	ops->free_secret_config(scfg);
	ops->destroy(b);
}
END_TEST

START_TEST(test_postgres_no_secret_in_errors)
{
	struct backend *b = backend_new();
	/* A failing cast quotes its input, here the verifier, in the
	 * server's primary message ("invalid input syntax ...: \"SCRAM-"). */
	void *bad = secret_cfg("{\"role_prefix\": \"leak_\", "
			       "\"creation_statements\": [\"CREATE ROLE "
			       "{{name}} LOGIN PASSWORD {{password}}\", "
			       "\"SELECT {{password}}::int\"]}");
	void *good = secret_cfg("{\"role_prefix\": \"leak_\"}");
	PGconn *admin = admin_conn();
	struct lease lease;
	struct kv kv = {0};
	struct errmsg err;
	char pw[128];

	ck_assert_int_lt(issue(b, bad, "app", 600, &lease, &kv, &err), 0);
	ck_assert_msg(strstr(err.text, "SCRAM") == NULL &&
			  strchr(err.text, '$') == NULL &&
			  strstr(err.text, "22P02") != NULL,
		      "%s", err.text);
	ck_assert_int_eq(roles_like(admin, "leak_"), 0);

	ck_assert_int_eq(issue(b, good, "app", 600, &lease, &kv, &err), 0);
	value(&kv, "password", pw, sizeof(pw));
	PQclear(PQexec(admin, "SELECT 1"));
	ck_assert_int_eq(ops->revoke(b, &lease, &err), 0);
	ck_assert_int_eq(
	    ops->renew(b, good, &lease, now_wall() + 60000000, &err), -ENOENT);
	ck_assert_ptr_null(strstr(err.text, pw));
	kv_clear(&kv);
	PQfinish(admin);
	ops->free_secret_config(bad);
	ops->free_secret_config(good);
	ops->destroy(b);
}
END_TEST

struct worker {
	struct backend *b;
	void *scfg;
	int failures;
};

/* The scheduler and control threads share one instance. */
static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct lease lease;
	struct kv kv = {0};
	struct errmsg err;
	int i;

	for (i = 0; i < 5; i++) {
		if (issue(w->b, w->scfg, "conc", 600, &lease, &kv, &err) != 0 ||
		    ops->renew(w->b, w->scfg, &lease, now_wall() + 900000000,
			       &err) != 0 ||
		    ops->revoke(w->b, &lease, &err) != 0)
			w->failures++;
		kv_clear(&kv);
	}
	return NULL;
}

START_TEST(test_postgres_concurrent_calls)
{
	struct backend *b = backend_new();
	void *scfg = secret_cfg("{\"role_prefix\": \"conc_\"}");
	PGconn *admin = admin_conn();
	struct worker w[4];
	pthread_t t[4];
	int i;

	for (i = 0; i < 4; i++) {
		w[i] = (struct worker){b, scfg, 0};
		ck_assert_int_eq(pthread_create(&t[i], NULL, worker_run, &w[i]),
				 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(w[i].failures, 0);
	}
	ck_assert_int_eq(roles_like(admin, "conc_"), 0);
	PQfinish(admin);
	ops->free_secret_config(scfg);
	ops->destroy(b);
}
END_TEST

static Suite *postgres_suite(bool with_pg)
{
	Suite *s = suite_create("postgres");
	TCase *tc = tcase_create("config");

	tcase_add_test(tc, test_postgres_config_unknown_key);
	tcase_add_test(tc, test_postgres_config_wrong_type);
	tcase_add_test(tc, test_postgres_config_bad_duration);
	tcase_add_test(tc, test_postgres_config_missing_dsn_file);
	tcase_add_test(tc, test_postgres_config_defaults);
	tcase_add_test(tc, test_postgres_config_unknown_placeholder);
	tcase_add_test(tc, test_postgres_config_secret_errors);
	suite_add_tcase(s, tc);
	if (!with_pg)
		return s;
	tc = tcase_create("server");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_postgres_dsn_file_world_readable);
	tcase_add_test(tc, test_postgres_unreachable);
	tcase_add_test(tc, test_postgres_dsn_syntax_error_hides_dsn);
	tcase_add_test(tc, test_postgres_issue_login_and_grants);
	tcase_add_test(tc, test_postgres_long_name_fits);
	tcase_add_test(tc, test_postgres_renew_moves_valid_until);
	tcase_add_test(tc, test_postgres_renew_missing_role);
	tcase_add_test(tc, test_postgres_revoke_terminates_sessions);
	tcase_add_test(tc, test_postgres_revoke_reassigns_owned_objects);
	tcase_add_test(tc, test_postgres_revoke_all);
	tcase_add_test(tc, test_postgres_issue_failure_rolls_back);
	tcase_add_test(tc, test_postgres_statement_timeout);
	tcase_add_test(tc, test_postgres_reconnects);
	tcase_add_test(tc, test_postgres_no_secret_in_errors);
	tcase_add_test(tc, test_postgres_concurrent_calls);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	bool with_pg = getenv("CB_TEST_PG_DSN_FILE") != NULL;
	SRunner *sr;
	int failed;

	if (!with_pg)
		fprintf(stderr, "CB_TEST_PG_DSN_FILE not set (run under "
				"tests/integration/with_pg.py): server tests "
				"skipped\n");
	sr = srunner_create(postgres_suite(with_pg));
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
