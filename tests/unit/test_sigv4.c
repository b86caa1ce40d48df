/* The SigV4 signer on AWS's aws-sig-v4-test-suite (tests/data/sigv4/, a
 * byte-identical copy of ../shared/testdata/sigv4/, or the directory in
 * SIGV4_SUITE_DIR): for every case the
 * canonical request, the string to sign and the Authorization header must
 * match the published files exactly. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>

#include "sigv4.h"

#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *buf;
	long n;

	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	buf[n] = '\0';
	if (len != NULL)
		*len = (size_t)n;
	return buf;
}

struct parsed {
	char *text; /* owns every string below */
	struct sigv4_request req;
	struct sigv4_header headers[SIGV4_MAX_HEADERS];
};

/* "METHOD PATH[?QUERY] HTTP/1.1", "Name:value" lines (a line starting
 * with whitespace continues the previous value), a blank line, the
 * body. */
static void parse_req(const char *path, struct parsed *p)
{
	char *line, *next, *colon, *q, *sp;
	size_t n = 0, len;

	memset(p, 0, sizeof(*p));
	p->text = slurp(path, &len);
	line = p->text;
	next = strchr(line, '\n');
	ck_assert_ptr_nonnull(next);
	*next = '\0';
	sp = strchr(line, ' ');
	*sp = '\0';
	p->req.method = line;
	line = sp + 1;
	*strrchr(line, ' ') = '\0';
	q = strchr(line, '?');
	p->req.query = "";
	if (q != NULL) {
		*q = '\0';
		p->req.query = q + 1;
	}
	p->req.path = line;
	for (line = next + 1; line != NULL && *line != '\0'; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		if (*line == '\0') {
			/* The blank line: the body follows. */
			p->req.body = next ? next : "";
			p->req.body_len = strlen(p->req.body);
			break;
		}
		if (*line == ' ' || *line == '\t') {
			/* A folded line: rejoin with its header's value. */
			line[-1] = '\n';
			continue;
		}
		colon = strchr(line, ':');
		ck_assert_msg(colon != NULL, "%s: header line \"%s\"", path,
			      line);
		*colon = '\0';
		p->headers[n].name = line;
		p->headers[n++].value = colon + 1;
	}
	p->req.headers = p->headers;
	p->req.header_count = n;
}

static int cases_run;
/* Shared by every case: after the first, each signs from the cache. */
static struct sigv4_signer *suite_signer;

static void check_case(const char *dir, const char *name)
{
	char path[1400], canonical[SIGV4_MAX_CANONICAL], sh[512], sts[512];
	char authz[1024], *want;
	struct sigv4_key key = {"AKIDEXAMPLE", NULL};
	struct secret *secret;
	struct errmsg err;
	struct parsed p;

	ck_assert_int_eq(secret_from(SECRET, strlen(SECRET), &secret), 0);
	key.secret_access_key = secret;
	(void)snprintf(path, sizeof(path), "%s/%s.req", dir, name);
	parse_req(path, &p);
	ck_assert_int_eq(sigv4_canonical_request(&p.req, canonical,
						 sizeof(canonical), sh,
						 sizeof(sh)),
			 0);
	(void)snprintf(path, sizeof(path), "%s/%s.creq", dir, name);
	want = slurp(path, NULL);
	ck_assert_msg(strcmp(canonical, want) == 0,
		      "%s: canonical request\n%s\n--- want ---\n%s", name,
		      canonical, want);
	free(want);
	ck_assert_int_eq(sigv4_string_to_sign(canonical, "20150830T123600Z",
					      "us-east-1", "service", sts,
					      sizeof(sts)),
			 0);
	(void)snprintf(path, sizeof(path), "%s/%s.sts", dir, name);
	want = slurp(path, NULL);
	ck_assert_msg(strcmp(sts, want) == 0, "%s: string to sign", name);
	free(want);
	ck_assert_int_eq(sigv4_authorization(&p.req, "20150830T123600Z",
					     "us-east-1", "service", &key,
					     authz, sizeof(authz), &err),
			 0);
	(void)snprintf(path, sizeof(path), "%s/%s.authz", dir, name);
	want = slurp(path, NULL);
	ck_assert_msg(strcmp(authz, want) == 0, "%s: authorization\n%s", name,
		      authz);
	/* Twice: a miss or a hit, then certainly a hit. */
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(sigv4_sign(suite_signer, &p.req,
					    "20150830T123600Z", "us-east-1",
					    "service", &key, authz,
					    sizeof(authz), &err),
				 0);
		ck_assert_msg(strcmp(authz, want) == 0,
			      "%s: cached authorization\n%s", name, authz);
	}
	free(want);
	free(p.text);
	secret_free(secret);
	cases_run++;
}

/* Every directory holding NAME/NAME.req, at any depth. */
static void walk(const char *dir)
{
	char sub[1024], req[1400];
	struct dirent *e;
	struct stat st;
	DIR *d = opendir(dir);

	ck_assert_msg(d != NULL, "cannot open %s", dir);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		(void)snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
		if (stat(sub, &st) < 0 || !S_ISDIR(st.st_mode))
			continue;
		(void)snprintf(req, sizeof(req), "%s/%s.req", sub, e->d_name);
		if (access(req, R_OK) == 0)
			check_case(sub, e->d_name);
		else
			walk(sub);
	}
	closedir(d);
}

START_TEST(test_sigv4_test_suite)
{
	const char *dir = getenv("SIGV4_SUITE_DIR");

	/* SIGV4_SUITE_DIR: the full published suite, dropped in. */
	cases_run = 0;
	ck_assert_int_eq(sigv4_signer_new(&suite_signer), 0);
	walk(dir != NULL && dir[0] != '\0' ? dir : CB_SIGV4_DIR);
	ck_assert_int_ge(cases_run, 13);
	sigv4_signer_free(suite_signer);
	suite_signer = NULL;
}
END_TEST

/* get-vanilla's signature, as the suite's README states it. */
START_TEST(test_sigv4_vanilla_signature)
{
	struct sigv4_header h[] = {{"Host", "example.amazonaws.com"},
				   {"X-Amz-Date", "20150830T123600Z"}};
	struct sigv4_request req = {"GET", "/", "", h, 2, NULL, 0};
	struct sigv4_key key = {"AKIDEXAMPLE", NULL};
	struct secret *secret;
	struct errmsg err;
	char authz[512];

	ck_assert_int_eq(secret_from(SECRET, strlen(SECRET), &secret), 0);
	key.secret_access_key = secret;
	ck_assert_int_eq(sigv4_authorization(&req, "20150830T123600Z",
					     "us-east-1", "service", &key,
					     authz, sizeof(authz), &err),
			 0);
	ck_assert_ptr_nonnull(strstr(authz, "Signature=5fa00fa31553b73ebf1942"
					    "676e86291e8372ff2a2260956d9b8aae"
					    "1d763fbf31"));
	secret_free(secret);
}
END_TEST

START_TEST(test_sigv4_normalises_and_refuses)
{
	struct sigv4_header h[] = {{"Host", "h"}};
	struct sigv4_request req = {
	    "GET", "/a/./b/../c//d/", "b=2&a=1&a=0", h, 1, NULL, 0};
	char buf[1024], sh[64];

	ck_assert_int_eq(
	    sigv4_canonical_request(&req, buf, sizeof(buf), sh, sizeof(sh)), 0);
	ck_assert_int_eq(strncmp(buf, "GET\n/a/c/d/\na=0&a=1&b=2\n", 24), 0);
	req.header_count = 0;
	ck_assert_int_eq(
	    sigv4_canonical_request(&req, buf, sizeof(buf), sh, sizeof(sh)),
	    -EINVAL);
	req.header_count = 1;
	ck_assert_int_eq(sigv4_canonical_request(&req, buf, 20, sh, sizeof(sh)),
			 -EMSGSIZE);
}
END_TEST

/* get-vanilla, signable under any scope. */
static const struct sigv4_header vanilla_h[] = {
    {"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}};
static const struct sigv4_request vanilla = {"GET", "/",  "", vanilla_h,
					     2,	    NULL, 0};

struct scope {
	const char *date, *region, *service, *akid;
	const struct secret *secret;
};

static void fresh_authz(const struct scope *sc, char *buf, size_t size)
{
	struct sigv4_key key = {sc->akid, sc->secret};
	struct errmsg err;

	ck_assert_int_eq(sigv4_authorization(&vanilla, sc->date, sc->region,
					     sc->service, &key, buf, size,
					     &err),
			 0);
}

/* sigv4_sign under sc equals a fresh sigv4_authorization. */
static void check_scope(struct sigv4_signer *signer, const struct scope *sc,
			char *out, size_t size)
{
	struct sigv4_key key = {sc->akid, sc->secret};
	char want[512];
	struct errmsg err;

	fresh_authz(sc, want, sizeof(want));
	ck_assert_int_eq(sigv4_sign(signer, &vanilla, sc->date, sc->region,
				    sc->service, &key, out, size, &err),
			 0);
	ck_assert_str_eq(out, want);
}

/* The signer's cache counters are exactly hits and misses, so a cache that
 * never hits (or always derives) fails here, not only a wrong signature. */
#define expect_stats(signer, hits, misses, cached)                             \
	expect_stats_at(signer, hits, misses, cached, __LINE__)

static void expect_stats_at(struct sigv4_signer *signer, uint64_t hits,
			    uint64_t misses, size_t cached, int line)
{
	struct sigv4_signer_stats st;

	sigv4_signer_stats(signer, &st);
	ck_assert_msg(
	    st.hits == hits && st.misses == misses && st.cached == cached,
	    "line %d: %llu hits, %llu misses, %zu cached; want "
	    "%llu, %llu, %zu",
	    line, (unsigned long long)st.hits, (unsigned long long)st.misses,
	    st.cached, (unsigned long long)hits, (unsigned long long)misses,
	    cached);
}

/* Each part of the scope, and the secret key behind an unchanged access
 * key id, gets its own signing key; a later time the same day does not. */
START_TEST(test_sigv4_sign_cache_misses_on_new_scope)
{
	struct secret *secret, *rotated;
	struct sigv4_signer *signer;
	char base[512], got[512];
	struct scope sc;
	size_t i;

	ck_assert_int_eq(secret_from(SECRET, strlen(SECRET), &secret), 0);
	ck_assert_int_eq(secret_from("rotatedSECRETrotatedSECRETrotatedSECRET0",
				     40, &rotated),
			 0);
	ck_assert_int_eq(sigv4_signer_new(&signer), 0);
	expect_stats(signer, 0, 0, 0);
	sc = (struct scope){"20150830T123600Z", "us-east-1", "service",
			    "AKIDEXAMPLE", secret};
	check_scope(signer, &sc, base, sizeof(base));
	expect_stats(signer, 0, 1, 1);
	check_scope(signer, &sc, got, sizeof(got));
	ck_assert_str_eq(got, base);
	expect_stats(signer, 1, 1, 1);
	sc.date = "20150830T235959Z"; /* same day: hit */
	check_scope(signer, &sc, got, sizeof(got));
	expect_stats(signer, 2, 1, 1);
	sc.date = "20150831T000000Z";
	check_scope(signer, &sc, got, sizeof(got));
	expect_stats(signer, 2, 2, 2);
	sc.date = "20150830T123600Z";
	sc.region = "eu-west-1";
	check_scope(signer, &sc, got, sizeof(got));
	expect_stats(signer, 2, 3, 3);
	sc.region = "us-east-1";
	sc.service = "secretsmanager";
	check_scope(signer, &sc, got, sizeof(got));
	expect_stats(signer, 2, 4, 4);
	sc.service = "service";
	sc.akid = "AKIDOTHER";
	check_scope(signer, &sc, got, sizeof(got));
	expect_stats(signer, 2, 5, 5);
	sc.akid = "AKIDEXAMPLE";
	sc.secret = rotated;
	check_scope(signer, &sc, got, sizeof(got));
	ck_assert_str_ne(got, base);
	expect_stats(signer, 2, 6, 6);
	sc.secret = secret;
	check_scope(signer, &sc, got, sizeof(got));
	ck_assert_str_eq(got, base);
	expect_stats(signer, 3, 6, 6);
	/* More scopes than slots: the first is evicted, then re-derived. */
	for (i = 0; i < 20; i++) {
		char region[32];

		(void)snprintf(region, sizeof(region), "region-%zu", i);
		sc.region = region;
		check_scope(signer, &sc, got, sizeof(got));
	}
	expect_stats(signer, 3, 26, 8);
	sc.region = "us-east-1";
	check_scope(signer, &sc, got, sizeof(got));
	ck_assert_str_eq(got, base);
	expect_stats(signer, 3, 27, 8);
	/* A region too long for a cache slot (64 characters; 63 fit) is
	 * signed without it: two misses, nothing evicted. */
	sc.region = "a-region-name-longer-than-any-cache-slot-holds-"
		    "0123456789abcdefg";
	check_scope(signer, &sc, got, sizeof(got));
	check_scope(signer, &sc, got, sizeof(got));
	expect_stats(signer, 3, 29, 8);
	sigv4_signer_free(signer);
	sigv4_signer_free(NULL);
	secret_free(rotated);
	secret_free(secret);
}
END_TEST

/* After a wipe nothing is cached: the same scope derives its key again,
 * and signs exactly as before. */
START_TEST(test_sigv4_signer_wipe_forgets_keys)
{
	struct sigv4_signer *signer;
	struct secret *secret;
	char base[512], got[512];
	struct scope sc;

	ck_assert_int_eq(secret_from(SECRET, strlen(SECRET), &secret), 0);
	ck_assert_int_eq(sigv4_signer_new(&signer), 0);
	sc = (struct scope){"20150830T123600Z", "us-east-1", "service",
			    "AKIDEXAMPLE", secret};
	check_scope(signer, &sc, base, sizeof(base));
	sc.service = "kms";
	check_scope(signer, &sc, got, sizeof(got));
	expect_stats(signer, 0, 2, 2);
	sigv4_signer_wipe(signer);
	expect_stats(signer, 0, 2, 0);
	sc.service = "service";
	check_scope(signer, &sc, got, sizeof(got));
	ck_assert_str_eq(got, base);
	expect_stats(signer, 0, 3, 1);
	check_scope(signer, &sc, got, sizeof(got));
	expect_stats(signer, 1, 3, 1);
	sigv4_signer_wipe(signer);
	sigv4_signer_wipe(signer); /* twice, and on NULL: harmless */
	sigv4_signer_wipe(NULL);
	expect_stats(signer, 1, 3, 0);
	sigv4_signer_free(signer);
	secret_free(secret);
}
END_TEST

START_TEST(test_sigv4_sign_refuses_like_authorization)
{
	char big[200], authz[512];
	struct sigv4_key key = {"AKIDEXAMPLE", NULL};
	struct sigv4_signer *signer;
	struct secret *secret;
	struct errmsg err;

	memset(big, 'k', sizeof(big));
	ck_assert_int_eq(secret_from(big, sizeof(big), &secret), 0);
	key.secret_access_key = secret;
	ck_assert_int_eq(sigv4_signer_new(&signer), 0);
	ck_assert_int_eq(sigv4_authorization(&vanilla, "20150830T123600Z",
					     "us-east-1", "service", &key,
					     authz, sizeof(authz), &err),
			 -EMSGSIZE);
	ck_assert_int_eq(sigv4_sign(signer, &vanilla, "20150830T123600Z",
				    "us-east-1", "service", &key, authz,
				    sizeof(authz), &err),
			 -EMSGSIZE);
	ck_assert_int_eq(sigv4_sign(signer, &vanilla, "20150830", "us-east-1",
				    "service", &key, authz, sizeof(authz),
				    &err),
			 -EINVAL);
	secret_free(secret);
	ck_assert_int_eq(secret_from(SECRET, strlen(SECRET), &secret), 0);
	key.secret_access_key = secret;
	ck_assert_int_eq(sigv4_sign(signer, &vanilla, "20150830T123600Z",
				    "us-east-1", "service", &key, authz, 40,
				    &err),
			 -EMSGSIZE);
	sigv4_signer_free(signer);
	secret_free(secret);
}
END_TEST

#define THREADS 4
#define THREAD_SCOPES 12 /* more than the cache's slots */
#define THREAD_ROUNDS 300

struct thread_arg {
	struct sigv4_signer *signer;
	const struct scope *scopes;
	char (*want)[512];
	unsigned seed;
	int wrong;
};

static void *sign_loop(void *p)
{
	struct thread_arg *a = p;
	char got[512];
	struct errmsg err;
	int i;

	for (i = 0; i < THREAD_ROUNDS; i++) {
		size_t k = (a->seed + (unsigned)i * 7u) % THREAD_SCOPES;
		const struct scope *sc = &a->scopes[k];
		struct sigv4_key key = {sc->akid, sc->secret};

		if (sigv4_sign(a->signer, &vanilla, sc->date, sc->region,
			       sc->service, &key, got, sizeof(got),
			       &err) != 0 ||
		    strcmp(got, a->want[k]) != 0)
			a->wrong++;
	}
	return NULL;
}

/* Four threads share one signer over more scopes than it has slots, so
 * hits, misses and evictions interleave; every header must still be the
 * one sigv4_authorization gives. */
START_TEST(test_sigv4_sign_concurrent)
{
	static const char *const regions[] = {"us-east-1", "eu-west-1",
					      "ap-south-1"};
	struct scope scopes[THREAD_SCOPES];
	char want[THREAD_SCOPES][512];
	struct thread_arg args[THREADS];
	pthread_t tids[THREADS];
	struct secret *secrets[2];
	struct sigv4_signer_stats st;
	struct sigv4_signer *signer;
	size_t i;

	ck_assert_int_eq(secret_from(SECRET, strlen(SECRET), &secrets[0]), 0);
	ck_assert_int_eq(secret_from("anotherSECRETanotherSECRETanotherSECRET0",
				     40, &secrets[1]),
			 0);
	for (i = 0; i < THREAD_SCOPES; i++) {
		/* Both secrets under one access key id, as in a rotation. */
		scopes[i] = (struct scope){
		    i % 2 ? "20150830T123600Z" : "20150831T010203Z",
		    regions[i % 3], i < 6 ? "secretsmanager" : "kms",
		    "AKIDEXAMPLE", secrets[(i / 2) % 2]};
		fresh_authz(&scopes[i], want[i], sizeof(want[i]));
	}
	ck_assert_int_eq(sigv4_signer_new(&signer), 0);
	for (i = 0; i < THREADS; i++) {
		args[i] = (struct thread_arg){signer, scopes, want,
					      (unsigned)i * 5u, 0};
		ck_assert_int_eq(
		    pthread_create(&tids[i], NULL, sign_loop, &args[i]), 0);
	}
	for (i = 0; i < THREADS; i++) {
		ck_assert_int_eq(pthread_join(tids[i], NULL), 0);
		ck_assert_int_eq(args[i].wrong, 0);
	}
	/* Every signature counted once, as a hit or as a miss. */
	sigv4_signer_stats(signer, &st);
	ck_assert_uint_eq(st.hits + st.misses, THREADS * THREAD_ROUNDS);
	ck_assert_uint_ge(st.misses, THREAD_SCOPES);
	sigv4_signer_free(signer);
	secret_free(secrets[0]);
	secret_free(secrets[1]);
}
END_TEST

/* More path segments than the signer holds is an error, not a path with
 * the tail silently dropped; dot segments do not count. */
START_TEST(test_sigv4_too_many_segments)
{
	struct sigv4_header h[] = {{"Host", "h"}};
	struct sigv4_request req = {"GET", NULL, "", h, 1, NULL, 0};
	struct sigv4_key key = {"AKIDEXAMPLE", NULL};
	char path[1024], buf[2048], sh[64], authz[512];
	struct sigv4_signer *signer;
	struct secret *secret;
	struct errmsg err;
	size_t i, n = 0;

	for (i = 0; i < SIGV4_MAX_SEGMENTS; i++)
		n += (size_t)snprintf(path + n, sizeof(path) - n, "/a");
	req.path = path;
	ck_assert_int_eq(
	    sigv4_canonical_request(&req, buf, sizeof(buf), sh, sizeof(sh)), 0);
	(void)snprintf(path + n, sizeof(path) - n, "/b/../.");
	ck_assert_int_eq(
	    sigv4_canonical_request(&req, buf, sizeof(buf), sh, sizeof(sh)), 0);
	(void)snprintf(path + n, sizeof(path) - n, "/b");
	ck_assert_int_eq(
	    sigv4_canonical_request(&req, buf, sizeof(buf), sh, sizeof(sh)),
	    -EMSGSIZE);
	ck_assert_int_eq(secret_from(SECRET, strlen(SECRET), &secret), 0);
	key.secret_access_key = secret;
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(sigv4_authorization(&req, "20150830T123600Z",
					     "us-east-1", "service", &key,
					     authz, sizeof(authz), &err),
			 -EMSGSIZE);
	ck_assert_ptr_nonnull(strstr(err.text, "segments"));
	ck_assert_int_eq(sigv4_signer_new(&signer), 0);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(sigv4_sign(signer, &req, "20150830T123600Z",
				    "us-east-1", "service", &key, authz,
				    sizeof(authz), &err),
			 -EMSGSIZE);
	ck_assert_ptr_nonnull(strstr(err.text, "segments"));
	sigv4_signer_free(signer);
	secret_free(secret);
}
END_TEST

static Suite *sigv4_suite(void)
{
	Suite *s = suite_create("sigv4");
	TCase *tc = tcase_create("sign");

	tcase_add_test(tc, test_sigv4_test_suite);
	tcase_add_test(tc, test_sigv4_vanilla_signature);
	tcase_add_test(tc, test_sigv4_normalises_and_refuses);
	tcase_add_test(tc, test_sigv4_sign_cache_misses_on_new_scope);
	tcase_add_test(tc, test_sigv4_signer_wipe_forgets_keys);
	tcase_add_test(tc, test_sigv4_sign_refuses_like_authorization);
	tcase_add_test(tc, test_sigv4_sign_concurrent);
	tcase_add_test(tc, test_sigv4_too_many_segments);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sigv4_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
