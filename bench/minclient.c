/* The cold-start baseline (issue 7): the least a program can do to hand an
 * application a fresh PostgreSQL credential, doing the same login and issue
 * calls as the broker's postgres backend (backends/postgres.c) and nothing
 * else: connect with the admin DSN, SET statement_timeout, make a random
 * password, hash it (SCRAM), CREATE ROLE ... VALID UNTIL and GRANT in one
 * transaction, then write the libpq URI to a file (write to a temporary
 * name, rename: readers see all of it or nothing).
 *
 *   minclient ADMIN_DSN_FILE OUT_FILE SECRET_NAME TTL_SEC
 *
 * Prints the role name on stdout, so the caller can drop it.  A bench
 * password, never a real one; still, nothing prints it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/rand.h>

#define MC_PASSWORD_BYTES 32
#define MC_PASSWORD_LEN 43
#define MC_MAX_DSN 4096
#define MC_MAX_NAME 63
#define MC_MAX_SQL 1024

struct mc_role {
	char name[MC_MAX_NAME + 1];
	char password[MC_PASSWORD_LEN + 1];
	char expires[48];
};

static int mc_read_dsn(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	(void)close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -EINVAL;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	return 0;
}

static char mc_b64url(unsigned v)
{
	static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				     "abcdefghijklmnopqrstuvwxyz0123456789-_";

	return digits[v & 63];
}

/* The same shapes as the broker's: name_<16 hex>, 43 base64url chars. */
static int mc_role_new(const char *secret_name, long ttl, struct mc_role *r)
{
	unsigned char raw[MC_PASSWORD_BYTES], rnd[8];
	unsigned acc = 0;
	int bits = 0, n = 0;
	size_t i;
	time_t t = time(NULL) + ttl;
	struct tm tm;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1 ||
	    RAND_bytes(raw, sizeof(raw)) != 1)
		return -EIO;
	n = snprintf(r->name, sizeof(r->name), "cbm_%.24s_", secret_name);
	for (i = 0; i < sizeof(rnd) && n > 0; i++)
		n += snprintf(r->name + n, sizeof(r->name) - (size_t)n, "%02x",
			      rnd[i]);
	for (n = 0, i = 0; i < sizeof(raw); i++) {
		acc = (acc << 8 | raw[i]) & 0xffff;
		for (bits += 8; bits >= 6; bits -= 6)
			r->password[n++] = mc_b64url(acc >> (bits - 6));
	}
	if (bits > 0)
		r->password[n++] = mc_b64url(acc << (6 - bits));
	r->password[n] = '\0';
	explicit_bzero(raw, sizeof(raw));
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(r->expires, sizeof(r->expires), "%Y-%m-%d %H:%M:%S+00",
		     &tm) == 0)
		return -EINVAL;
	return 0;
}

static int mc_exec(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	int st = PQresultStatus(res);
	int r = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : -EIO;

	if (r < 0)
		fprintf(stderr, "minclient: statement failed: %s",
			PQresultErrorMessage(res));
	PQclear(res);
	return r;
}

static PGconn *mc_connect(const char *dsn)
{
	static const char *const keys[] = {"dbname", "connect_timeout",
					   "application_name", NULL};
	const char *vals[] = {dsn, "5", "credbroker", NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);

	if (c != NULL && PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "minclient: connect: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	if (c != NULL && mc_exec(c, "SET statement_timeout = 5000") < 0) {
		PQfinish(c);
		return NULL;
	}
	return c;
}

/* BEGIN; CREATE ROLE ...; GRANT ...; COMMIT, with the SCRAM verifier (SQL
 * never carries the plaintext), as the broker does. */
static int mc_create(PGconn *c, const struct mc_role *role)
{
	char *verifier = NULL, *vlit = NULL, *ident = NULL, *exp = NULL;
	char sql[MC_MAX_SQL];
	int r = -ENOMEM;

	verifier = PQencryptPasswordConn(c, role->password, role->name,
					 "scram-sha-256");
	if (verifier != NULL)
		vlit = PQescapeLiteral(c, verifier, strlen(verifier));
	ident = PQescapeIdentifier(c, role->name, strlen(role->name));
	exp = PQescapeLiteral(c, role->expires, strlen(role->expires));
	if (vlit == NULL || ident == NULL || exp == NULL)
		goto out;
	r = mc_exec(c, "BEGIN");
	if (r == 0 && snprintf(sql, sizeof(sql),
			       "CREATE ROLE %s WITH LOGIN PASSWORD %s "
			       "VALID UNTIL %s",
			       ident, vlit, exp) >= (int)sizeof(sql))
		r = -EMSGSIZE;
	if (r == 0)
		r = mc_exec(c, sql);
	if (r == 0 &&
	    snprintf(sql, sizeof(sql), "GRANT SELECT ON granted_t TO %s",
		     ident) >= (int)sizeof(sql))
		r = -EMSGSIZE;
	if (r == 0)
		r = mc_exec(c, sql);
	if (r == 0)
		r = mc_exec(c, "COMMIT");
	explicit_bzero(sql, sizeof(sql));
out:
	PQfreemem(verifier);
	PQfreemem(vlit);
	PQfreemem(ident);
	PQfreemem(exp);
	return r;
}

/* postgresql://user:pw@/db?host=SOCKDIR&port=P: every field the bench
 * uses is URI-safe ([a-z0-9_], base64url, a plain path). */
static int mc_write(PGconn *c, const struct mc_role *role, const char *out)
{
	char tmp[4096], uri[MC_MAX_DSN];
	int fd, n, r = 0;

	n = snprintf(uri, sizeof(uri), "postgresql://%s:%s@/%s?host=%s&port=%s",
		     role->name, role->password, PQdb(c), PQhost(c), PQport(c));
	if (n < 0 || n >= (int)sizeof(uri) ||
	    snprintf(tmp, sizeof(tmp), "%s.tmp", out) >= (int)sizeof(tmp))
		return -EMSGSIZE;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0400);
	if (fd < 0)
		return -errno;
	if (write(fd, uri, (size_t)n) != n)
		r = -EIO;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, out) < 0)
		r = -errno;
	explicit_bzero(uri, sizeof(uri));
	return r;
}

int main(int argc, char **argv)
{
	char dsn[MC_MAX_DSN];
	struct mc_role role;
	PGconn *c = NULL;
	char *end;
	long ttl;
	int r;

	if (argc != 5) {
		fprintf(stderr, "usage: minclient ADMIN_DSN_FILE OUT_FILE "
				"SECRET_NAME TTL_SEC\n");
		return 2;
	}
	memset(&role, 0, sizeof(role));
	errno = 0;
	ttl = strtol(argv[4], &end, 10);
	if (errno != 0 || *end != '\0' || ttl <= 0)
		return 2;
	r = mc_read_dsn(argv[1], dsn, sizeof(dsn));
	if (r == 0)
		c = mc_connect(dsn);
	if (r == 0 && c == NULL)
		r = -ECONNREFUSED;
	if (r == 0)
		r = mc_role_new(argv[3], ttl, &role);
	if (r == 0)
		r = mc_create(c, &role);
	if (r == 0)
		r = mc_write(c, &role, argv[2]);
	if (r == 0)
		printf("%s\n", role.name);
	explicit_bzero(&role, sizeof(role));
	explicit_bzero(dsn, sizeof(dsn));
	PQfinish(c);
	if (r < 0)
		fprintf(stderr, "minclient: %s\n", strerror(-r));
	return r < 0 ? 1 : 0;
}
