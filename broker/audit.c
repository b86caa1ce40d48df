/* The chain is computed over the exact bytes of each line as written, so
 * verification never depends on re-serialising JSON.  A keyed record ends
 * with ,"mac":"<64 hex>"} computed over the line with that member left
 * out. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "audit.h"
#include "secret.h"

#define AUDIT_HEX 64
#define AUDIT_GENESIS                                                          \
	"0000000000000000000000000000000000000000000000000000000000000000"
#define AUDIT_MAC_PREFIX ",\"mac\":\""
/* ,"mac":" + 64 hex + "} */
#define AUDIT_MAC_SUFFIX_LEN (sizeof(AUDIT_MAC_PREFIX) - 1 + AUDIT_HEX + 2)
#define AUDIT_MAX_ROTATIONS 100000

struct audit_key {
	unsigned char bytes[AUDIT_KEY_MAX];
	size_t len; /* 0: unkeyed */
};

struct audit {
	struct audit_config cfg;
	const struct clock *clk;
	struct audit_key key;
	pthread_mutex_t lock; /* protects every field below */
	int fd;		      /* -1 without a file */
	uint64_t size;
	uint64_t seq; /* the next record's */
	char prev[AUDIT_HEX + 1];
	unsigned rotations; /* FILE.1 .. FILE.rotations exist */
};

/* SHA-256, or HMAC-SHA256 with a key, as lowercase hex. */
static int audit_digest(const struct audit_key *key, const void *data,
			size_t len, char hex[AUDIT_HEX + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	size_t mdlen = 0, i;
	unsigned int dlen = 0;
	int ok;

	if (key->len > 0) {
		ok = EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key->bytes,
			       key->len, data, len, md, sizeof(md),
			       &mdlen) != NULL;
	} else {
		ok = EVP_Digest(data, len, md, &dlen, EVP_sha256(), NULL) == 1;
		mdlen = dlen;
	}
	if (!ok || mdlen != 32)
		return -EIO;
	for (i = 0; i < 32; i++)
		(void)snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static int audit_load_key(const char *path, struct audit_key *key,
			  struct errmsg *err)
{
	struct stat st;
	ssize_t n;
	int fd, r = 0;

	key->len = 0;
	if (path[0] == '\0')
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errmsg_set(err, -errno, "audit.key_file: %s: %s", path,
				  strerror(errno));
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if ((st.st_mode & 077) != 0)
		r = errmsg_set(err, -EINVAL,
			       "audit.key_file: %s must not be "
			       "group- or world-readable",
			       path);
	if (r == 0) {
		n = read(fd, key->bytes, sizeof(key->bytes));
		if (n <= 0)
			r = errmsg_set(err, -EINVAL,
				       "audit.key_file: %s is "
				       "empty or unreadable",
				       path);
		else
			key->len = (size_t)n;
	}
	close(fd);
	return r;
}

/* The last complete line of the file at path into buf (NUL-terminated);
 * returns its length, 0 for none, or -errno. */
static ssize_t audit_last_line(const char *path, char *buf, size_t size)
{
	ssize_t n, end, start;
	struct stat st;
	off_t from;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return -errno;
	}
	from = st.st_size > (off_t)size - 1 ? st.st_size - (off_t)size + 1 : 0;
	n = pread(fd, buf, size - 1, from);
	close(fd);
	if (n < 0)
		return -errno;
	/* A partial last line (a crash mid-write) is skipped: the chain goes
	 * on from the last whole record, and verify flags the fragment. */
	end = n;
	while (end > 0 && buf[end - 1] != '\n')
		end--;
	if (end == 0)
		return 0;
	end--;
	start = end;
	while (start > 0 && buf[start - 1] != '\n')
		start--;
	memmove(buf, buf + start, (size_t)(end - start));
	buf[end - start] = '\0';
	return end - start;
}

static void audit_rotated_name(const char *path, unsigned n, char *buf,
			       size_t size)
{
	(void)snprintf(buf, size, "%s.%u", path, n);
}

/* Picks up the chain where the newest file (current, else the newest
 * rotated one) ends. */
static int audit_continue(struct audit *a, struct errmsg *err)
{
	char name[PATH_MAX + 16], *line;
	json_t *rec, *seq;
	ssize_t len = 0;
	struct stat st;
	int r = 0;

	while (a->rotations < AUDIT_MAX_ROTATIONS) {
		audit_rotated_name(a->cfg.path, a->rotations + 1, name,
				   sizeof(name));
		if (stat(name, &st) < 0)
			break;
		a->rotations++;
	}
	line = malloc(AUDIT_MAX_LINE + 2);
	if (line == NULL)
		return -ENOMEM;
	len = audit_last_line(a->cfg.path, line, AUDIT_MAX_LINE + 2);
	if (len == 0 && a->rotations > 0) {
		audit_rotated_name(a->cfg.path, a->rotations, name,
				   sizeof(name));
		len = audit_last_line(name, line, AUDIT_MAX_LINE + 2);
	}
	if (len < 0) {
		r = errmsg_set(err, (int)len, "audit.file: cannot read %s",
			       a->cfg.path);
		goto out;
	}
	if (len == 0)
		goto out;
	rec = json_loadb(line, (size_t)len, 0, NULL);
	seq = json_object_get(rec, "seq");
	if (json_is_integer(seq) && json_integer_value(seq) >= 0)
		a->seq = (uint64_t)json_integer_value(seq) + 1;
	json_decref(rec);
	r = audit_digest(&a->key, line, (size_t)len, a->prev);
out:
	free(line);
	return r;
}

static bool audit_ends_with_newline(int fd, uint64_t size)
{
	char c = '\n';

	return pread(fd, &c, 1, (off_t)(size - 1)) != 1 || c == '\n';
}

static int audit_open_file(struct audit *a, struct errmsg *err)
{
	struct stat st;

	a->fd =
	    open(a->cfg.path,
		 O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (a->fd < 0)
		return errmsg_set(err, -errno, "audit.file: cannot open %s: %s",
				  a->cfg.path, strerror(errno));
	if (fstat(a->fd, &st) < 0 || !S_ISREG(st.st_mode))
		return errmsg_set(err, -EINVAL,
				  "audit.file: %s is not a "
				  "regular file",
				  a->cfg.path);
	a->size = (uint64_t)st.st_size;
	/* A crash mid-write left a fragment: the next record starts on a
	 * line of its own (verify still reports the fragment). */
	if (a->size > 0 && !audit_ends_with_newline(a->fd, a->size) &&
	    write(a->fd, "\n", 1) == 1)
		a->size++;
	return 0;
}

int audit_open(const struct audit_config *cfg, const struct clock *clk,
	       struct audit **ret, struct errmsg *err)
{
	struct audit *a;
	int r;

	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return errmsg_set(err, -ENOMEM, "out of memory");
	a->cfg = *cfg;
	a->clk = clk;
	a->fd = -1;
	a->seq = 1;
	memcpy(a->prev, AUDIT_GENESIS, sizeof(a->prev));
	pthread_mutex_init(&a->lock, NULL);
	r = audit_load_key(cfg->key_file, &a->key, err);
	if (r == 0 && cfg->path[0] != '\0')
		r = audit_continue(a, err);
	if (r == 0 && cfg->path[0] != '\0')
		r = audit_open_file(a, err);
	if (r < 0) {
		audit_close(a);
		return r;
	}
	*ret = a;
	return 0;
}

/* FILE becomes FILE.N+1 and a new FILE starts; the chain runs on. */
static int audit_rotate(struct audit *a)
{
	char name[PATH_MAX + 16];
	struct errmsg err;

	/* Never over an existing file: an operator may have pruned the
	 * oldest ones, so numbers need not start at 1. */
	for (;;) {
		audit_rotated_name(a->cfg.path, ++a->rotations, name,
				   sizeof(name));
		if (renameat2(AT_FDCWD, a->cfg.path, AT_FDCWD, name,
			      RENAME_NOREPLACE) == 0)
			break;
		if (errno != EEXIST || a->rotations >= AUDIT_MAX_ROTATIONS)
			return -errno;
	}
	close(a->fd);
	a->fd = -1;
	return audit_open_file(a, &err);
}

static int audit_write_all(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The caller's fields, but never the log's own keys. */
static int audit_copy_fields(json_t *rec, json_t *fields)
{
	const char *key;
	json_t *value;

	json_object_foreach(fields, key, value)
	{
		if (strcmp(key, "seq") == 0 || strcmp(key, "time") == 0 ||
		    strcmp(key, "prev") == 0 || strcmp(key, "mac") == 0)
			continue;
		if (json_object_set(rec, key, value) < 0)
			return -1;
	}
	return 0;
}

/* The record's line: seq, time, the caller's fields, prev, and mac when
 * keyed.  Returns its length or -errno; *line is malloc'd. */
static ssize_t audit_format(struct audit *a, json_t *fields, char **line)
{
	char when[40], mac[AUDIT_HEX + 1];
	json_t *rec = json_object();
	size_t n = 0;
	char *buf = NULL, *grown;

	clock_format_rfc3339_usec(clock_wall(a->clk), when, sizeof(when));
	if (rec == NULL ||
	    json_object_set_new(rec, "seq", json_integer((json_int_t)a->seq)) ||
	    json_object_set_new(rec, "time", json_string(when)) ||
	    audit_copy_fields(rec, fields) ||
	    json_object_set_new(rec, "prev", json_string(a->prev)))
		goto fail;
	/* json_dumpb into our buffer: jansson's own allocation would have to
	 * be released with its (zeroing) allocator. */
	n = json_dumpb(rec, NULL, 0, JSON_COMPACT);
	buf = n > 0 ? malloc(n + 1) : NULL;
	if (buf == NULL)
		goto fail;
	(void)json_dumpb(rec, buf, n, JSON_COMPACT);
	buf[n] = '\0';
	json_decref(rec);
	if (n + AUDIT_MAC_SUFFIX_LEN + 2 > AUDIT_MAX_LINE) {
		free(buf);
		return -EMSGSIZE;
	}
	if (a->key.len > 0) {
		if (audit_digest(&a->key, buf, n, mac) < 0) {
			free(buf);
			return -EIO;
		}
		grown = realloc(buf, n + AUDIT_MAC_SUFFIX_LEN + 2);
		if (grown == NULL) {
			free(buf);
			return -ENOMEM;
		}
		buf = grown;
		(void)snprintf(buf + n - 1, AUDIT_MAC_SUFFIX_LEN + 3,
			       AUDIT_MAC_PREFIX "%s\"}", mac);
		n = strlen(buf);
	}
	*line = buf;
	return (ssize_t)n;
fail:
	json_decref(rec);
	return -ENOMEM;
}

static int audit_append(struct audit *a, const char *line, size_t len)
{
	int r = 0;

	if (a->fd >= 0 && a->cfg.max_bytes > 0 && a->size > 0 &&
	    a->size + len + 1 > a->cfg.max_bytes)
		r = audit_rotate(a);
	if (r == 0 && a->cfg.path[0] != '\0' && a->fd < 0)
		r = -EBADF;
	if (r == 0 && a->fd >= 0) {
		r = audit_write_all(a->fd, line, len);
		if (r == 0)
			r = audit_write_all(a->fd, "\n", 1);
		if (r == 0)
			a->size += len + 1;
	}
	if (a->cfg.to_stdout) {
		(void)fwrite(line, 1, len, stdout);
		(void)fputc('\n', stdout);
		(void)fflush(stdout);
	}
	return r;
}

int audit_write(struct audit *a, json_t *fields)
{
	char *line = NULL;
	ssize_t len;
	int r;

	if (a == NULL || !json_is_object(fields)) {
		json_decref(fields);
		return a == NULL ? 0 : -EINVAL;
	}
	pthread_mutex_lock(&a->lock);
	len = audit_format(a, fields, &line);
	r = len < 0 ? (int)len : audit_append(a, line, (size_t)len);
	if (r == 0) {
		r = audit_digest(&a->key, line, (size_t)len, a->prev);
		a->seq++;
	}
	pthread_mutex_unlock(&a->lock);
	free(line);
	json_decref(fields);
	return r;
}

uint64_t audit_next_seq(struct audit *a)
{
	uint64_t seq;

	pthread_mutex_lock(&a->lock);
	seq = a->seq;
	pthread_mutex_unlock(&a->lock);
	return seq;
}

void audit_close(struct audit *a)
{
	if (a == NULL)
		return;
	if (a->fd >= 0)
		close(a->fd);
	secret_wipe(&a->key, sizeof(a->key));
	pthread_mutex_destroy(&a->lock);
	free(a);
}

/* ---- verification ---- */

struct audit_verifier {
	struct audit_key key;
	struct audit_verify_result *res;
	char prev[AUDIT_HEX + 1]; /* digest of the last good line */
	bool have_prev;
};

static int audit_check_mac(const struct audit_verifier *v, char *line,
			   size_t len)
{
	char mac[AUDIT_HEX + 1], *start;
	int ok;

	if (len < AUDIT_MAC_SUFFIX_LEN + 2)
		return -EBADMSG;
	start = line + len - AUDIT_MAC_SUFFIX_LEN;
	if (strncmp(start, AUDIT_MAC_PREFIX, sizeof(AUDIT_MAC_PREFIX) - 1))
		return -EBADMSG;
	start[0] = '}';
	ok =
	    audit_digest(&v->key, line, (size_t)(start - line) + 1, mac) == 0 &&
	    CRYPTO_memcmp(mac, start + sizeof(AUDIT_MAC_PREFIX) - 1,
			  AUDIT_HEX) == 0;
	start[0] = ',';
	return ok ? 0 : -EBADMSG;
}

/* One line: well-formed, in sequence, linked to the one before. */
static int audit_check_line(struct audit_verifier *v, char *line, size_t len,
			    struct errmsg *err)
{
	json_t *rec = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
	json_t *seq = json_object_get(rec, "seq");
	const char *prev = json_string_value(json_object_get(rec, "prev"));
	uint64_t n;
	int r = 0;

	if (!json_is_integer(seq) || json_integer_value(seq) < 0 ||
	    prev == NULL || strlen(prev) != AUDIT_HEX) {
		json_decref(rec);
		return errmsg_set(err, -EBADMSG, "not an audit record");
	}
	n = (uint64_t)json_integer_value(seq);
	if (v->key.len > 0 && audit_check_mac(v, line, len) < 0)
		r = errmsg_set(err, -EBADMSG,
			       "seq %llu: mac does not match "
			       "(edited, or the wrong key)",
			       (unsigned long long)n);
	else if (v->have_prev && n != v->res->last_seq + 1)
		r = errmsg_set(err, -EBADMSG,
			       "seq %llu follows seq %llu "
			       "(records removed or reordered)",
			       (unsigned long long)n,
			       (unsigned long long)v->res->last_seq);
	else if (v->have_prev && CRYPTO_memcmp(prev, v->prev, AUDIT_HEX) != 0)
		r = errmsg_set(err, -EBADMSG,
			       "seq %llu: prev does not match "
			       "the record before (edited or swapped)",
			       (unsigned long long)n);
	if (r == 0 && !v->have_prev) {
		v->res->first_seq = n;
		v->res->starts_at_genesis = strcmp(prev, AUDIT_GENESIS) == 0;
	}
	json_decref(rec);
	if (r < 0)
		return r;
	v->res->last_seq = n;
	v->res->records++;
	v->have_prev = true;
	return audit_digest(&v->key, line, len, v->prev);
}

static int audit_verify_file(struct audit_verifier *v, const char *path,
			     struct errmsg *err)
{
	FILE *f = fopen(path, "re");
	uint64_t lineno = 0;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int r = 0;

	if (f == NULL)
		return errmsg_set(err, -errno, "%s: %s", path, strerror(errno));
	while ((len = getline(&line, &cap, f)) > 0) {
		lineno++;
		if (line[len - 1] != '\n') {
			r = errmsg_set(err, -EBADMSG, "truncated record");
			break;
		}
		line[--len] = '\0';
		r = audit_check_line(v, line, (size_t)len, err);
		if (r < 0)
			break;
	}
	if (r < 0) {
		(void)snprintf(v->res->broken_file, sizeof(v->res->broken_file),
			       "%s", path);
		v->res->broken_line = lineno;
		(void)errmsg_prefix(err, r, "%s:%llu", path,
				    (unsigned long long)lineno);
	}
	free(line);
	fclose(f);
	return r;
}

int audit_verify(const char *const *paths, size_t count, const char *key_file,
		 struct audit_verify_result *res, struct errmsg *err)
{
	struct audit_verifier v;
	size_t i;
	int r;

	memset(&v, 0, sizeof(v));
	memset(res, 0, sizeof(*res));
	v.res = res;
	r = audit_load_key(key_file, &v.key, err);
	for (i = 0; r == 0 && i < count; i++)
		r = audit_verify_file(&v, paths[i], err);
	secret_wipe(&v.key, sizeof(v.key));
	return r;
}
