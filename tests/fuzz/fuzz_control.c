/* libFuzzer target for the control-socket protocol: the bytes a client
 * sends (broker/control.c: control_read_line, control_dispatch, through
 * control_serve) and the broker's handling of the parsed command
 * (broker/broker_ctl.c: status, ls, revoke, unfreeze, rotate, ready).
 *
 * Each input is one connection's bytes, fed through a socketpair to a fresh
 * broker made with a fake clock and a fake backend (no daemon, no thread,
 * no mount), holding an active secret "db" and a secret "old" frozen by
 * its state_file.  Any input must be answered with a JSON object whose
 * "ok" is a boolean, no reply may carry the issued password, and a frozen
 * secret must have nothing left in the store.  rotate cannot wait for a
 * scheduler that does not run: the broker is marked stopping, so rotate
 * answers at once.
 *
 * tests/fuzz/replay.c replays corpus/control/ as a plain test.  The
 * backend registry is wrapped at link time (-Wl,--wrap=backend_find), as
 * in tests/unit/test_broker.c. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker_int.h"
#include "config.h"
#include "freeze.h"
#include "log.h"
#include "zalloc.h"

#define FUZZ_PASSWORD "fz-pw-4c1d2b7e9a"
#define FUZZ_NOW (1700000000LL * 1000000)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const struct backend_ops *__real_backend_find(const char *type);
const struct backend_ops *__wrap_backend_find(const char *type);

static uint64_t fake_mono(void *arg)
{
	return 1000ULL * 1000000;
}

static int64_t fake_wall(void *arg)
{
	return FUZZ_NOW;
}

static const struct clock fake_clock = {fake_mono, fake_wall, NULL};

struct backend {
	unsigned issues;
};

static struct backend fake_instance;

static int fake_parse(const json_t *obj, const char *path, void **ret,
		      struct errmsg *err)
{
	*ret = NULL;
	return 0;
}

static void fake_free(void *cfg)
{
}

static int fake_create(const void *cfg, struct backend **ret)
{
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
	int r;

	(void)snprintf(lease->id, sizeof(lease->id), "role%u", ++b->issues);
	lease->issued_wall = req->now_wall;
	lease->expires_wall = req->now_wall + (int64_t)req->ttl_usec;
	lease->max_wall = req->now_wall + (int64_t)req->max_ttl_usec;
	lease->renewable = true;
	r = kv_set_str(values, "username", lease->id);
	return r < 0 ? r : kv_set_str(values, "password", FUZZ_PASSWORD);
}

static int fake_renew(struct backend *b, const void *scfg, struct lease *lease,
		      int64_t want, struct errmsg *err)
{
	lease->expires_wall = want;
	return 0;
}

static int fake_lease_op(struct backend *b, const struct lease *lease,
			 struct errmsg *err)
{
	return 0;
}

static int fake_verify(struct backend *b, const struct lease *lease,
		       const struct kv *values, char *detail,
		       struct errmsg *err)
{
	(void)snprintf(detail, ERRMSG_MAX, "login refused");
	return 0;
}

static int fake_revoke_all(struct backend *b, struct errmsg *err)
{
	return 0;
}

static void fake_destroy(struct backend *b)
{
}

static const char *const fake_files[] = {"username", "password", NULL};

static const struct backend_ops fake_ops = {
    .type = "fake",
    .default_files = fake_files,
    .parse_config = fake_parse,
    .free_config = fake_free,
    .parse_secret_config = fake_parse,
    .free_secret_config = fake_free,
    .create = fake_create,
    .login = fake_login,
    .issue = fake_issue,
    .renew = fake_renew,
    .revoke = fake_lease_op,
    .check = fake_lease_op,
    .verify = fake_verify,
    .revoke_all = fake_revoke_all,
    .destroy = fake_destroy,
};

const struct backend_ops *__wrap_backend_find(const char *type)
{
	if (strcmp(type, "fake") == 0)
		return &fake_ops;
	return __real_backend_find(type);
}

static char dir[64];
static char state_path[128];
static char config_text[1024];

static void cleanup(void)
{
	char tmp[160];

	(void)snprintf(tmp, sizeof(tmp), "%s.tmp", state_path);
	(void)unlink(tmp);
	(void)unlink(state_path);
	(void)rmdir(dir);
}

/* Once: a scratch directory in memory when there is one, jansson's
 * zeroing allocator (as the daemon installs it), warnings only. */
static void setup(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	log_init("fuzz_control", LOG_LEVEL_WARN);
	json_set_alloc_funcs(zalloc_malloc, zalloc_free);
	(void)snprintf(dir, sizeof(dir), "%s/cb-fuzz-ctl-XXXXXX",
		       access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	if (mkdtemp(dir) == NULL)
		abort();
	(void)snprintf(state_path, sizeof(state_path), "%s/state.json", dir);
	(void)snprintf(
	    config_text, sizeof(config_text),
	    "{\"mount\": {\"path\": \"/nonexistent\", \"readers\": [0]},"
	    " \"control\": {\"socket\": \"%s/control.sock\"},"
	    " \"audit\": {\"stdout\": false}, \"state_file\": \"%s\","
	    " \"backends\": {\"f\": {\"type\": \"fake\"}},"
	    " \"secrets\": [{\"name\": \"db\", \"backend\": \"f\","
	    " \"ttl\": \"30s\", \"max_ttl\": \"1h\"},"
	    " {\"name\": \"old\", \"backend\": \"f\", \"ttl\": \"30s\"}]}",
	    dir, state_path);
	atexit(cleanup);
}

/* A fresh broker: "old" frozen by the state file, "db" issued. */
static struct broker *make_broker(void)
{
	struct errmsg err = {{0}};
	struct config *cfg = NULL;
	struct broker *b = NULL;
	json_t *frozen;

	frozen = json_pack("{s:{s:s, s:s, s:i}}", "old", "since",
			   "2026-12-04T16:00:00Z", "reason", "drill", "uid", 0);
	if (frozen == NULL || freeze_save(state_path, frozen, &err) < 0 ||
	    config_parse(config_text, strlen(config_text), &cfg, &err) < 0 ||
	    broker_new(cfg, &fake_clock, &b, &err) < 0)
		abort();
	json_decref(frozen);
	fake_instance.issues = 0;
	pthread_mutex_lock(&b->lock);
	broker_schedule_all(b);
	(void)broker_run_due(b);
	if (b->secrets[0].state != SECRET_ACTIVE ||
	    b->secrets[1].state != SECRET_FROZEN)
		abort();
	b->stopping = true;
	pthread_mutex_unlock(&b->lock);
	return b;
}

/* Sends the input as one connection's bytes; returns the reply. */
static json_t *serve(struct broker *b, const uint8_t *data, size_t size)
{
	struct control_peer peer = {0, 1, "fuzz"};
	json_t *reply;
	int sv[2];

	/* Past the cap, every input is refused alike; the socket buffer
	 * takes this much at once. */
	if (size > CONTROL_MAX_MSG + 1)
		size = CONTROL_MAX_MSG + 1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	if (size > 0 && send(sv[1], data, size, MSG_NOSIGNAL) != (ssize_t)size)
		abort();
	(void)shutdown(sv[1], SHUT_WR);
	reply = control_serve(sv[0], &peer, broker_control, b, 1000);
	close(sv[0]);
	close(sv[1]);
	return reply;
}

static void check_reply(const json_t *reply, const uint8_t *data, size_t size)
{
	size_t len;
	char *text;

	if (!json_is_object(reply) ||
	    !json_is_boolean(json_object_get(reply, "ok")))
		abort();
	len = json_dumpb(reply, NULL, 0, JSON_COMPACT);
	text = malloc(len + 1);
	if (text == NULL)
		abort();
	(void)json_dumpb(reply, text, len, JSON_COMPACT);
	text[len] = '\0';
	/* A secret value in a reply, unless the request itself named it. */
	if (strstr(text, FUZZ_PASSWORD) != NULL &&
	    memmem(data, size, FUZZ_PASSWORD, strlen(FUZZ_PASSWORD)) == NULL)
		abort();
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct version *v;
	struct broker *b;
	json_t *reply;
	size_t i;

	setup();
	b = make_broker();
	reply = serve(b, data, size);
	check_reply(reply, data, size);
	json_decref(reply);
	/* Revocation wins: nothing of a frozen secret stays readable. */
	for (i = 0; i < b->cfg->secret_count; i++) {
		if (b->secrets[i].state != SECRET_FROZEN)
			continue;
		v = store_pin_current(b->store, i);
		if (v != NULL)
			abort();
	}
	broker_free(b);
	(void)unlink(state_path);
	return 0;
}
