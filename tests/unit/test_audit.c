/* The audit log: records chained across writes, restarts and rotated
 * files; every kind of tampering (edit, removal, reordering, truncation, a
 * wrong key) caught and located. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "audit.h"
#include "zalloc.h"

static char dir[] = "/tmp/cb-audit-XXXXXX";
static char path[256], key_path[256];
static int64_t now_wall = 1796400000LL * 1000000;

static uint64_t fake_mono(void *arg)
{
	return 0;
}

static int64_t fake_wall(void *arg)
{
	return now_wall;
}

static const struct clock fake_clock = {fake_mono, fake_wall, NULL};

static void setup(void)
{
	(void)snprintf(dir, sizeof(dir), "/tmp/cb-audit-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	(void)snprintf(path, sizeof(path), "%s/audit.log", dir);
	(void)snprintf(key_path, sizeof(key_path), "%s/key", dir);
}

static void teardown(void)
{
	char name[600];
	struct dirent *e;
	DIR *d = opendir(dir);

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		(void)snprintf(name, sizeof(name), "%s/%s", dir, e->d_name);
		ck_assert_int_eq(unlink(name), 0);
	}
	closedir(d);
	ck_assert_int_eq(rmdir(dir), 0);
}

static struct audit *open_log(const char *key, uint64_t max_bytes)
{
	struct audit_config cfg;
	struct audit *a = NULL;
	struct errmsg err;

	memset(&cfg, 0, sizeof(cfg));
	(void)snprintf(cfg.path, sizeof(cfg.path), "%s", path);
	if (key != NULL)
		(void)snprintf(cfg.key_file, sizeof(cfg.key_file), "%s", key);
	cfg.max_bytes = max_bytes;
	ck_assert_msg(audit_open(&cfg, &fake_clock, &a, &err) == 0, "%s",
		      err.text);
	return a;
}

static void write_n(struct audit *a, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		now_wall += 1500;
		ck_assert_int_eq(
		    audit_write(a,
				json_pack("{s:s, s:i, s:s}", "event", "issue",
					  "version", i, "result", "ok")),
		    0);
	}
}

static int verify(const char *const *paths, size_t n, const char *key,
		  struct audit_verify_result *res, struct errmsg *err)
{
	return audit_verify(paths, n, key ? key : "", res, err);
}

static int verify_one(const char *key, struct audit_verify_result *res,
		      struct errmsg *err)
{
	const char *paths[] = {path};

	return verify(paths, 1, key, res, err);
}

/* Replaces line lineno (1-based) of the log with text, or drops it when
 * text is NULL; swap exchanges it with the next line. */
static void edit(int lineno, const char *text, bool swap)
{
	char *lines[64], buf[AUDIT_MAX_LINE];
	FILE *f = fopen(path, "re");
	int n = 0, i;

	ck_assert_ptr_nonnull(f);
	while (n < 64 && fgets(buf, sizeof(buf), f) != NULL)
		lines[n++] = strdup(buf);
	fclose(f);
	if (swap) {
		char *t = lines[lineno - 1];

		lines[lineno - 1] = lines[lineno];
		lines[lineno] = t;
	}
	f = fopen(path, "we");
	for (i = 0; i < n; i++) {
		if (i == lineno - 1 && !swap) {
			if (text != NULL)
				fputs(text, f);
		} else {
			fputs(lines[i], f);
		}
		free(lines[i]);
	}
	fclose(f);
}

static json_t *line_json(int lineno)
{
	char buf[AUDIT_MAX_LINE];
	FILE *f = fopen(path, "re");
	json_t *j = NULL;
	int n = 0;

	ck_assert_ptr_nonnull(f);
	while (fgets(buf, sizeof(buf), f) != NULL)
		if (++n == lineno)
			j = json_loads(buf, 0, NULL);
	fclose(f);
	ck_assert_ptr_nonnull(j);
	return j;
}

START_TEST(test_audit_records_chain)
{
	struct audit *a = open_log(NULL, 0);
	struct audit_verify_result res;
	struct errmsg err;
	struct stat st;
	json_t *j;

	write_n(a, 3);
	ck_assert_uint_eq(audit_next_seq(a), 4);
	audit_close(a);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	j = line_json(1);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "seq")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(j, "prev")),
			 "00000000000000000000000000000000"
			 "00000000000000000000000000000000");
	ck_assert_str_eq(json_string_value(json_object_get(j, "event")),
			 "issue");
	/* RFC 3339 with microseconds. */
	ck_assert_uint_eq(strlen(json_string_value(json_object_get(j, "time"))),
			  27);
	json_decref(j);
	ck_assert_msg(verify_one(NULL, &res, &err) == 0, "%s", err.text);
	ck_assert_uint_eq(res.records, 3);
	ck_assert(res.starts_at_genesis);
	ck_assert_uint_eq(res.last_seq, 3);
}
END_TEST

START_TEST(test_audit_edit_caught)
{
	struct audit *a = open_log(NULL, 0);
	struct audit_verify_result res;
	struct errmsg err;
	char forged[512];
	json_t *j;
	char *text;

	write_n(a, 4);
	audit_close(a);
	j = line_json(2);
	json_object_set_new(j, "result", json_string("denied"));
	text = json_dumps(j, JSON_COMPACT);
	(void)snprintf(forged, sizeof(forged), "%s\n", text);
	zalloc_free(text);
	json_decref(j);
	edit(2, forged, false);
	ck_assert_int_eq(verify_one(NULL, &res, &err), -EBADMSG);
	/* The record after the edited one no longer links to it. */
	ck_assert_uint_eq(res.broken_line, 3);
	ck_assert_ptr_nonnull(strstr(err.text, "audit.log:3"));
	ck_assert_ptr_nonnull(strstr(err.text, "prev does not match"));
}
END_TEST

START_TEST(test_audit_removal_and_swap_caught)
{
	struct audit *a = open_log(NULL, 0);
	struct audit_verify_result res;
	struct errmsg err;

	write_n(a, 5);
	audit_close(a);
	edit(3, NULL, false);
	ck_assert_int_eq(verify_one(NULL, &res, &err), -EBADMSG);
	ck_assert_uint_eq(res.broken_line, 3);
	ck_assert_ptr_nonnull(strstr(err.text, "seq 4 follows seq 2"));
	edit(1, NULL, true);
	ck_assert_int_eq(verify_one(NULL, &res, &err), -EBADMSG);
	ck_assert_uint_eq(res.broken_line, 2);
}
END_TEST

START_TEST(test_audit_restart_continues_chain)
{
	struct audit *a = open_log(NULL, 0);
	struct audit_verify_result res;
	struct errmsg err;
	FILE *f;

	write_n(a, 2);
	audit_close(a);
	a = open_log(NULL, 0);
	ck_assert_uint_eq(audit_next_seq(a), 3);
	write_n(a, 2);
	audit_close(a);
	ck_assert_msg(verify_one(NULL, &res, &err) == 0, "%s", err.text);
	ck_assert_uint_eq(res.records, 4);
	/* A crash mid-write leaves a fragment: flagged, and the next run
	 * chains on from the last whole record. */
	f = fopen(path, "ae");
	fputs("{\"seq\":5,\"ti", f);
	fclose(f);
	ck_assert_int_eq(verify_one(NULL, &res, &err), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err.text, "truncated"));
	a = open_log(NULL, 0);
	ck_assert_uint_eq(audit_next_seq(a), 5);
	audit_close(a);
}
END_TEST

START_TEST(test_audit_rotation_keeps_chain)
{
	struct audit *a = open_log(NULL, 400);
	struct audit_verify_result res;
	struct errmsg err;
	char rotated[8][300];
	const char *all[9], *t;
	size_t n = 0;

	write_n(a, 7);
	audit_close(a);
	for (n = 0; n < 8; n++) {
		(void)snprintf(rotated[n], sizeof(rotated[n]), "%s.%zu", path,
			       n + 1);
		if (access(rotated[n], F_OK) != 0)
			break;
		all[n] = rotated[n];
	}
	ck_assert_uint_ge(n, 2);
	all[n++] = path;
	ck_assert_msg(verify(all, n, NULL, &res, &err) == 0, "%s", err.text);
	ck_assert_uint_eq(res.records, 7);
	ck_assert(res.starts_at_genesis);
	/* The newest file alone verifies but does not start the chain. */
	ck_assert_int_eq(verify_one(NULL, &res, &err), 0);
	ck_assert(!res.starts_at_genesis);
	ck_assert_uint_gt(res.first_seq, 1);
	/* Files out of order break it. */
	t = all[0];
	all[0] = all[1];
	all[1] = t;
	ck_assert_int_eq(verify(all, n, NULL, &res, &err), -EBADMSG);
	/* A restart after rotation continues from the newest file. */
	a = open_log(NULL, 400);
	ck_assert_uint_eq(audit_next_seq(a), 8);
	audit_close(a);
}
END_TEST

static void write_key(mode_t mode)
{
	FILE *f = fopen(key_path, "we");

	ck_assert_ptr_nonnull(f);
	fputs("a test key of some length", f);
	fclose(f);
	ck_assert_int_eq(chmod(key_path, mode), 0);
}

START_TEST(test_audit_keyed_chain)
{
	struct audit_verify_result res;
	struct audit_config cfg;
	struct errmsg err;
	struct audit *a;
	char line[600];
	FILE *f;

	write_key(0600);
	a = open_log(key_path, 0);
	write_n(a, 3);
	audit_close(a);
	ck_assert_msg(verify_one(key_path, &res, &err) == 0, "%s", err.text);
	/* Without the key the digests do not match. */
	ck_assert_int_eq(verify_one(NULL, &res, &err), -EBADMSG);
	/* The last record is protected too. */
	f = fopen(path, "re");
	while (fgets(line, sizeof(line), f) != NULL)
		;
	fclose(f);
	strstr(line, "\"ok\"")[1] = 'O';
	edit(3, line, false);
	ck_assert_int_eq(verify_one(key_path, &res, &err), -EBADMSG);
	ck_assert_uint_eq(res.broken_line, 3);
	ck_assert_ptr_nonnull(strstr(err.text, "mac does not match"));
	/* A key others can read is refused. */
	write_key(0644);
	memset(&cfg, 0, sizeof(cfg));
	(void)snprintf(cfg.key_file, sizeof(cfg.key_file), "%s", key_path);
	ck_assert_int_eq(audit_open(&cfg, &fake_clock, &a, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.text, "audit.key_file"));
}
END_TEST

START_TEST(test_audit_limits)
{
	struct audit *a = open_log(NULL, 0);
	char *big = malloc(AUDIT_MAX_LINE + 1);
	struct audit_verify_result res;
	struct errmsg err;

	memset(big, 'x', AUDIT_MAX_LINE);
	big[AUDIT_MAX_LINE] = '\0';
	ck_assert_int_eq(audit_write(a, json_pack("{s:s}", "event", big)),
			 -EMSGSIZE);
	free(big);
	ck_assert_uint_eq(audit_next_seq(a), 1);
	ck_assert_int_eq(audit_write(a, json_string("not an object")), -EINVAL);
	/* The log's own keys cannot be forged by a caller. */
	ck_assert_int_eq(
	    audit_write(a, json_pack("{s:s, s:i, s:s}", "event", "x", "seq", 99,
				     "prev", "abc")),
	    0);
	audit_close(a);
	ck_assert_msg(verify_one(NULL, &res, &err) == 0, "%s", err.text);
	ck_assert_uint_eq(res.last_seq, 1);
	ck_assert_int_eq(audit_write(NULL, json_object()), 0);
}
END_TEST

static Suite *audit_suite(void)
{
	Suite *s = suite_create("audit");
	TCase *tc = tcase_create("log");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_audit_records_chain);
	tcase_add_test(tc, test_audit_edit_caught);
	tcase_add_test(tc, test_audit_removal_and_swap_caught);
	tcase_add_test(tc, test_audit_restart_continues_chain);
	tcase_add_test(tc, test_audit_rotation_keeps_chain);
	tcase_add_test(tc, test_audit_keyed_chain);
	tcase_add_test(tc, test_audit_limits);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(audit_suite());
	int failed;

	/* As the daemon does: jansson's blocks are wiped, and freeing one
	 * with free() would be caught. */
	json_set_alloc_funcs(zalloc_malloc, zalloc_free);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
