/* The postgres backend (see postgres.h).
 *
 * One admin connection per instance, guarded by a mutex: the scheduler and
 * control threads call in concurrently, and one session keeps the server's
 * connection count and our reconnect logic simple.  The admin DSN is read
 * from its file on every (re)connect, so rotating the file takes effect
 * without a restart, and it only lives in secret memory while connecting.
 *
 * Every query runs through pg_exec(), which waits with poll() against a
 * client-side deadline (statement_timeout plus connect_timeout), so a dead
 * network cannot hold the lock forever (invariant 3).  libpq errors become
 * -errno there, once, with a message built from SQLSTATE and the server's
 * primary message only: never the statement, the DSN or a password.
 *
 * A session lost mid-call is retried once on a new one, which the caller
 * never sees: so this backend logs it (and what it did about roles whose
 * creation it could not confirm), one line each, role names only. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/rand.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "postgres.h"
#include "secret.h"

#define PG_MAX_DSN 4096	       /* bytes in the admin DSN file */
#define PG_MAX_STATEMENTS 32   /* entries in one statement list */
#define PG_MAX_TEMPLATE 4096   /* bytes in one statement template */
#define PG_MAX_SQL (64 * 1024) /* bytes in one rendered statement */
#define PG_MAX_ROLES 1024      /* live roles one instance remembers */
#define PG_MAX_PREFIX 16       /* bytes in role_prefix */
#define PG_MAX_FIELD 255       /* bytes in host, port, dbname */
#define PG_ROLE_MAX 62	       /* role names stay below NAMEDATALEN - 1 */
#define PG_ROLE_RAND 8	       /* random bytes (hex) ending a role name */
#define PG_PASSWORD_BYTES 32   /* random bytes in a password */
#define PG_PASSWORD_LEN 43     /* their base64url length, no padding */
#define PG_DEFAULT_TIMEOUT (5 * USEC_PER_SEC)
/* Clocks closer than this are one clock: VALID UNTIL is then exactly the
 * lease's expiry. */
#define PG_SKEW_IGNORE_USEC (1000LL * 1000)

/* pg_exec() flags: the statement carries a password verifier, so the
 * server's message is withheld when it might quote the statement. */
#define PG_SENSITIVE 1

struct pg_config {
	char *admin_dsn_file;
	uint64_t connect_timeout_usec;
	uint64_t statement_timeout_usec;
};

struct pg_list {
	size_t count;
	char **items;
};

struct pg_secret_config {
	struct pg_list creation;
	struct pg_list grants;
	char role_prefix[PG_MAX_PREFIX + 1];
	char *host; /* NULL: the admin connection's */
	char *port;
	char *dbname;
};

struct backend {
	struct pg_config cfg;
	pthread_mutex_t lock;
	PGconn *conn;	   /* lock */
	size_t role_count; /* lock */
	/* Roles issued and not yet revoked, for revoke_all.  lock. */
	char roles[PG_MAX_ROLES][PG_ROLE_MAX + 1];
	/* roles[i] may exist or not: its creating transaction lost its
	 * session (a COMMIT can commit and lose its answer), so the issue
	 * failed and nobody is served it.  Settled (dropped when it exists)
	 * on the next live session.  lock. */
	bool unsure[PG_MAX_ROLES];
	size_t unsure_count; /* lock */
	int64_t skew_logged; /* the last clock skew logged, usec.  lock. */
};

/* One placeholder's replacement while rendering a statement. */
struct pg_subst {
	const char *name;
	const char *value;
};

/* What issue() builds for one new role; pg_role_clear() wipes it. */
struct pg_role {
	char name[PG_ROLE_MAX + 1];
	struct secret *password; /* plaintext, for the kv only */
	char *ident;		 /* quoted identifier (PQfreemem) */
	char *verifier;		 /* quoted SCRAM verifier (wiped) */
	char *expiration;	 /* quoted timestamp (PQfreemem) */
	int64_t expires_wall;
};

static const char *const pg_creation_names[] = {"name", "password",
						"expiration", NULL};
static const char *const pg_grant_names[] = {"name", NULL};
static const char pg_default_creation[] =
    "CREATE ROLE {{name}} WITH LOGIN PASSWORD {{password}} "
    "VALID UNTIL {{expiration}}";

static bool pg_str_in(const char *s, size_t len, const char *const *set)
{
	for (; *set != NULL; set++)
		if (strlen(*set) == len && memcmp(*set, s, len) == 0)
			return true;
	return false;
}

/* ---- configuration ---------------------------------------------------- */

static int pg_check_keys(const json_t *obj, const char *path,
			 const char *const *allowed, struct errmsg *err)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v)
	{
		if (!pg_str_in(key, strlen(key), allowed))
			return errmsg_set(err, -EINVAL, "%s.%s: unknown key",
					  path, key);
	}
	return 0;
}

/* A JSON string without embedded NULs, 1..max bytes, or an error. */
static int pg_get_string(const json_t *v, const char *path, const char *key,
			 size_t max, const char **ret, struct errmsg *err)
{
	const char *s = json_string_value(v);

	if (!json_is_string(v))
		return errmsg_set(err, -EINVAL, "%s.%s: expected a string",
				  path, key);
	if (json_string_length(v) == 0 || json_string_length(v) > max ||
	    strlen(s) != json_string_length(v))
		return errmsg_set(err, -EINVAL,
				  "%s.%s: must be 1 to %zu bytes, no NUL", path,
				  key, max);
	*ret = s;
	return 0;
}

static int pg_parse_duration(const json_t *obj, const char *path,
			     const char *key, uint64_t min, uint64_t max,
			     uint64_t *ret, struct errmsg *err)
{
	*ret = PG_DEFAULT_TIMEOUT;
	return config_duration_field(obj, path, key, min, max, ret, err);
}

static void pg_free_config(void *p)
{
	struct pg_config *c = p;

	if (c == NULL)
		return;
	free(c->admin_dsn_file);
	free(c);
}

static int pg_parse_config(const json_t *obj, const char *path, void **ret,
			   struct errmsg *err)
{
	/* "type" selects this backend; the broker reads it, we allow it. */
	static const char *const keys[] = {"type", "admin_dsn_file",
					   "connect_timeout",
					   "statement_timeout", NULL};
	struct pg_config *c = NULL;
	const json_t *v;
	const char *file;
	int r;

	if (!json_is_object(obj))
		return errmsg_set(err, -EINVAL, "%s: expected an object", path);
	r = pg_check_keys(obj, path, keys, err);
	if (r < 0)
		return r;
	v = json_object_get(obj, "admin_dsn_file");
	if (v == NULL)
		return errmsg_set(err, -EINVAL, "%s.admin_dsn_file: required",
				  path);
	r = pg_get_string(v, path, "admin_dsn_file", PATH_MAX - 1, &file, err);
	if (r < 0)
		return r;
	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->admin_dsn_file = strdup(file)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	r = pg_parse_duration(obj, path, "connect_timeout", USEC_PER_SEC,
			      300 * USEC_PER_SEC, &c->connect_timeout_usec,
			      err);
	if (r < 0)
		goto out;
	r = pg_parse_duration(obj, path, "statement_timeout", 10000,
			      600 * USEC_PER_SEC, &c->statement_timeout_usec,
			      err);
	if (r < 0)
		goto out;
	*ret = c;
	c = NULL;
out:
	pg_free_config(c);
	return r;
}

/* The next "{{" in s, or NULL.  *name and *len give what follows it up to "}}"
 * and *end the byte after "}}" (NULL when unterminated). */
static const char *pg_next_placeholder(const char *s, const char **name,
				       size_t *len, const char **end)
{
	const char *open = strstr(s, "{{"), *close;

	if (open == NULL)
		return NULL;
	close = strstr(open + 2, "}}");
	*name = open + 2;
	*len = close != NULL ? (size_t)(close - *name) : strlen(*name);
	*end = close != NULL ? close + 2 : NULL;
	return open;
}

static int pg_check_template(const char *t, const char *const *allowed,
			     const char *path, const char *key, size_t i,
			     struct errmsg *err)
{
	const char *name, *end;
	size_t len;

	while (pg_next_placeholder(t, &name, &len, &end) != NULL) {
		if (end == NULL)
			return errmsg_set(err, -EINVAL,
					  "%s.%s[%zu]: unterminated {{", path,
					  key, i);
		if (!pg_str_in(name, len, allowed))
			return errmsg_set(err, -EINVAL,
					  "%s.%s[%zu]: unknown placeholder "
					  "{{%.*s}}",
					  path, key, i,
					  (int)(len > 32 ? 32 : len), name);
		t = end;
	}
	return 0;
}

static void pg_list_free(struct pg_list *l)
{
	size_t i;

	for (i = 0; i < l->count; i++)
		free(l->items[i]);
	free(l->items);
	l->items = NULL;
	l->count = 0;
}

static int pg_list_add(struct pg_list *l, const char *s)
{
	char *copy = strdup(s);

	if (copy == NULL)
		return -ENOMEM;
	l->items[l->count++] = copy;
	return 0;
}

/* Parses the statement list obj.key into *l (def when absent: one
 * statement, or none when def is NULL). */
static int pg_parse_list(const json_t *obj, const char *path, const char *key,
			 const char *const *allowed, const char *def,
			 struct pg_list *l, struct errmsg *err)
{
	const json_t *v = json_object_get(obj, key), *item;
	char sub[64];
	const char *s;
	size_t i, n;
	int r;

	n = v == NULL ? (def != NULL) : json_array_size(v);
	if (v != NULL && !json_is_array(v))
		return errmsg_set(err, -EINVAL,
				  "%s.%s: expected an array of strings", path,
				  key);
	if (n > PG_MAX_STATEMENTS || (def != NULL && n == 0))
		return errmsg_set(err, -EINVAL,
				  "%s.%s: must hold %d to %d statements", path,
				  key, def != NULL, PG_MAX_STATEMENTS);
	l->items = calloc(n + 1, sizeof(*l->items));
	if (l->items == NULL)
		return -ENOMEM;
	if (v == NULL)
		return def != NULL ? pg_list_add(l, def) : 0;
	json_array_foreach(v, i, item)
	{
		(void)snprintf(sub, sizeof(sub), "%s[%zu]", key, i);
		r = pg_get_string(item, path, sub, PG_MAX_TEMPLATE, &s, err);
		if (r == 0)
			r = pg_check_template(s, allowed, path, key, i, err);
		if (r == 0)
			r = pg_list_add(l, s);
		if (r < 0)
			return r;
	}
	return 0;
}

static int pg_parse_prefix(const json_t *obj, const char *path,
			   struct pg_secret_config *sc, struct errmsg *err)
{
	const json_t *v = json_object_get(obj, "role_prefix");
	const char *s;
	size_t len;

	if (v == NULL) {
		(void)snprintf(sc->role_prefix, sizeof(sc->role_prefix), "cb_");
		return 0;
	}
	s = json_string_value(v);
	len = s != NULL ? strlen(s) : 0;
	if (s == NULL || len > PG_MAX_PREFIX || len != json_string_length(v) ||
	    strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") != len)
		return errmsg_set(err, -EINVAL,
				  "%s.role_prefix: expected up to %d of "
				  "[a-z0-9_]",
				  path, PG_MAX_PREFIX);
	memcpy(sc->role_prefix, s, len + 1);
	return 0;
}

static bool pg_port_valid(const char *s)
{
	size_t len = strlen(s), i;
	unsigned long v = 0;

	if (len == 0 || len > 5 || strspn(s, "0123456789") != len)
		return false;
	for (i = 0; i < len; i++)
		v = v * 10 + (unsigned long)(s[i] - '0');
	return v >= 1 && v <= 65535;
}

/* host, port and dbname: a string (port: also an integer), or NULL. */
static int pg_parse_field(const json_t *obj, const char *path, const char *key,
			  char **ret, struct errmsg *err)
{
	const json_t *v = json_object_get(obj, key);
	char num[16];
	const char *s;
	int r;

	if (v == NULL)
		return 0;
	if (strcmp(key, "port") == 0 && json_is_integer(v)) {
		(void)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
			       json_integer_value(v));
		s = num;
	} else {
		r = pg_get_string(v, path, key, PG_MAX_FIELD, &s, err);
		if (r < 0)
			return r;
	}
	if (strcmp(key, "port") == 0 && !pg_port_valid(s))
		return errmsg_set(err, -EINVAL, "%s.port: expected 1..65535",
				  path);
	*ret = strdup(s);
	return *ret == NULL ? -ENOMEM : 0;
}

static void pg_free_secret_config(void *p)
{
	struct pg_secret_config *sc = p;

	if (sc == NULL)
		return;
	pg_list_free(&sc->creation);
	pg_list_free(&sc->grants);
	free(sc->host);
	free(sc->port);
	free(sc->dbname);
	free(sc);
}

static int pg_parse_secret_config(const json_t *obj, const char *path,
				  void **ret, struct errmsg *err)
{
	static const char *const keys[] = {"creation_statements",
					   "grants",
					   "role_prefix",
					   "host",
					   "port",
					   "dbname",
					   NULL};
	struct pg_secret_config *sc = NULL;
	int r;

	if (obj != NULL && !json_is_object(obj))
		return errmsg_set(err, -EINVAL, "%s: expected an object", path);
	if (obj != NULL && (r = pg_check_keys(obj, path, keys, err)) < 0)
		return r;
	sc = calloc(1, sizeof(*sc));
	if (sc == NULL)
		return -ENOMEM;
	r = pg_parse_list(obj, path, "creation_statements", pg_creation_names,
			  pg_default_creation, &sc->creation, err);
	if (r == 0)
		r = pg_parse_list(obj, path, "grants", pg_grant_names, NULL,
				  &sc->grants, err);
	if (r == 0)
		r = pg_parse_prefix(obj, path, sc, err);
	if (r == 0)
		r = pg_parse_field(obj, path, "host", &sc->host, err);
	if (r == 0)
		r = pg_parse_field(obj, path, "port", &sc->port, err);
	if (r == 0)
		r = pg_parse_field(obj, path, "dbname", &sc->dbname, err);
	if (r < 0)
		goto out;
	*ret = sc;
	sc = NULL;
out:
	pg_free_secret_config(sc);
	return r;
}

/* ---- errors ----------------------------------------------------------- */

static int pg_errno_for_state(const char *state)
{
	if (state == NULL || strlen(state) != 5)
		return -EIO;
	if (strcmp(state, "42501") == 0)
		return -EPERM; /* insufficient_privilege */
	if (strcmp(state, "42704") == 0)
		return -ENOENT; /* undefined_object */
	if (strcmp(state, "57014") == 0)
		return -ETIMEDOUT; /* query_canceled: statement_timeout */
	if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0)
		return -ECONNRESET; /* connection or server going away */
	if (strncmp(state, "28", 2) == 0)
		return -EACCES; /* invalid authorization */
	if (strncmp(state, "40", 2) == 0 || strncmp(state, "53", 2) == 0 ||
	    strcmp(state, "55P03") == 0)
		return -EAGAIN; /* serialization, resources, lock wait */
	/* Syntax errors, undefined tables: the config is wrong and a
	 * retry cannot help. */
	if (strncmp(state, "42", 2) == 0)
		return -EINVAL;
	return -EIO;
}

/* Copies the first line of msg, or "" when it might quote a secret: a
 * verifier ("SCRAM-SHA-256$...") or a syntax error's "at or near" token. */
static void pg_safe_line(const char *msg, bool sensitive, char *buf,
			 size_t size)
{
	size_t n;

	if (msg == NULL)
		msg = "";
	if (sensitive && (strstr(msg, "SCRAM") != NULL ||
			  strchr(msg, '$') != NULL || strstr(msg, "near"))) {
		(void)snprintf(buf, size, "(server message withheld)");
		return;
	}
	n = strcspn(msg, "\n");
	(void)snprintf(buf, size, "%.*s", (int)n, msg);
}

static void pg_disconnect(struct backend *b)
{
	PQfinish(b->conn);
	b->conn = NULL;
}

/* A failure libpq reports on the connection (send failed, connection
 * lost).  A lost connection is dropped so the next call reconnects. */
static int pg_conn_error(struct backend *b, const char *what,
			 struct errmsg *err)
{
	char line[160];
	int r = -ECONNRESET;

	if (b->conn != NULL && PQstatus(b->conn) == CONNECTION_OK)
		r = -EIO;
	pg_safe_line(b->conn != NULL ? PQerrorMessage(b->conn) : "no session",
		     true, line, sizeof(line));
	if (r == -ECONNRESET)
		pg_disconnect(b);
	return errmsg_set(err, r, "%s: %s", what, line);
}

static int pg_result_error(struct backend *b, const PGresult *res,
			   const char *what, int flags, struct errmsg *err)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	char line[200];

	if (PQstatus(b->conn) != CONNECTION_OK)
		return pg_conn_error(b, what, err);
	pg_safe_line(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY),
		     flags & PG_SENSITIVE, line, sizeof(line));
	return errmsg_set(err, pg_errno_for_state(state),
			  "%s: %s (SQLSTATE %s)", what, line,
			  state != NULL ? state : "none");
}

/* ---- queries ---------------------------------------------------------- */

static uint64_t pg_now(void)
{
	return clock_mono(clock_system());
}

/* Waits until a result can be read without blocking, or the deadline
 * passes; then the session is abandoned (a late answer must not be read as
 * the next statement's). */
static int pg_wait(struct backend *b, uint64_t deadline, const char *what,
		   struct errmsg *err)
{
	struct pollfd pfd;
	uint64_t now;
	int n;

	while (PQisBusy(b->conn)) {
		now = pg_now();
		if (now >= deadline) {
			pg_disconnect(b);
			return errmsg_set(err, -ETIMEDOUT,
					  "%s: no answer from PostgreSQL in "
					  "time",
					  what);
		}
		pfd.fd = PQsocket(b->conn);
		pfd.events = POLLIN;
		pfd.revents = 0;
		n = poll(&pfd, 1, (int)((deadline - now + 999) / 1000));
		if (n < 0 && errno != EINTR) {
			n = -errno;
			pg_disconnect(b);
			return errmsg_set(err, n, "%s: poll: %s", what,
					  strerror(-n));
		}
		if (n > 0 && PQconsumeInput(b->conn) == 0)
			return pg_conn_error(b, what, err);
	}
	return 0;
}

static bool pg_result_ok(const PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ||
	       st == PGRES_EMPTY_QUERY;
}

static bool pg_result_copy(const PGresult *res)
{
	ExecStatusType st = PQresultStatus(res);

	return st == PGRES_COPY_IN || st == PGRES_COPY_OUT ||
	       st == PGRES_COPY_BOTH;
}

/* Runs sql (with $1.. params when nparams > 0; else as a simple query,
 * which may hold several statements) and reads every result.  what names
 * the statement in messages instead of its text.  Returns 0 and the last
 * result in *ret (when ret is not NULL, PQclear it), or -errno. */
static int pg_exec(struct backend *b, const char *what, const char *sql,
		   int nparams, const char *const *params, int flags,
		   PGresult **ret, struct errmsg *err)
{
	uint64_t deadline = pg_now() + b->cfg.statement_timeout_usec +
			    b->cfg.connect_timeout_usec;
	PGresult *res, *last = NULL, *bad = NULL;
	int r, sent;

	if (b->conn == NULL)
		return errmsg_set(err, -ECONNRESET, "%s: not connected", what);
	sent = nparams > 0 ? PQsendQueryParams(b->conn, sql, nparams, NULL,
					       params, NULL, NULL, 0)
			   : PQsendQuery(b->conn, sql);
	if (!sent)
		return pg_conn_error(b, what, err);
	for (;;) {
		r = pg_wait(b, deadline, what, err);
		if (r < 0)
			goto out;
		res = PQgetResult(b->conn);
		if (res == NULL)
			break;
		if (pg_result_copy(res)) {
			/* COPY would wait for data we never send. */
			PQclear(res);
			pg_disconnect(b);
			r = errmsg_set(err, -EINVAL,
				       "%s: COPY is not supported", what);
			goto out;
		}
		if (bad == NULL && !pg_result_ok(res)) {
			bad = res;
		} else if (bad == NULL) {
			PQclear(last);
			last = res;
		} else {
			PQclear(res);
		}
	}
	if (bad != NULL) {
		r = pg_result_error(b, bad, what, flags, err);
		goto out;
	}
	if (ret != NULL) {
		*ret = last;
		last = NULL;
	}
	r = 0;
out:
	PQclear(bad);
	PQclear(last);
	return r;
}

static ssize_t pg_expand(const char *t, const struct pg_subst *subs, char *out);

/* Runs tmpl with {{name}} replaced by a quoted identifier. */
static int pg_exec_ident(struct backend *b, const char *what, const char *tmpl,
			 const char *ident, struct errmsg *err)
{
	const struct pg_subst subs[] = {{"name", ident}, {NULL, NULL}};
	ssize_t n = pg_expand(tmpl, subs, NULL);
	char *sql;
	int r;

	if (n < 0)
		return (int)n;
	sql = malloc((size_t)n + 1);
	if (sql == NULL)
		return -ENOMEM;
	(void)pg_expand(tmpl, subs, sql);
	r = pg_exec(b, what, sql, 0, NULL, 0, NULL, err);
	free(sql);
	return r;
}

/* ---- the admin connection --------------------------------------------- */

static int pg_check_dsn_file(int fd, const char *path, struct errmsg *err)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return errmsg_set(err, -errno, "admin_dsn_file %s: fstat: %m",
				  path);
	if (!S_ISREG(st.st_mode))
		return errmsg_set(err, -EINVAL,
				  "admin_dsn_file %s: not a regular file",
				  path);
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		return errmsg_set(err, -EACCES,
				  "admin_dsn_file %s: mode %04o: must not be "
				  "accessible by group or others",
				  path, (unsigned)(st.st_mode & 07777));
	if (st.st_size > PG_MAX_DSN)
		return errmsg_set(err, -EMSGSIZE,
				  "admin_dsn_file %s: larger than %d bytes",
				  path, PG_MAX_DSN);
	return 0;
}

/* Reads the admin DSN file into secret memory, trailing whitespace cut. */
static int pg_read_dsn(const char *path, struct secret **ret,
		       struct errmsg *err)
{
	struct secret *s = NULL;
	size_t n = 0;
	ssize_t k;
	char *p;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return errmsg_set(err, -errno, "admin_dsn_file %s: %m", path);
	r = pg_check_dsn_file(fd, path, err);
	if (r < 0 || (r = secret_new(PG_MAX_DSN + 2, &s)) < 0)
		goto out;
	p = secret_expose(s, NULL);
	while (n <= PG_MAX_DSN && (k = read(fd, p + n, PG_MAX_DSN + 1 - n))) {
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = errmsg_set(err, -errno, "admin_dsn_file %s: %m",
				       path);
			goto out;
		}
		n += (size_t)k;
	}
	while (n > 0 && strchr(" \t\r\n", p[n - 1]) != NULL)
		n--;
	p[n] = '\0';
	if (n == 0 || n > PG_MAX_DSN || memchr(p, '\0', n) != NULL) {
		r = errmsg_set(err, -EINVAL,
			       "admin_dsn_file %s: empty, too long or binary",
			       path);
		goto out;
	}
	r = secret_set_len(s, n);
	if (r < 0)
		goto out;
	*ret = s;
	s = NULL;
out:
	secret_free(s);
	(void)close(fd);
	return r;
}

/* True when msg contains the DSN's password.  The parse's copies are
 * wiped before they are freed. */
static bool pg_dsn_password_in(const char *dsn, const char *msg)
{
	PQconninfoOption *opts = PQconninfoParse(dsn, NULL), *o;
	bool found = false;

	if (opts == NULL)
		return true; /* cannot tell: assume the worst */
	for (o = opts; o->keyword != NULL; o++) {
		if (o->val == NULL)
			continue;
		if (strcmp(o->keyword, "password") == 0 && o->val[0] != '\0' &&
		    strstr(msg, o->val) != NULL)
			found = true;
		secret_wipe(o->val, strlen(o->val));
	}
	PQconninfoFree(opts);
	return found;
}

/* Checks the DSN's syntax without echoing libpq's message, which quotes
 * the offending part of the string (possibly the password). */
static int pg_check_dsn(const char *dsn, const char *path, struct errmsg *err)
{
	char *msg = NULL;
	PQconninfoOption *opts = PQconninfoParse(dsn, &msg), *o;

	if (msg != NULL) {
		secret_wipe(msg, strlen(msg));
		PQfreemem(msg);
	}
	if (opts == NULL)
		return errmsg_set(err, -EINVAL,
				  "admin_dsn_file %s: not a valid connection "
				  "string or URI",
				  path);
	for (o = opts; o->keyword != NULL; o++)
		if (o->val != NULL)
			secret_wipe(o->val, strlen(o->val));
	PQconninfoFree(opts);
	return 0;
}

static int pg_connect_error(const PGconn *conn, const char *dsn,
			    const char *path, struct errmsg *err)
{
	const char *msg = PQerrorMessage(conn);
	char line[200];
	int r = -EIO;

	if (strstr(msg, "timeout expired") != NULL)
		r = -ETIMEDOUT;
	else if (strstr(msg, "No such file") != NULL ||
		 strstr(msg, "refused") != NULL ||
		 strstr(msg, "could not translate host") != NULL)
		r = -ECONNREFUSED;
	else if (strstr(msg, "authentication failed") != NULL ||
		 strstr(msg, "pg_hba.conf") != NULL)
		r = -EACCES;
	pg_safe_line(msg, pg_dsn_password_in(dsn, msg), line, sizeof(line));
	return errmsg_set(err, r,
			  "connecting to PostgreSQL (admin_dsn_file %s): %s",
			  path, line);
}

static void pg_ignore_notice(void *arg, const char *message)
{
	/* Library code does not log; NOTICEs ("role does not exist,
	 * skipping") would otherwise go to stderr. */
	(void)arg;
	(void)message;
}

/* The session settings every admin connection gets. */
static int pg_setup_session(struct backend *b, struct errmsg *err)
{
	char sql[64];

	(void)PQsetNoticeProcessor(b->conn, pg_ignore_notice, NULL);
	/* Terse errors never carry the statement text ("LINE 1: ..."). */
	(void)PQsetErrorVerbosity(b->conn, PQERRORS_TERSE);
	(void)PQsetErrorContextVisibility(b->conn, PQSHOW_CONTEXT_NEVER);
	(void)snprintf(sql, sizeof(sql), "SET statement_timeout = %" PRIu64,
		       (b->cfg.statement_timeout_usec + 999) / 1000);
	return pg_exec(b, "SET statement_timeout", sql, 0, NULL, 0, NULL, err);
}

/* (Re)connects with a fresh read of the DSN file.  Later keywords override
 * the DSN's own: connect_timeout is ours to bound. */
static int pg_connect(struct backend *b, struct errmsg *err)
{
	static const char *const keys[] = {"dbname", "connect_timeout",
					   "application_name", NULL};
	const char *vals[4];
	char timeout[24];
	struct secret *dsn = NULL;
	PGconn *conn = NULL;
	const char *path = b->cfg.admin_dsn_file;
	int r;

	pg_disconnect(b);
	r = pg_read_dsn(path, &dsn, err);
	if (r == 0)
		r = pg_check_dsn(secret_expose(dsn, NULL), path, err);
	if (r < 0)
		goto out;
	(void)snprintf(
	    timeout, sizeof(timeout), "%" PRIu64,
	    (uint64_t)((b->cfg.connect_timeout_usec + USEC_PER_SEC - 1) /
		       USEC_PER_SEC));
	vals[0] = secret_expose(dsn, NULL);
	vals[1] = timeout;
	vals[2] = "credbroker";
	vals[3] = NULL;
	conn = PQconnectdbParams(keys, vals, 1);
	if (conn == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		r = pg_connect_error(conn, vals[0], path, err);
		goto out;
	}
	b->conn = conn;
	conn = NULL;
	r = pg_setup_session(b, err);
	if (r < 0)
		pg_disconnect(b);
out:
	PQfinish(conn);
	secret_free(dsn);
	return r;
}

/* A usable session: connected and outside any transaction a failed call
 * may have left open. */
static int pg_ensure(struct backend *b, struct errmsg *err)
{
	if (b->conn != NULL && PQstatus(b->conn) == CONNECTION_OK &&
	    PQtransactionStatus(b->conn) == PQTRANS_IDLE)
		return 0;
	return pg_connect(b, err);
}

static void pg_settle(struct backend *b);

/* Runs op under the lock.  A session that died since its last use (server
 * restart, terminated by an admin) only shows it on first use: then one
 * reconnect and one more try, per call.  Roles left unsure by a lost
 * session are settled first, on the first live session. */
static int pg_run(struct backend *b,
		  int (*op)(struct backend *, void *, struct errmsg *),
		  void *arg, struct errmsg *err)
{
	int attempt, r = -EIO;

	(void)pthread_mutex_lock(&b->lock);
	for (attempt = 0; attempt < 2; attempt++) {
		r = pg_ensure(b, err);
		if (r == 0 && b->unsure_count > 0) {
			pg_settle(b);
			r = pg_ensure(b, err);
		}
		if (r < 0)
			break;
		r = op(b, arg, err);
		if (r != -ECONNRESET)
			break;
		log_warnx("event=pg_session_lost retry=%s unsure_roles=%zu "
			  "error=\"%s\"",
			  attempt == 0 ? "yes" : "no", b->unsure_count,
			  err != NULL ? err->text : "");
		pg_disconnect(b);
	}
	(void)pthread_mutex_unlock(&b->lock);
	return r;
}

/* ---- roles ------------------------------------------------------------ */

static int pg_track(struct backend *b, const char *role, struct errmsg *err)
{
	if (b->role_count >= PG_MAX_ROLES)
		return errmsg_set(err, -EMSGSIZE,
				  "%d live roles: revoke some before issuing "
				  "more",
				  PG_MAX_ROLES);
	b->unsure[b->role_count] = false;
	memcpy(b->roles[b->role_count++], role, strlen(role) + 1);
	return 0;
}

static void pg_untrack(struct backend *b, const char *role)
{
	size_t i;

	for (i = 0; i < b->role_count; i++) {
		if (strcmp(b->roles[i], role) != 0)
			continue;
		if (b->unsure[i])
			b->unsure_count--;
		b->role_count--;
		if (i != b->role_count) {
			memcpy(b->roles[i], b->roles[b->role_count],
			       sizeof(b->roles[i]));
			b->unsure[i] = b->unsure[b->role_count];
		}
		return;
	}
}

static void pg_mark_unsure(struct backend *b, const char *role)
{
	size_t i;

	for (i = 0; i < b->role_count; i++) {
		if (strcmp(b->roles[i], role) != 0 || b->unsure[i])
			continue;
		b->unsure[i] = true;
		b->unsure_count++;
		return;
	}
}

/* Only names this backend could have made: a lease id is not trusted to
 * name, say, the admin role. */
static bool pg_role_valid(const char *role)
{
	size_t len = strlen(role);

	return len > 0 && len <= PG_ROLE_MAX &&
	       strspn(role, "abcdefghijklmnopqrstuvwxyz0123456789_") == len;
}

/* prefix + the secret's name in [a-z0-9_] (cut to fit) + "_" + hex. */
static int pg_role_name(const char *prefix, const char *secret_name,
			char out[PG_ROLE_MAX + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[PG_ROLE_RAND];
	size_t n = strlen(prefix), i;
	size_t room = PG_ROLE_MAX - n - 1 - 2 * PG_ROLE_RAND;
	char c;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -EIO;
	memcpy(out, prefix, n);
	for (i = 0; secret_name[i] != '\0' && i < room; i++) {
		c = secret_name[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
			c = '_';
		out[n++] = c;
	}
	out[n++] = '_';
	for (i = 0; i < sizeof(rnd); i++) {
		out[n++] = hex[rnd[i] >> 4];
		out[n++] = hex[rnd[i] & 15];
	}
	out[n] = '\0';
	return 0;
}

/* Base64url digit for v in 0..63 without a table lookup indexed by
 * secret data (the wireguard-tools encoding, with '-' and '_'). */
static char pg_b64url_char(int v)
{
	return (char)('A' + v + (((25 - v) >> 8) & 6) - (((51 - v) >> 8) & 75) -
		      (((61 - v) >> 8) & 13) + (((62 - v) >> 8) & 49));
}

static int pg_password(struct secret **ret)
{
	unsigned char raw[PG_PASSWORD_BYTES];
	struct secret *s = NULL;
	unsigned int acc = 0;
	int bits = 0, r;
	size_t i, n = 0;
	char *p;

	r = secret_new(PG_PASSWORD_LEN + 1, &s);
	if (r < 0)
		return r;
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		r = -EIO;
		goto out;
	}
	p = secret_expose(s, NULL);
	for (i = 0; i < sizeof(raw); i++) {
		acc = (acc << 8 | raw[i]) & 0xffff;
		for (bits += 8; bits >= 6; bits -= 6)
			p[n++] = pg_b64url_char((int)(acc >> (bits - 6)) & 63);
	}
	if (bits > 0)
		p[n++] = pg_b64url_char((int)(acc << (6 - bits)) & 63);
	p[n] = '\0';
	r = secret_set_len(s, n);
	if (r < 0)
		goto out;
	*ret = s;
	s = NULL;
out:
	secret_wipe(raw, sizeof(raw));
	secret_wipe(&acc, sizeof(acc));
	secret_free(s);
	return r;
}

/* How far PostgreSQL's clock is ahead of ours (usec, negative: behind),
 * 0 when they agree within PG_SKEW_IGNORE_USEC.  PostgreSQL checks VALID
 * UNTIL against its own clock: with ours jumped by hours (or the database
 * on a host whose clock differs), a role's VALID UNTIL taken from our
 * clock would be hours in the past (the credential dead while served) or
 * hours too late.  A new skew is logged once. */
static int pg_clock_skew(struct backend *b, const char *what, int64_t *ret,
			 struct errmsg *err)
{
	PGresult *res = NULL;
	int64_t local, server, skew;
	char *end;
	int r;

	r = pg_exec(b, what,
		    "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)"
		    "::int8",
		    0, NULL, 0, &res, err);
	if (r < 0)
		return r;
	local = clock_wall(clock_system());
	errno = 0;
	server = PQntuples(res) == 1
		     ? (int64_t)strtoll(PQgetvalue(res, 0, 0), &end, 10)
		     : 0;
	if (PQntuples(res) != 1 || errno != 0 || *end != '\0' || server <= 0)
		r = errmsg_set(err, -EPROTO, "%s: bad clock reading", what);
	PQclear(res);
	if (r < 0)
		return r;
	skew = server - local;
	if (llabs(skew) < PG_SKEW_IGNORE_USEC)
		skew = 0;
	if (llabs(skew - b->skew_logged) >= PG_SKEW_IGNORE_USEC)
		log_warnx("event=pg_clock_skew skew_s=%+lld note=\"VALID UNTIL "
			  "follows PostgreSQL's clock\"",
			  (long long)((skew + (skew < 0 ? -500000 : 500000)) /
				      1000000));
	b->skew_logged = skew;
	*ret = skew;
	return 0;
}

/* "2026-12-04 14:30:00+00": whole seconds, which is what VALID UNTIL
 * keeps and so what the lease reports. */
/* Microsecond precision, as PostgreSQL's timestamptz keeps it: a role's
 * VALID UNTIL is exactly the lease's expiry, so a short TTL is not cut by
 * up to a second. */
static int pg_timestamp(int64_t wall_usec, char *buf, size_t size)
{
	time_t t = (time_t)(wall_usec / (int64_t)USEC_PER_SEC);
	char secs[32];
	struct tm tm;
	int n;

	if (wall_usec < 0 || gmtime_r(&t, &tm) == NULL ||
	    strftime(secs, sizeof(secs), "%Y-%m-%d %H:%M:%S", &tm) == 0)
		return -EINVAL;
	n = snprintf(buf, size, "%s.%06d+00", secs,
		     (int)(wall_usec % (int64_t)USEC_PER_SEC));
	return n > 0 && (size_t)n < size ? 0 : -EINVAL;
}

static void pg_role_clear(struct pg_role *role)
{
	secret_free(role->password);
	PQfreemem(role->ident);
	if (role->verifier != NULL) {
		secret_wipe(role->verifier, strlen(role->verifier));
		PQfreemem(role->verifier);
	}
	PQfreemem(role->expiration);
	memset(role, 0, sizeof(*role));
}

/* The SCRAM verifier, quoted: SQL never carries the plaintext. */
static int pg_role_verifier(struct backend *b, struct pg_role *role,
			    struct errmsg *err)
{
	char *v;

	v = PQencryptPasswordConn(b->conn, secret_expose(role->password, NULL),
				  role->name, "scram-sha-256");
	if (v == NULL)
		return errmsg_set(err, -ENOMEM,
				  "issue %s: cannot hash the password",
				  role->name);
	role->verifier = PQescapeLiteral(b->conn, v, strlen(v));
	secret_wipe(v, strlen(v));
	PQfreemem(v);
	return role->verifier == NULL ? -ENOMEM : 0;
}

static int pg_role_new(struct backend *b, const struct pg_secret_config *sc,
		       const struct backend_issue_request *req,
		       struct pg_role *role, struct errmsg *err)
{
	uint64_t ttl = req->ttl_usec < req->max_ttl_usec ? req->ttl_usec
							 : req->max_ttl_usec;
	int64_t skew;
	char ts[48];
	int r;

	role->expires_wall = req->now_wall + (int64_t)ttl;
	r = pg_clock_skew(b, "issue: read PostgreSQL's clock", &skew, err);
	if (r < 0)
		return r;
	r = pg_timestamp(role->expires_wall + skew, ts, sizeof(ts));
	if (r < 0)
		return errmsg_set(err, r, "issue %s: bad expiry time",
				  req->secret_name);
	r = pg_role_name(sc->role_prefix, req->secret_name, role->name);
	if (r == 0)
		r = pg_password(&role->password);
	if (r < 0)
		return errmsg_set(err, r, "issue %s: no random bytes",
				  req->secret_name);
	r = pg_role_verifier(b, role, err);
	if (r < 0)
		return r;
	role->ident =
	    PQescapeIdentifier(b->conn, role->name, strlen(role->name));
	role->expiration = PQescapeLiteral(b->conn, ts, strlen(ts));
	if (role->ident == NULL || role->expiration == NULL)
		return -ENOMEM;
	return 0;
}

/* Returns the length tmpl expands to; writes it to out unless NULL. */
static ssize_t pg_expand(const char *t, const struct pg_subst *subs, char *out)
{
	const char *open, *name, *end;
	const struct pg_subst *s;
	size_t n = 0, len;

	while ((open = pg_next_placeholder(t, &name, &len, &end)) != NULL) {
		for (s = subs; s->name != NULL; s++)
			if (strlen(s->name) == len &&
			    memcmp(s->name, name, len) == 0)
				break;
		if (end == NULL || s->name == NULL)
			return -EINVAL;
		if (out != NULL) {
			memcpy(out + n, t, (size_t)(open - t));
			memcpy(out + n + (open - t), s->value,
			       strlen(s->value));
		}
		n += (size_t)(open - t) + strlen(s->value);
		t = end;
	}
	if (out != NULL)
		memcpy(out + n, t, strlen(t) + 1);
	return (ssize_t)(n + strlen(t));
}

/* Renders one statement into secret memory: it may hold the verifier. */
static int pg_render(const char *tmpl, const struct pg_subst *subs,
		     struct secret **ret)
{
	struct secret *s = NULL;
	ssize_t n = pg_expand(tmpl, subs, NULL);
	int r;

	if (n < 0)
		return (int)n;
	if (n >= PG_MAX_SQL)
		return -EMSGSIZE;
	r = secret_new((size_t)n + 1, &s);
	if (r < 0)
		return r;
	(void)pg_expand(tmpl, subs, secret_expose(s, NULL));
	r = secret_set_len(s, (size_t)n);
	if (r < 0) {
		secret_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

static int pg_run_list(struct backend *b, const struct pg_list *l,
		       const char *key, const struct pg_subst *subs, int flags,
		       struct errmsg *err)
{
	struct secret *sql = NULL;
	char what[48];
	size_t i;
	int r = 0;

	for (i = 0; i < l->count && r == 0; i++) {
		(void)snprintf(what, sizeof(what), "%s[%zu]", key, i);
		r = pg_render(l->items[i], subs, &sql);
		if (r < 0)
			return errmsg_set(err, r, "%s: cannot render", what);
		r = pg_exec(b, what, secret_expose(sql, NULL), 0, NULL, flags,
			    NULL, err);
		secret_free(sql);
		sql = NULL;
	}
	return r;
}

/* Best effort after a failed issue: roll back, and drop the role in case
 * it exists anyway.  Without a live session neither can run and the
 * outcome is unknown: the role stays tracked and is marked unsure, for
 * pg_settle on the next session (and revoke_all at the latest). */
static void pg_undo_create(struct backend *b, const struct pg_role *role)
{
	if (b->conn != NULL && PQstatus(b->conn) == CONNECTION_OK) {
		(void)pg_exec(b, "ROLLBACK", "ROLLBACK", 0, NULL, 0, NULL,
			      NULL);
		if (pg_exec_ident(b, "DROP ROLE",
				  "DROP ROLE IF EXISTS {{name}}", role->ident,
				  NULL) == 0) {
			pg_untrack(b, role->name);
			return;
		}
	}
	pg_mark_unsure(b, role->name);
}

/* The creation statements and grants, in one transaction. */
static int pg_create_role(struct backend *b, const struct pg_secret_config *sc,
			  const struct pg_role *role, struct errmsg *err)
{
	const struct pg_subst subs[] = {{"name", role->ident},
					{"password", role->verifier},
					{"expiration", role->expiration},
					{NULL, NULL}};
	PGresult *res = NULL;
	int r;

	r = pg_exec(b, "BEGIN", "BEGIN", 0, NULL, 0, NULL, err);
	if (r < 0) {
		/* Nothing ran: there is no role to remember. */
		pg_untrack(b, role->name);
		return r;
	}
	r = pg_run_list(b, &sc->creation, "creation_statements", subs,
			PG_SENSITIVE, err);
	if (r == 0)
		r = pg_run_list(b, &sc->grants, "grants", subs, 0, err);
	if (r == 0)
		r = pg_exec(b, "COMMIT", "COMMIT", 0, NULL, 0, &res, err);
	/* A statement list that swallowed its own error commits nothing. */
	if (r == 0 && strcmp(PQcmdStatus(res), "COMMIT") != 0)
		r = errmsg_set(err, -EIO, "issue %s: transaction rolled back",
			       role->name);
	PQclear(res);
	if (r < 0)
		pg_undo_create(b, role);
	return r;
}

static int pg_issue_values(struct backend *b, const struct pg_secret_config *sc,
			   const struct pg_role *role, struct kv *values)
{
	const char *host = sc->host != NULL ? sc->host : PQhost(b->conn);
	const char *port = sc->port != NULL ? sc->port : PQport(b->conn);
	const char *db = sc->dbname != NULL ? sc->dbname : PQdb(b->conn);
	size_t len;
	void *pw = secret_expose(role->password, &len);
	int r;

	if (port == NULL || port[0] == '\0')
		port = "5432";
	r = kv_set_str(values, "username", role->name);
	if (r == 0)
		r = kv_set(values, "password", pw, len);
	if (r == 0)
		r = kv_set_str(values, "host", host != NULL ? host : "");
	if (r == 0)
		r = kv_set_str(values, "port", port);
	if (r == 0)
		r = kv_set_str(values, "dbname", db != NULL ? db : "");
	return r;
}

/* ---- operations ------------------------------------------------------- */

struct pg_issue_args {
	const struct backend_issue_request *req;
	struct lease *lease;
	struct kv *values;
};

static int pg_revoke_role(struct backend *b, const char *role,
			  struct errmsg *err);

static int pg_issue_locked(struct backend *b, void *arg, struct errmsg *err)
{
	struct pg_issue_args *a = arg;
	const struct pg_secret_config *sc = a->req->secret_cfg;
	struct pg_role role = {0};
	int r;

	r = pg_role_new(b, sc, a->req, &role, err);
	if (r == 0)
		r = pg_track(b, role.name, err);
	if (r == 0)
		r = pg_create_role(b, sc, &role, err);
	if (r < 0)
		goto out;
	r = pg_issue_values(b, sc, &role, a->values);
	if (r < 0) {
		kv_clear(a->values);
		(void)pg_revoke_role(b, role.name, NULL);
		r = errmsg_set(err, r, "issue %s: cannot store values",
			       role.name);
		goto out;
	}
	memset(a->lease, 0, sizeof(*a->lease));
	memcpy(a->lease->id, role.name, strlen(role.name) + 1);
	a->lease->issued_wall = a->req->now_wall;
	a->lease->expires_wall = role.expires_wall;
	a->lease->max_wall = a->req->now_wall + (int64_t)a->req->max_ttl_usec;
	a->lease->renewable = true;
out:
	pg_role_clear(&role);
	return r;
}

static int pg_issue(struct backend *b, const struct backend_issue_request *req,
		    struct lease *lease, struct kv *values, struct errmsg *err)
{
	struct pg_issue_args a = {req, lease, values};

	if (req->secret_cfg == NULL || req->secret_name == NULL)
		return errmsg_set(err, -EINVAL, "issue: no secret config");
	return pg_run(b, pg_issue_locked, &a, err);
}

struct pg_renew_args {
	const char *role;
	int64_t want;
	int64_t granted;
};

static int pg_renew_locked(struct backend *b, void *arg, struct errmsg *err)
{
	struct pg_renew_args *a = arg;
	char ts[48], *ident = NULL, *lit = NULL, *sql = NULL;
	int64_t skew;
	int r;

	r = pg_clock_skew(b, "renew: read PostgreSQL's clock", &skew, err);
	if (r < 0)
		return r;
	r = pg_timestamp(a->want + skew, ts, sizeof(ts));
	if (r < 0)
		return errmsg_set(err, r, "renew %s: bad expiry time", a->role);
	ident = PQescapeIdentifier(b->conn, a->role, strlen(a->role));
	lit = PQescapeLiteral(b->conn, ts, strlen(ts));
	if (ident == NULL || lit == NULL ||
	    asprintf(&sql, "ALTER ROLE %s VALID UNTIL %s", ident, lit) < 0) {
		sql = NULL;
		r = -ENOMEM;
		goto out;
	}
	r = pg_exec(b, "renew", sql, 0, NULL, 0, NULL, err);
	if (r == -ENOENT)
		r = errmsg_set(err, r,
			       "renew %s: role does not exist (revoked or "
			       "dropped upstream)",
			       a->role);
	if (r == 0)
		a->granted = a->want;
out:
	free(sql);
	PQfreemem(ident);
	PQfreemem(lit);
	return r;
}

static int pg_renew(struct backend *b, const void *secret_cfg,
		    struct lease *lease, int64_t want_expires_wall,
		    struct errmsg *err)
{
	struct pg_renew_args a = {lease->id, want_expires_wall, 0};
	int r;

	if (!pg_role_valid(lease->id))
		return errmsg_set(err, -EINVAL,
				  "renew: lease id is not a role name");
	if (want_expires_wall < 0)
		return errmsg_set(err, -EINVAL, "renew %s: bad expiry time",
				  lease->id);
	r = pg_run(b, pg_renew_locked, &a, err);
	if (r == 0)
		lease->expires_wall = a.granted;
	return r;
}

/* 1 when role exists, 0 when not; -EPERM for a superuser or ourselves,
 * which no lease id should ever name. */
static int pg_role_exists(struct backend *b, const char *role,
			  struct errmsg *err)
{
	const char *params[1] = {role};
	PGresult *res = NULL;
	int r;

	r = pg_exec(b, "revoke: look up role",
		    "SELECT rolsuper OR rolname = current_user FROM pg_roles "
		    "WHERE rolname = $1",
		    1, params, 0, &res, err);
	if (r < 0)
		return r;
	if (PQntuples(res) == 0)
		r = 0;
	else if (strcmp(PQgetvalue(res, 0, 0), "f") == 0)
		r = 1;
	else
		r = errmsg_set(err, -EPERM,
			       "revoke %s: refusing: superuser "
			       "or the admin role",
			       role);
	PQclear(res);
	return r;
}

/* No new logins, end the role's sessions, then drop it and what it owns
 * (in this database) in one transaction. */
static int pg_revoke_role(struct backend *b, const char *role,
			  struct errmsg *err)
{
	const char *params[1] = {role};
	char *ident = NULL;
	int r;

	r = pg_role_exists(b, role, err);
	if (r <= 0)
		goto out;
	ident = PQescapeIdentifier(b->conn, role, strlen(role));
	if (ident == NULL) {
		r = -ENOMEM;
		goto out;
	}
	r = pg_exec_ident(b, "revoke: NOLOGIN", "ALTER ROLE {{name}} NOLOGIN",
			  ident, err);
	if (r == 0)
		r = pg_exec(b, "revoke: terminate sessions",
			    "SELECT pg_terminate_backend(pid) FROM "
			    "pg_stat_activity WHERE usename = $1",
			    1, params, 0, NULL, err);
	if (r == 0)
		r = pg_exec_ident(b, "revoke: drop role",
				  "REASSIGN OWNED BY {{name}} TO CURRENT_USER; "
				  "DROP OWNED BY {{name}}; "
				  "DROP ROLE IF EXISTS {{name}}",
				  ident, err);
	/* Gone since we looked: someone else dropped it. */
	if (r == -ENOENT)
		r = 0;
out:
	if (r >= 0)
		pg_untrack(b, role);
	PQfreemem(ident);
	return r < 0 ? r : 0;
}

/* Settles the roles marked unsure, on a live session: each is dropped
 * when it exists and forgotten either way.  One that cannot be dropped
 * stays tracked (revoke_all tries again at exit) but is not retried here
 * on every call; a lost session ends the pass, resumed on the next one.
 * Downwards, so that pg_untrack's move of the last role into a freed
 * index only brings one already visited. */
static void pg_settle(struct backend *b)
{
	char role[PG_ROLE_MAX + 1];
	struct errmsg e;
	size_t i;
	int r;

	for (i = b->role_count; b->unsure_count > 0 && i-- > 0;) {
		if (!b->unsure[i])
			continue;
		memcpy(role, b->roles[i], sizeof(role));
		e = (struct errmsg){{0}};
		r = pg_role_exists(b, role, &e);
		if (r == 0) {
			pg_untrack(b, role);
			log_info("event=pg_unsure_role_absent role=%s "
				 "reason=\"its transaction was rolled back\"",
				 role);
			continue;
		}
		if (r > 0)
			r = pg_revoke_role(b, role, &e);
		if (r == 0) {
			log_warnx("event=pg_orphan_role_dropped role=%s "
				  "reason=\"committed, but its session was "
				  "lost before the answer: never served\"",
				  role);
			continue;
		}
		log_warnx("event=pg_orphan_role_drop_failed role=%s errno=%d "
			  "error=\"%s\"",
			  role, -r, e.text);
		if (r == -ECONNRESET)
			return;
		b->unsure[i] = false;
		b->unsure_count--;
	}
}

static int pg_revoke_locked(struct backend *b, void *arg, struct errmsg *err)
{
	return pg_revoke_role(b, arg, err);
}

static int pg_revoke(struct backend *b, const struct lease *lease,
		     struct errmsg *err)
{
	char role[PG_ROLE_MAX + 1];

	if (!pg_role_valid(lease->id))
		return errmsg_set(err, -EINVAL,
				  "revoke: lease id is not a role name");
	memcpy(role, lease->id, strlen(lease->id) + 1);
	return pg_run(b, pg_revoke_locked, role, err);
}

static int pg_check_locked(struct backend *b, void *arg, struct errmsg *err)
{
	int r = pg_role_exists(b, arg, err);

	if (r == 0)
		return errmsg_set(err, -ENOENT, "role %s no longer exists",
				  (const char *)arg);
	return r < 0 ? r : 0;
}

/* A role dropped behind our back (a DBA responding to an incident) is
 * reported as -ENOENT, so the broker takes it out of the mount. */
static int pg_check(struct backend *b, const struct lease *lease,
		    struct errmsg *err)
{
	char role[PG_ROLE_MAX + 1];

	if (!pg_role_valid(lease->id))
		return errmsg_set(err, -EINVAL,
				  "check: lease id is not a role name");
	memcpy(role, lease->id, strlen(lease->id) + 1);
	return pg_run(b, pg_check_locked, role, err);
}

static bool pg_auth_refused(const char *msg)
{
	return msg != NULL &&
	       (strstr(msg, "password authentication failed") != NULL ||
		strstr(msg, "does not exist") != NULL ||
		strstr(msg, "is not permitted to log in") != NULL ||
		strstr(msg, "authentication failed") != NULL);
}

/* A login with the revoked credential itself, which must be refused.
 * Returns 0 when refused (msg: the server's reason), -EEXIST when it
 * logged in. */
static int pg_try_login(const struct kv *values, char *msg, size_t size)
{
	static const char *const keys[] = {
	    "user",   "password",	 "host", "port",
	    "dbname", "connect_timeout", NULL};
	char buf[5][256];
	const char *vals[7];
	const struct secret *s;
	size_t i, len;
	PGconn *c;
	int r;

	for (i = 0; i < 5; i++) {
		s = kv_get(values, i == 0 ? "username" : keys[i]);
		len = 0;
		if (s != NULL) {
			len = secret_len(s) < sizeof(buf[i]) - 1
				  ? secret_len(s)
				  : sizeof(buf[i]) - 1;
			memcpy(buf[i], secret_expose(s, NULL), len);
		}
		buf[i][len] = '\0';
		vals[i] = buf[i];
	}
	vals[5] = "5";
	vals[6] = NULL;
	c = PQconnectdbParams(keys, vals, 0);
	secret_wipe(buf, sizeof(buf));
	r = PQstatus(c) == CONNECTION_OK ? -EEXIST : 0;
	/* Only the server's refusal proves the credential dead; a login
	 * that never reached it (host down, timeout) proves nothing. */
	if (r == 0 && !pg_auth_refused(PQerrorMessage(c)))
		r = -EIO;
	pg_safe_line(PQerrorMessage(c), true, msg, size);
	PQfinish(c);
	return r;
}

struct pg_verify_args {
	const char *role;
	char *detail;
};

static int pg_verify_locked(struct backend *b, void *arg, struct errmsg *err)
{
	struct pg_verify_args *a = arg;
	const char *params[1] = {a->role};
	PGresult *res = NULL;
	long sessions;
	int r;

	r = pg_role_exists(b, a->role, err);
	if (r > 0)
		return errmsg_set(err, -EEXIST, "role %s still exists",
				  a->role);
	if (r < 0)
		return r;
	r = pg_exec(b, "verify: sessions",
		    "SELECT count(*) FROM pg_stat_activity WHERE usename = $1",
		    1, params, 0, &res, err);
	if (r < 0)
		return r;
	sessions = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (sessions != 0)
		return errmsg_set(err, -EEXIST, "%ld sessions of %s remain",
				  sessions, a->role);
	return 0;
}

/* Revoked means: no such role, no session of it, and a login with the
 * credential refused by the server. */
static int pg_verify(struct backend *b, const struct lease *lease,
		     const struct kv *values, char *detail, struct errmsg *err)
{
	struct pg_verify_args args = {lease->id, detail};
	char refused[200] = "";
	int r;

	if (!pg_role_valid(lease->id))
		return errmsg_set(err, -EINVAL,
				  "verify: lease id is not a role name");
	r = pg_run(b, pg_verify_locked, &args, err);
	if (r == 0 && values != NULL && kv_get(values, "password") != NULL) {
		r = pg_try_login(values, refused, sizeof(refused));
		if (r == -EEXIST)
			return errmsg_set(err, r, "a login as %s still works",
					  lease->id);
		if (r < 0)
			return errmsg_set(err, r,
					  "the login as %s was not refused by "
					  "the server: %s",
					  lease->id, refused);
	}
	if (r == 0)
		(void)snprintf(detail, ERRMSG_MAX, "role gone, no session%s%s",
			       refused[0] ? "; login refused: " : "", refused);
	return r;
}

/* Revokes every tracked role (one reconnect when a session dies under
 * us), then closes the admin session. */
static int pg_revoke_all(struct backend *b, struct errmsg *err)
{
	char role[PG_ROLE_MAX + 1];
	struct errmsg e, first = {{0}};
	size_t i, total, failed = 0;
	int r, r1 = 0;

	(void)pthread_mutex_lock(&b->lock);
	total = b->role_count;
	for (i = total; i-- > 0;) {
		memcpy(role, b->roles[i], sizeof(role));
		/* Some failures carry no message; never log stale text. */
		e = (struct errmsg){{0}};
		r = pg_ensure(b, &e);
		if (r == 0)
			r = pg_revoke_role(b, role, &e);
		if (r == -ECONNRESET && (r = pg_ensure(b, &e)) == 0)
			r = pg_revoke_role(b, role, &e);
		if (r < 0 && failed++ == 0) {
			r1 = r;
			first = e;
		}
	}
	pg_disconnect(b);
	(void)pthread_mutex_unlock(&b->lock);
	if (failed > 0)
		return errmsg_set(err, r1,
				  "revoke_all: %zu of %zu roles not revoked; "
				  "first: %.200s",
				  failed, total, first.text);
	return 0;
}

/* ---- lifecycle -------------------------------------------------------- */

static int pg_create(const void *cfg, struct backend **ret)
{
	const struct pg_config *c = cfg;
	struct backend *b;

	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return -ENOMEM;
	b->cfg = *c;
	b->cfg.admin_dsn_file = strdup(c->admin_dsn_file);
	if (b->cfg.admin_dsn_file == NULL ||
	    pthread_mutex_init(&b->lock, NULL) != 0) {
		free(b->cfg.admin_dsn_file);
		free(b);
		return -ENOMEM;
	}
	*ret = b;
	return 0;
}

static int pg_login(struct backend *b, struct errmsg *err)
{
	int r;

	(void)pthread_mutex_lock(&b->lock);
	r = pg_connect(b, err);
	(void)pthread_mutex_unlock(&b->lock);
	return r;
}

static void pg_destroy(struct backend *b)
{
	if (b == NULL)
		return;
	pg_disconnect(b);
	(void)pthread_mutex_destroy(&b->lock);
	free(b->cfg.admin_dsn_file);
	free(b);
}

static const char *const pg_default_files[] = {"username", "password", "dsn",
					       "env", NULL};

static const struct render_env_name pg_env_names[] = {
    {"username", "PGUSER"}, {"password", "PGPASSWORD"}, {"host", "PGHOST"},
    {"port", "PGPORT"},	    {"dbname", "PGDATABASE"},	{NULL, NULL},
};

const struct backend_ops postgres_backend_ops = {
    .type = "postgres",
    .default_files = pg_default_files,
    .env_names = pg_env_names,
    .parse_config = pg_parse_config,
    .free_config = pg_free_config,
    .parse_secret_config = pg_parse_secret_config,
    .free_secret_config = pg_free_secret_config,
    .create = pg_create,
    .login = pg_login,
    .issue = pg_issue,
    .renew = pg_renew,
    .revoke = pg_revoke,
    .check = pg_check,
    .verify = pg_verify,
    .revoke_all = pg_revoke_all,
    .destroy = pg_destroy,
};
