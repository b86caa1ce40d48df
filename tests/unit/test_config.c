/* Unit tests for broker/config.c.
 *
 * The backend registry is wrapped at link time (-Wl,--wrap=backend_find):
 * two fake types, "fake" (strict parse hooks that count their allocations)
 * and "bare" (no parse hooks), come first, and everything else goes to the
 * real registry, so the example config is checked against the real postgres
 * hooks. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>
#include <jansson.h>

#include "backend.h"
#include "config.h"

#ifndef CB_SOURCE_DIR
#define CB_SOURCE_DIR "."
#endif

/* ---- fake backends ---- */

static int fake_live; /* parsed configs not yet freed */

struct fake_cfg {
	char url[64];
};

struct fake_secret_cfg {
	char role[64];
};

static int fake_check_keys(const json_t *obj, const char *path,
			   const char *allowed, struct errmsg *err)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v)
	{
		if (strcmp(key, allowed) != 0)
			return errmsg_set(err, -EINVAL, "%s.%s: unknown key",
					  path, key);
	}
	return 0;
}

/* Strict like a real backend: "type" would be an unknown key here. */
static int fake_parse_config(const json_t *obj, const char *path, void **ret,
			     struct errmsg *err)
{
	const json_t *url = json_object_get(obj, "url");
	struct fake_cfg *c;
	int r;

	r = fake_check_keys(obj, path, "url", err);
	if (r < 0)
		return r;
	if (url != NULL && !json_is_string(url))
		return errmsg_set(err, -EINVAL, "%s.url: expected a string",
				  path);
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	if (url != NULL)
		(void)snprintf(c->url, sizeof(c->url), "%s",
			       json_string_value(url));
	fake_live++;
	*ret = c;
	return 0;
}

/* role "fail" fails without a message, "nomem" with -ENOMEM. */
static int fake_parse_secret(const json_t *obj, const char *path, void **ret,
			     struct errmsg *err)
{
	struct fake_secret_cfg *c;
	const json_t *role = obj ? json_object_get(obj, "role") : NULL;
	int r;

	if (obj != NULL && (r = fake_check_keys(obj, path, "role", err)) < 0)
		return r;
	if (role != NULL && !json_is_string(role))
		return errmsg_set(err, -EINVAL, "%s.role: expected a string",
				  path);
	if (role != NULL && strcmp(json_string_value(role), "fail") == 0)
		return -EINVAL;
	if (role != NULL && strcmp(json_string_value(role), "nomem") == 0)
		return -ENOMEM;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	(void)snprintf(c->role, sizeof(c->role), "%s",
		       role ? json_string_value(role) : "(none)");
	fake_live++;
	*ret = c;
	return 0;
}

static void fake_free(void *p)
{
	if (p != NULL)
		fake_live--;
	free(p);
}

static const char *const fake_files[] = {"value", NULL};

static const struct backend_ops fake_ops = {
    .type = "fake",
    .default_files = fake_files,
    .parse_config = fake_parse_config,
    .free_config = fake_free,
    .parse_secret_config = fake_parse_secret,
    .free_secret_config = fake_free,
};

static const struct backend_ops bare_ops = {
    .type = "bare",
    .default_files = fake_files,
};

const struct backend_ops *__real_backend_find(const char *type);
const struct backend_ops *__wrap_backend_find(const char *type);

const struct backend_ops *__wrap_backend_find(const char *type)
{
	if (strcmp(type, "fake") == 0)
		return &fake_ops;
	if (strcmp(type, "bare") == 0)
		return &bare_ops;
	return __real_backend_find(type);
}

/* ---- helpers ---- */

/* Test configs are written with ' for " to stay readable. */
static char *dq(const char *s)
{
	char *t = strdup(s), *p;

	ck_assert_ptr_nonnull(t);
	for (p = t; *p != '\0'; p++)
		if (*p == '\'')
			*p = '"';
	return t;
}

static int parse(const char *text, struct config **ret, struct errmsg *err)
{
	char *t = dq(text);
	int r = config_parse(t, strlen(t), ret, err);

	free(t);
	return r;
}

#define MOUNT "'mount':{'path':'/secrets'}"
#define FAKE "'backends':{'f':{'type':'fake'}}"
#define SECRET(extra)                                                          \
	"'secrets':[{'name':'db','backend':'f','ttl':'20s'" extra "}]"
#define DOC(extra) "{" MOUNT "," FAKE "," SECRET(extra) "}"

static const char full_config[] =
    "{'mount':{'path':'/secrets','fd_socket':'/run/cb/fuse.sock',"
    "          'readers':[1000,1001]},"
    " 'control':{'socket':'/run/cb/ctl.sock','responders':[0,2000]},"
    " 'revoke_on_exit':false,"
    " 'seccomp':false,"
    " 'log_level':'debug',"
    " 'backends':{'f':{'type':'fake','url':'https://x'},"
    "             'b2':{'type':'bare'}},"
    " 'secrets':["
    "  {'name':'db','backend':'f','ttl':'20s','max_ttl':'1h30m',"
    "   'uid':1000,'gid':1001,'mode':'0440','readers':[1000],"
    "   'files':['username','password','env'],'fake':{'role':'app'}},"
    "  {'name':'Other_2','backend':'b2','ttl':'1h'}]}";

START_TEST(test_config_full_valid)
{
	struct errmsg err = {{0}};
	struct config *c = NULL;
	const struct config_secret *s;

	ck_assert_int_eq(parse(full_config, &c, &err), 0);
	ck_assert_str_eq(c->mount_path, "/secrets");
	ck_assert_str_eq(c->mount_fd_socket, "/run/cb/fuse.sock");
	ck_assert_int_eq(c->mount_cache, FS_CACHE_AUDITED);
	ck_assert_uint_eq(c->reader_count, 2);
	ck_assert_uint_eq(c->readers[0], 1000);
	ck_assert_uint_eq(c->readers[1], 1001);
	ck_assert_str_eq(c->control_socket, "/run/cb/ctl.sock");
	ck_assert_uint_eq(c->responder_count, 2);
	ck_assert_uint_eq(c->responders[1], 2000);
	ck_assert(!c->revoke_on_exit);
	ck_assert(!c->seccomp);
	ck_assert_int_eq(c->log_level, LOG_LEVEL_DEBUG);
	ck_assert_uint_eq(c->backend_count, 2);
	ck_assert_str_eq(c->backends[0].name, "f");
	ck_assert_ptr_eq(c->backends[0].ops, &fake_ops);
	ck_assert_str_eq(((struct fake_cfg *)c->backends[0].cfg)->url,
			 "https://x");
	ck_assert_str_eq(c->backends[1].name, "b2");
	ck_assert_ptr_null(c->backends[1].cfg);
	ck_assert_uint_eq(c->secret_count, 2);
	s = &c->secrets[0];
	ck_assert_str_eq(s->name, "db");
	ck_assert_uint_eq(s->backend, 0);
	ck_assert_uint_eq(s->ttl_usec, 20000000ULL);
	ck_assert_uint_eq(s->max_ttl_usec, 5400000000ULL);
	ck_assert_uint_eq(s->uid, 1000);
	ck_assert_uint_eq(s->gid, 1001);
	ck_assert_uint_eq(s->mode, 0440);
	ck_assert_uint_eq(s->reader_count, 1);
	ck_assert_uint_eq(s->readers[0], 1000);
	ck_assert_uint_eq(s->file_count, 3);
	ck_assert_str_eq(s->files[2], "env");
	ck_assert_str_eq(((struct fake_secret_cfg *)s->backend_cfg)->role,
			 "app");
	s = &c->secrets[1];
	ck_assert_str_eq(s->name, "Other_2");
	ck_assert_uint_eq(s->backend, 1);
	ck_assert_ptr_null(s->backend_cfg);
	ck_assert_int_eq(fake_live, 2);
	config_free(c);
	ck_assert_int_eq(fake_live, 0);
}
END_TEST

START_TEST(test_config_defaults)
{
	struct errmsg err = {{0}};
	struct config *c = NULL;
	const struct config_secret *s;

	ck_assert_int_eq(parse(DOC(""), &c, &err), 0);
	ck_assert_str_eq(c->mount_fd_socket, "");
	ck_assert_uint_eq(c->reader_count, 1);
	ck_assert_uint_eq(c->readers[0], getuid());
	ck_assert_str_eq(c->control_socket, "/run/credbroker/control.sock");
	ck_assert_uint_eq(c->responder_count, 0);
	ck_assert(c->revoke_on_exit);
	ck_assert(c->seccomp); /* the sandbox is on unless switched off */
	ck_assert_int_eq(c->log_level, LOG_LEVEL_INFO);
	s = &c->secrets[0];
	ck_assert_uint_eq(s->max_ttl_usec, s->ttl_usec);
	ck_assert_uint_eq(s->refresh_usec, CONFIG_DEFAULT_REFRESH_USEC);
	ck_assert_uint_eq(c->lease_check_usec, CONFIG_DEFAULT_LEASE_CHECK_USEC);
	ck_assert_uint_eq(s->uid, getuid());
	ck_assert_uint_eq(s->gid, getgid());
	ck_assert_uint_eq(s->mode, 0400);
	ck_assert_uint_eq(s->reader_count, 0); /* the mount's readers */
	ck_assert_uint_eq(s->file_count, 0);   /* the backend's defaults */
	/* The hook ran with NULL: no backend-specific object. */
	ck_assert_str_eq(((struct fake_secret_cfg *)s->backend_cfg)->role,
			 "(none)");
	config_free(c);
	ck_assert_int_eq(fake_live, 0);
}
END_TEST

struct bad_case {
	const char *text;
	int r;
	const char *want; /* a substring of the message */
};

static const struct bad_case bad_cases[] = {
    /* audit, state_file, hooks */
    {"{" MOUNT "," FAKE "," SECRET("") ",'audit':{'file':'rel.log'}}", -EINVAL,
     "audit.file: expected an absolute path"},
    {"{" MOUNT "," FAKE "," SECRET("") ",'audit':{'max_size':10}}", -EINVAL,
     "audit.max_size"},
    {"{" MOUNT "," FAKE "," SECRET("") ",'audit':{'sink':1}}", -EINVAL,
     "audit.sink: unknown key"},
    {"{" MOUNT "," FAKE "," SECRET("") ",'state_file':'x'}", -EINVAL,
     "state_file: expected an absolute path"},
    {"{" MOUNT "," FAKE "," SECRET("") ",'hooks':{'on_revoke':[{'type':"
				       "'exec','argv':['rel']}]}}",
     -EINVAL, "hooks.on_revoke[0].argv[0]"},
    {"{" MOUNT "," FAKE "," SECRET("") ",'hooks':{'on_exit':[]}}", -EINVAL,
     "hooks.on_exit: unknown key"},
    {DOC(",'hooks':{'on_rotate':[{'type':'http','url':'http://x'}]}"), -EINVAL,
     "secrets[0].hooks.on_rotate[0].url"},
    /* unknown keys, at every level */
    {"{" MOUNT "," FAKE "," SECRET("") ",'extra':1}", -EINVAL,
     "extra: unknown key"},
    {"{'mount':{'path':'/s','pth':1}," FAKE "," SECRET("") "}", -EINVAL,
     "mount.pth: unknown key"},
    {"{'control':{'sock':'/x'}," MOUNT "," FAKE "," SECRET("") "}", -EINVAL,
     "control.sock: unknown key"},
    {"{" MOUNT "," FAKE ",'secrets':[{'name':'a','backend':'f','ttl':'1s'},"
     "{'name':'b','backend':'f','ttl':'1s','tll':'2s'}]}",
     -EINVAL, "secrets[1].tll: unknown key"},
    {"{" MOUNT ",'backends':{'f':{'type':'fake','urlx':1}}," SECRET("") "}",
     -EINVAL, "backends.f.urlx: unknown key"},
    {DOC(",'postgres':{}"), -EINVAL, "secrets[0].postgres: unknown key"},
    {DOC(",'fake':{'rol':'x'}"), -EINVAL, "secrets[0].fake.rol: unknown key"},
    {"{" MOUNT ",'backends':{'b':{'type':'bare','x':1}},"
     "'secrets':[{'name':'db','backend':'b','ttl':'1s'}]}",
     -EINVAL, "backends.b.x: unknown key"},
    {"{" MOUNT ",'backends':{'b':{'type':'bare'}},"
     "'secrets':[{'name':'db','backend':'b','ttl':'1s','bare':{}}]}",
     -EINVAL, "secrets[0].bare: unknown key"},
    {"{" MOUNT "," FAKE "," SECRET("") ",'\\u001b[31m':1}", -EINVAL,
     "?[31m: unknown key"},
    /* mount and control */
    {"{" FAKE "," SECRET("") "}", -EINVAL, "mount: required"},
    {"{'mount':[]," FAKE "," SECRET("") "}", -EINVAL,
     "mount: expected an object"},
    {"{'mount':{}," FAKE "," SECRET("") "}", -EINVAL, "mount.path: required"},
    {"{'mount':{'path':'secrets'}," FAKE "," SECRET("") "}", -EINVAL,
     "mount.path: expected an absolute path"},
    {"{'mount':{'path':7}," FAKE "," SECRET("") "}", -EINVAL,
     "mount.path: expected a path string"},
    {"{'mount':{'path':'/s','fd_socket':'/"
     "0123456789012345678901234567890123456789012345678901234567890123456789"
     "0123456789012345678901234567890123456789'}," FAKE "," SECRET("") "}",
     -EINVAL, "mount.fd_socket: longer than 107 bytes"},
    {"{'mount':{'path':'/s','readers':'1000'}," FAKE "," SECRET("") "}",
     -EINVAL, "mount.readers: expected an array of integer ids"},
    {"{'mount':{'path':'/s','readers':[1000,-1]}," FAKE "," SECRET("") "}",
     -EINVAL, "mount.readers[1]: id out of range"},
    {"{'mount':{'path':'/s','readers':[4294967295]}," FAKE "," SECRET("") "}",
     -EINVAL, "mount.readers[0]: id out of range"},
    {"{'mount':{'path':'/s','readers':[1000.0]}," FAKE "," SECRET("") "}",
     -EINVAL, "mount.readers[0]: expected an integer id"},
    {"{'mount':{'path':'/s','readers':[]}," FAKE "," SECRET("") "}", -EINVAL,
     "mount.readers: must not be empty"},
    {"{'mount':{'path':'/s','readers':[1000,1000]}," FAKE "," SECRET("") "}",
     -EINVAL, "mount.readers[1]: duplicate id 1000"},
    {"{'mount':{'path':'/s','cache':'fastest'}," FAKE "," SECRET("") "}",
     -EINVAL, "mount.cache: expected \"audited\", \"none\" or \"fast\""},
    {"{'mount':{'path':'/s','cache':1}," FAKE "," SECRET("") "}", -EINVAL,
     "mount.cache: expected \"audited\", \"none\" or \"fast\""},
    /* fast: one reader owning the files, no group or other bit */
    {"{'mount':{'path':'/s','cache':'fast','readers':[0,1000]}," FAKE
     "," SECRET(",'uid':0") "}",
     -EINVAL, "secrets[0]: mount.cache \"fast\" lets the kernel check"},
    {"{'mount':{'path':'/s','cache':'fast'}," FAKE
     "," SECRET(",'uid':0,'readers':[0],'mode':'0440'") "}",
     -EINVAL, "secrets[0]: mount.cache \"fast\" lets the kernel check"},
    {"{'mount':{'path':'/s','cache':'fast'}," FAKE
     "," SECRET(",'uid':0,'readers':[1000]") "}",
     -EINVAL, "secrets[0]: mount.cache \"fast\" lets the kernel check"},
    {"{'mount':{'path':'/dev/fd/3','cache':'fast'}," FAKE
     "," SECRET(",'uid':0,'readers':[0]") "}",
     -EINVAL, "mount.cache: \"fast\" needs a mount.path"},
    {"{'control':{'responders':true}," MOUNT "," FAKE "," SECRET("") "}",
     -EINVAL, "control.responders: expected an array"},
    {"{'control':{'socket':'ctl.sock'}," MOUNT "," FAKE "," SECRET("") "}",
     -EINVAL, "control.socket: expected an absolute path"},
    {"{'revoke_on_exit':'yes'," MOUNT "," FAKE "," SECRET("") "}", -EINVAL,
     "revoke_on_exit: expected true or false"},
    {"{'seccomp':'off'," MOUNT "," FAKE "," SECRET("") "}", -EINVAL,
     "seccomp: expected true or false"},
    {"{'seccomp':0," MOUNT "," FAKE "," SECRET("") "}", -EINVAL,
     "seccomp: expected true or false"},
    {"{'log_level':'verbose'," MOUNT "," FAKE "," SECRET("") "}", -EINVAL,
     "log_level: expected \"debug\", \"info\" or \"warn\""},
    /* backends */
    {"{" MOUNT "," SECRET("") "}", -EINVAL, "backends: required"},
    {"{" MOUNT ",'backends':[]," SECRET("") "}", -EINVAL,
     "backends: expected an object"},
    {"{" MOUNT ",'backends':{'f':{}}," SECRET("") "}", -EINVAL,
     "backends.f.type: required"},
    {"{" MOUNT ",'backends':{'f':{'type':1}}," SECRET("") "}", -EINVAL,
     "backends.f.type: expected a string"},
    {"{" MOUNT ",'backends':{'f':{'type':'nosuch'}}," SECRET("") "}", -EINVAL,
     "backends.f.type: unknown backend type \"nosuch\""},
    {"{" MOUNT ",'backends':{'b@d':{'type':'fake'}}," SECRET("") "}", -EINVAL,
     "backends.b@d: invalid backend name"},
    {"{" MOUNT ",'backends':{'f':'fake'}," SECRET("") "}", -EINVAL,
     "backends.f: expected an object"},
    /* the secrets list */
    {"{" MOUNT "," FAKE "}", -EINVAL, "secrets: required"},
    {"{" MOUNT "," FAKE ",'secrets':[]}", -EINVAL,
     "secrets: at least one secret is required"},
    {"{" MOUNT "," FAKE ",'secrets':{}}", -EINVAL,
     "secrets: expected an array"},
    {"{" MOUNT "," FAKE ",'secrets':[1]}", -EINVAL,
     "secrets[0]: expected an object"},
    /* names and backend references */
    {"{" MOUNT "," FAKE ",'secrets':[{'backend':'f','ttl':'1s'}]}", -EINVAL,
     "secrets[0].name: required"},
    {"{" MOUNT "," FAKE ",'secrets':[{'name':'../x','backend':'f',"
     "'ttl':'1s'}]}",
     -EINVAL, "secrets[0].name: expected 1 to 47"},
    {"{" MOUNT "," FAKE ",'secrets':[{'name':'-x','backend':'f',"
     "'ttl':'1s'}]}",
     -EINVAL, "secrets[0].name: expected"},
    {"{" MOUNT "," FAKE ",'secrets':[{'name':'.x','backend':'f',"
     "'ttl':'1s'}]}",
     -EINVAL, "secrets[0].name: expected"},
    {"{" MOUNT "," FAKE ",'secrets':[{'name':''"
     ",'backend':'f','ttl':'1s'}]}",
     -EINVAL, "secrets[0].name: expected"},
    {"{" MOUNT "," FAKE ",'secrets':[{'name':"
     "'abcdefghijabcdefghijabcdefghijabcdefghijabcdefgh',"
     "'backend':'f','ttl':'1s'}]}",
     -EINVAL, "secrets[0].name: expected"},
    {"{" MOUNT "," FAKE ",'secrets':[{'name':'db','backend':'f',"
     "'ttl':'1s'},{'name':'db','backend':'f','ttl':'1s'}]}",
     -EINVAL, "secrets[1].name: duplicate secret name \"db\""},
    {"{" MOUNT "," FAKE ",'secrets':[{'name':'db','ttl':'1s'}]}", -EINVAL,
     "secrets[0].backend: required"},
    {"{" MOUNT "," FAKE ",'secrets':[{'name':'db','backend':'nope',"
     "'ttl':'1s'}]}",
     -EINVAL, "secrets[0].backend: no backend named \"nope\""},
    /* durations */
    {"{" MOUNT "," FAKE ",'secrets':[{'name':'db','backend':'f'}]}", -EINVAL,
     "secrets[0].ttl: required"},
    {"{" MOUNT "," FAKE ",'secrets':[{'name':'db','backend':'f',"
     "'ttl':20}]}",
     -EINVAL, "secrets[0].ttl: expected a duration string like \"90s\""},
    {"{" MOUNT "," FAKE ",'secrets':[{'name':'db','backend':'f',"
     "'ttl':'20'}]}",
     -EINVAL, "secrets[0].ttl: invalid duration \"20\""},
    {"{" MOUNT "," FAKE ",'secrets':[{'name':'db','backend':'f',"
     "'ttl':'-5s'}]}",
     -EINVAL, "secrets[0].ttl: invalid duration"},
    {"{" MOUNT "," FAKE ",'secrets':[{'name':'db','backend':'f',"
     "'ttl':'500ms'}]}",
     -EINVAL, "secrets[0].ttl: must be from 1s"},
    {"{" MOUNT "," FAKE ",'secrets':[{'name':'db','backend':'f',"
     "'ttl':'367d'}]}",
     -EINVAL, "secrets[0].ttl: must be from 1s"},
    {DOC(",'max_ttl':'10s'"), -EINVAL, "secrets[0].max_ttl: shorter than ttl"},
    {DOC(",'max_ttl':'400d'"), -EINVAL, "secrets[0].max_ttl: longer than 366d"},
    {DOC(",'max_ttl':null"), -EINVAL,
     "secrets[0].max_ttl: expected a duration string"},
    {DOC(",'refresh':'500ms'"), -EINVAL, "secrets[0].refresh: must be from 1s"},
    {DOC(",'refresh':5"), -EINVAL,
     "secrets[0].refresh: expected a duration string"},
    {"{" MOUNT "," FAKE "," SECRET("") ",'lease_check_interval':'10ms'}",
     -EINVAL, "lease_check_interval: must be 0s (off) or at least 1s"},
    {"{" MOUNT "," FAKE "," SECRET("") ",'lease_check_interval':true}", -EINVAL,
     "lease_check_interval: expected a duration string"},
    /* ownership and mode */
    {DOC(",'mode':'0600'"), -EINVAL, "secrets[0].mode: only read bits"},
    {DOC(",'mode':'0500'"), -EINVAL, "secrets[0].mode: only read bits"},
    {DOC(",'mode':'0404'"), 0, ""},
    {DOC(",'mode':'4400'"), -EINVAL, "secrets[0].mode: only read bits"},
    {DOC(",'mode':'1444'"), -EINVAL, "secrets[0].mode: only read bits"},
    {DOC(",'mode':'0000'"), -EINVAL, "secrets[0].mode: grants no read"},
    {DOC(",'mode':'400x'"), -EINVAL,
     "secrets[0].mode: expected an octal string"},
    {DOC(",'mode':'0o400'"), -EINVAL,
     "secrets[0].mode: expected an octal string"},
    {DOC(",'mode':256"), -EINVAL, "secrets[0].mode: expected an octal string"},
    {DOC(",'uid':-1"), -EINVAL, "secrets[0].uid: id out of range"},
    {DOC(",'gid':'1000'"), -EINVAL, "secrets[0].gid: expected an integer"},
    {DOC(",'readers':[]"), -EINVAL, "secrets[0].readers: must not be"},
    /* files */
    {DOC(",'files':['.lease.json']"), -EINVAL,
     "secrets[0].files[0]: expected a file name"},
    {DOC(",'files':['ok','a/b']"), -EINVAL,
     "secrets[0].files[1]: expected a file name"},
    {DOC(",'files':['..']"), -EINVAL, "secrets[0].files[0]: expected"},
    {DOC(",'files':['env','env']"), -EINVAL,
     "secrets[0].files[1]: duplicate file \"env\""},
    {DOC(",'files':[]"), -EINVAL,
     "secrets[0].files: expected a non-empty array"},
    {DOC(",'files':'env'"), -EINVAL,
     "secrets[0].files: expected a non-empty array"},
    /* the backend's part of a secret */
    {DOC(",'fake':1"), -EINVAL, "secrets[0].fake: expected an object"},
    {DOC(",'fake':{'role':1}"), -EINVAL,
     "secrets[0].fake.role: expected a string"},
    {DOC(",'fake':{'role':'fail'}"), -EINVAL, "secrets[0].fake: invalid"},
    {DOC(",'fake':{'role':'nomem'}"), -ENOMEM, ""},
    /* JSON syntax */
    {"{" MOUNT "," FAKE "," SECRET(",'ttl':'1s'") "}", -EINVAL,
     "duplicate object key"},
    {"{\n 'mount': {\n  'path': '/s',,\n }\n}", -EINVAL, "line 3, column"},
    {"[]", -EINVAL, "expected a JSON object at the top level"},
    {"", -EINVAL, "line 1, column 0:"},
    {DOC("") " x", -EINVAL, "end of file expected"},
    {"{" MOUNT "," FAKE ",'secrets':[{'name':'d\\u0000b','backend':'f',"
     "'ttl':'1s'}]}",
     -EINVAL, "\\u0000 is not allowed"},
    {"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[" /* 33 */, -EMSGSIZE,
     "line 1: nested deeper than 32 levels"},
    {"{'x':'[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[[[['}", -EINVAL,
     "x: unknown key"},
};

START_TEST(test_config_cache_modes)
{
	struct errmsg err = {{0}};
	struct config *c = NULL;

	ck_assert_int_eq(parse("{'mount':{'path':'/s','cache':'fast'}," FAKE
			       "," SECRET(",'uid':0,'readers':[0]") "}",
			       &c, &err),
			 0);
	ck_assert_int_eq(c->mount_cache, FS_CACHE_FAST);
	config_free(c);
	c = NULL;
	ck_assert_int_eq(parse("{'mount':{'path':'/s','cache':'none',"
			       "'readers':[0,1000]}," FAKE "," SECRET("") "}",
			       &c, &err),
			 0);
	ck_assert_int_eq(c->mount_cache, FS_CACHE_NONE);
	config_free(c);
}
END_TEST

/* Every bad input fails with the expected code and path, leaves *ret
 * alone, and leaks nothing from the backend hooks. */
START_TEST(test_config_rejects_bad_input)
{
	const struct bad_case *bc = &bad_cases[_i];
	struct errmsg err = {{0}};
	struct config *sentinel = (struct config *)&err, *c = sentinel;
	int r;

	r = parse(bc->text, &c, &err);
	ck_assert_msg(r == bc->r, "case %d: r=%d want %d (%s)", _i, r, bc->r,
		      err.text);
	ck_assert_msg(strstr(err.text, bc->want) != NULL,
		      "case %d: message \"%s\" lacks \"%s\"", _i, err.text,
		      bc->want);
	if (r == 0)
		config_free(c);
	else
		ck_assert_ptr_eq(c, sentinel);
	ck_assert_int_eq(fake_live, 0);
}
END_TEST

/* A doc with n secrets, readers or files, built as JSON. */
static int parse_many(const char *what, size_t n, struct errmsg *err)
{
	json_t *root = json_loads("{\"mount\":{\"path\":\"/s\"},\"backends\":"
				  "{\"f\":{\"type\":\"fake\"}},\"secrets\":[]}",
				  0, NULL);
	json_t *secrets = json_object_get(root, "secrets"), *s, *list;
	struct config *c = NULL;
	char name[32], *text;
	size_t i, count = strcmp(what, "secrets") == 0 ? n : 1;
	int r;

	for (i = 0; i < count; i++) {
		(void)snprintf(name, sizeof(name), "s%zu", i);
		s = json_pack("{s:s,s:s,s:s}", "name", name, "backend", "f",
			      "ttl", "1s");
		json_array_append_new(secrets, s);
	}
	if (strcmp(what, "secrets") != 0) {
		list = json_array();
		for (i = 0; i < n; i++) {
			(void)snprintf(name, sizeof(name), "f%zu", i);
			json_array_append_new(list,
					      strcmp(what, "files")
						  ? json_integer((json_int_t)i)
						  : json_string(name));
		}
		json_object_set_new(json_array_get(secrets, 0), what, list);
	}
	text = json_dumps(root, 0);
	r = config_parse(text, strlen(text), &c, err);
	if (r == 0) {
		ck_assert_uint_eq(c->secret_count, count);
		config_free(c);
	}
	free(text);
	json_decref(root);
	return r;
}

START_TEST(test_config_limits)
{
	struct errmsg err = {{0}};

	ck_assert_int_eq(parse_many("secrets", CONFIG_MAX_SECRETS, &err), 0);
	ck_assert_int_eq(parse_many("secrets", CONFIG_MAX_SECRETS + 1, &err),
			 -EINVAL);
	ck_assert_str_eq(err.text, "secrets: more than 256");
	ck_assert_int_eq(parse_many("readers", STORE_MAX_READERS, &err), 0);
	ck_assert_int_eq(parse_many("readers", STORE_MAX_READERS + 1, &err),
			 -EINVAL);
	ck_assert_str_eq(err.text, "secrets[0].readers: more than 64 ids");
	ck_assert_int_eq(parse_many("files", STORE_MAX_FILES, &err), 0);
	ck_assert_int_eq(parse_many("files", STORE_MAX_FILES + 1, &err),
			 -EINVAL);
	ck_assert_str_eq(err.text, "secrets[0].files: more than 32 files");
	ck_assert_int_eq(fake_live, 0);
}
END_TEST

START_TEST(test_config_too_many_backends)
{
	json_t *root = json_loads("{\"mount\":{\"path\":\"/s\"},\"backends\":"
				  "{},\"secrets\":[{\"name\":\"a\",\"backend\":"
				  "\"b0\",\"ttl\":\"1s\"}]}",
				  0, NULL);
	struct errmsg err = {{0}};
	struct config *c = NULL;
	char name[16], *text;
	int i;

	for (i = 0; i <= CONFIG_MAX_BACKENDS; i++) {
		(void)snprintf(name, sizeof(name), "b%d", i);
		json_object_set_new(json_object_get(root, "backends"), name,
				    json_pack("{s:s}", "type", "fake"));
	}
	text = json_dumps(root, 0);
	ck_assert_int_eq(config_parse(text, strlen(text), &c, &err), -EINVAL);
	ck_assert_str_eq(err.text, "backends: more than 16");
	ck_assert_int_eq(fake_live, 0);
	free(text);
	json_decref(root);
}
END_TEST

START_TEST(test_config_too_large)
{
	struct errmsg err = {{0}};
	struct config *c = NULL;
	char *big = malloc(CONFIG_MAX_BYTES + 1);

	ck_assert_ptr_nonnull(big);
	memset(big, ' ', CONFIG_MAX_BYTES + 1);
	ck_assert_int_eq(config_parse(big, CONFIG_MAX_BYTES + 1, &c, &err),
			 -EMSGSIZE);
	ck_assert_ptr_null(c);
	ck_assert_ptr_nonnull(strstr(err.text, "larger than 1048576 bytes"));
	free(big);
}
END_TEST

START_TEST(test_config_free_null)
{
	config_free(NULL);
}
END_TEST

/* Messages are safe to log: control bytes in user text become '?'. */
START_TEST(test_config_message_sanitised)
{
	struct errmsg err = {{0}};
	struct config *c = NULL;

	ck_assert_int_eq(parse("{" MOUNT ",'backends':{'f':{'type':"
			       "'x\\n\\u00e9'}}," SECRET("") "}",
			       &c, &err),
			 -EINVAL);
	ck_assert_str_eq(err.text,
			 "backends.f.type: unknown backend type \"x???\"");
}
END_TEST

/* ---- durations ---- */

static const struct {
	const char *text;
	int r;
	uint64_t usec;
} durations[] = {
    {"500ms", 0, 500000},
    {"1s", 0, 1000000},
    {"90s", 0, 90000000},
    {"15m", 0, 900000000},
    {"1h", 0, 3600000000ULL},
    {"2d", 0, 172800000000ULL},
    {"1h30m", 0, 5400000000ULL},
    {"1d2h3m4s5ms", 0, 93784005000ULL},
    {"0s", 0, 0},
    {"007s", 0, 7000000},
    {"213503982d", 0, 18446744044800000000ULL},
    {"213503983d", -EINVAL, 0},	   /* product overflows */
    {"213503982d24h", -EINVAL, 0}, /* sum overflows */
    {"18446744073709551615ms", -EINVAL, 0},
    {"99999999999999999999s", -EINVAL, 0}, /* digits overflow */
    {"", -EINVAL, 0},
    {"10", -EINVAL, 0},
    {"1h30", -EINVAL, 0},
    {"s", -EINVAL, 0},
    {"ms", -EINVAL, 0},
    {"-5s", -EINVAL, 0},
    {"+5s", -EINVAL, 0},
    {" 5s", -EINVAL, 0},
    {"5s ", -EINVAL, 0},
    {"5 s", -EINVAL, 0},
    {"5s\n", -EINVAL, 0},
    {"5S", -EINVAL, 0},
    {"5sec", -EINVAL, 0},
    {"5us", -EINVAL, 0},
    {"1.5h", -EINVAL, 0},
    {"0x10s", -EINVAL, 0},
    {"30m1h", -EINVAL, 0}, /* units largest first */
    {"1m1m", -EINVAL, 0},  /* each unit once */
    {"1s500ms", 0, 1500000},
};

START_TEST(test_config_duration_table)
{
	uint64_t v = 12345;
	int r = config_parse_duration(durations[_i].text, &v);

	ck_assert_msg(r == durations[_i].r, "\"%s\": r=%d", durations[_i].text,
		      r);
	ck_assert_uint_eq(v, r == 0 ? durations[_i].usec : 12345);
}
END_TEST

/* ---- files ---- */

static char tmpdir[64];

static void tmp_setup(void)
{
	(void)snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static int tmp_remove(const char *path, const struct stat *st, int flag,
		      struct FTW *ftw)
{
	return remove(path);
}

static void tmp_teardown(void)
{
	(void)nftw(tmpdir, tmp_remove, 8, FTW_DEPTH | FTW_PHYS);
}

static void write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

static void write_text(const char *path, const char *text)
{
	write_file(path, text, strlen(text));
}

START_TEST(test_config_load_file)
{
	char path[128], link[128], *t = dq(DOC(""));
	struct errmsg err = {{0}};
	struct config *c = NULL;

	(void)snprintf(path, sizeof(path), "%s/cb.json", tmpdir);
	(void)snprintf(link, sizeof(link), "%s/link.json", tmpdir);
	write_text(path, t);
	ck_assert_int_eq(config_load(path, &c, &err), 0);
	ck_assert_str_eq(c->secrets[0].name, "db");
	config_free(c);
	c = NULL;
	/* Kubernetes ConfigMap files are symlinks. */
	ck_assert_int_eq(symlink(path, link), 0);
	ck_assert_int_eq(config_load(link, &c, &err), 0);
	config_free(c);
	free(t);
}
END_TEST

START_TEST(test_config_load_errors_name_the_file)
{
	char path[128], want[192], *big;
	struct errmsg err = {{0}};
	struct config *c = NULL;

	(void)snprintf(path, sizeof(path), "%s/missing.json", tmpdir);
	ck_assert_int_eq(config_load(path, &c, &err), -ENOENT);
	(void)snprintf(want, sizeof(want), "%s: No such file", path);
	ck_assert_ptr_nonnull(strstr(err.text, want));

	ck_assert_int_eq(config_load(tmpdir, &c, &err), -EINVAL);
	(void)snprintf(want, sizeof(want), "%s: not a regular file", tmpdir);
	ck_assert_str_eq(err.text, want);

	(void)snprintf(path, sizeof(path), "%s/syntax.json", tmpdir);
	write_text(path, "{\n  \"mount\": {\n    \"path\": x\n");
	ck_assert_int_eq(config_load(path, &c, &err), -EINVAL);
	(void)snprintf(want, sizeof(want), "%s:3:13: ", path);
	ck_assert_msg(strncmp(err.text, want, strlen(want)) == 0, "%s",
		      err.text);

	(void)snprintf(path, sizeof(path), "%s/unknown.json", tmpdir);
	write_text(path, "{\"mount\":{\"path\":\"/s\",\"x\":1}}");
	ck_assert_int_eq(config_load(path, &c, &err), -EINVAL);
	(void)snprintf(want, sizeof(want), "%s: mount.x: unknown key", path);
	ck_assert_str_eq(err.text, want);

	(void)snprintf(path, sizeof(path), "%s/big.json", tmpdir);
	big = malloc(CONFIG_MAX_BYTES + 1);
	ck_assert_ptr_nonnull(big);
	memset(big, ' ', CONFIG_MAX_BYTES + 1);
	write_file(path, big, CONFIG_MAX_BYTES + 1);
	free(big);
	ck_assert_int_eq(config_load(path, &c, &err), -EMSGSIZE);
	(void)snprintf(want, sizeof(want), "%s: larger than 1048576 bytes",
		       path);
	ck_assert_str_eq(err.text, want);
	ck_assert_ptr_null(c);
}
END_TEST

/* The shipped example parses with the real postgres backend. */
START_TEST(test_config_example_parses)
{
	struct errmsg err = {{0}};
	struct config *c = NULL;

	ck_assert_msg(config_load(CB_SOURCE_DIR
				  "/deploy/examples/credbroker.json",
				  &c, &err) == 0,
		      "%s", err.text);
	ck_assert_str_eq(c->mount_path, "/secrets");
	ck_assert_uint_eq(c->reader_count, 1);
	ck_assert_uint_eq(c->readers[0], 1000);
	ck_assert_ptr_eq(c->backends[0].ops, backend_find("postgres"));
	ck_assert_ptr_nonnull(c->backends[0].cfg);
	ck_assert_str_eq(c->secrets[0].name, "db");
	ck_assert_uint_eq(c->secrets[0].ttl_usec, 3600ULL * 1000000);
	ck_assert_uint_eq(c->secrets[0].max_ttl_usec, 24ULL * 3600 * 1000000);
	ck_assert_ptr_nonnull(c->secrets[0].backend_cfg);
	config_free(c);
}
END_TEST

/* The shipped Vault example parses with the real vault backend. */
START_TEST(test_config_vault_example_parses)
{
	struct errmsg err = {{0}};
	struct config *c = NULL;

	ck_assert_msg(config_load(CB_SOURCE_DIR "/deploy/examples/vault.json",
				  &c, &err) == 0,
		      "%s", err.text);
	ck_assert_ptr_eq(c->backends[0].ops, backend_find("vault"));
	ck_assert_uint_eq(c->secret_count, 3);
	ck_assert_uint_eq(c->secrets[0].overlap_usec, 300ULL * 1000000);
	ck_assert_uint_eq(c->secrets[2].refresh_usec, 30ULL * 1000000);
	ck_assert_uint_eq(c->lease_check_usec, 60ULL * 1000000);
	config_free(c);
}
END_TEST

/* The shipped AWS example parses with the real aws backend. */
START_TEST(test_config_aws_example_parses)
{
	struct errmsg err = {{0}};
	struct config *c = NULL;

	ck_assert_msg(config_load(CB_SOURCE_DIR "/deploy/examples/aws.json", &c,
				  &err) == 0,
		      "%s", err.text);
	ck_assert_ptr_eq(c->backends[0].ops, backend_find("aws"));
	ck_assert_uint_eq(c->secret_count, 3);
	ck_assert_uint_eq(c->secrets[1].refresh_usec, 60ULL * 1000000);
	config_free(c);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("parse");
	TCase *tf = tcase_create("files");

	tcase_add_test(tc, test_config_full_valid);
	tcase_add_test(tc, test_config_cache_modes);
	tcase_add_test(tc, test_config_defaults);
	tcase_add_loop_test(tc, test_config_rejects_bad_input, 0,
			    (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	tcase_add_test(tc, test_config_limits);
	tcase_add_test(tc, test_config_too_many_backends);
	tcase_add_test(tc, test_config_too_large);
	tcase_add_test(tc, test_config_free_null);
	tcase_add_test(tc, test_config_message_sanitised);
	tcase_add_loop_test(tc, test_config_duration_table, 0,
			    (int)(sizeof(durations) / sizeof(durations[0])));
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(tf, tmp_setup, tmp_teardown);
	tcase_add_test(tf, test_config_load_file);
	tcase_add_test(tf, test_config_load_errors_name_the_file);
	tcase_add_test(tf, test_config_example_parses);
	tcase_add_test(tf, test_config_vault_example_parses);
	tcase_add_test(tf, test_config_aws_example_parses);
	suite_add_tcase(s, tf);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
