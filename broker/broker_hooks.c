/* When the broker runs its hooks.  Revocation hooks run inside the revoke
 * command (a responder waits for them, each bounded by its timeout) and
 * their results go into the incident record; rotation hooks run on a
 * thread of their own, so a slow hook never delays the scheduler.  Each
 * run is audited.  Events carry names, versions and lease ids only. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"
#include "log.h"

/* Rotation hook threads at once; past that a rotation's hooks are skipped
 * (and audited as such) rather than piling up behind a slow hook. */
#define ROTATE_HOOKS_MAX 8

/* What a hook is called in logs and records: argv[0], or "http" (a
 * webhook URL may carry a token). */
static const char *broker_hook_label(const struct hook_config *h)
{
	if (h->type == HOOK_EXEC)
		return h->argv[0];
	return h->type == HOOK_SIGNAL ? "signal" : "http";
}

static json_t *broker_run_one(struct broker *b, const struct hook_config *h,
			      const char *scope, const json_t *event)
{
	uint64_t start = clock_mono(b->clk), ms;
	struct errmsg err = {{0}};
	int r;

	r = hook_run(h, event, &err);
	ms = (clock_mono(b->clk) - start) / 1000;
	if (r < 0)
		log_warnx("event=hook_failed hook=%s for=%s errno=%d "
			  "error=\"%s\"",
			  broker_hook_label(h), scope, -r, err.text);
	else
		log_info("event=hook_ran hook=%s for=%s ms=%llu",
			 broker_hook_label(h), scope, (unsigned long long)ms);
	broker_audit(b, "hook", broker_actor_scheduler(),
		     json_pack("{s:s, s:s, s:O}", "hook", broker_hook_label(h),
			       "for", scope, "event",
			       json_object_get(event, "event")),
		     r, err.text, NULL);
	return json_pack("{s:s, s:s, s:b, s:s, s:I}", "hook",
			 broker_hook_label(h), "for", scope, "ok", r == 0,
			 "error", r == 0 ? "" : err.text, "ms", (json_int_t)ms);
}

json_t *broker_run_hooks(struct broker *b, const struct config_hooks *h,
			 bool revoke, const char *scope, const json_t *event,
			 json_t *results)
{
	const struct hook_config *list = revoke ? h->on_revoke : h->on_rotate;
	size_t i, n = revoke ? h->revoke_count : h->rotate_count;

	for (i = 0; i < n; i++)
		(void)json_array_append_new(
		    results, broker_run_one(b, &list[i], scope, event));
	return results;
}

struct rotate_job {
	struct broker *b;
	size_t slot;
	json_t *event;
};

static void *broker_rotate_thread(void *arg)
{
	struct rotate_job *job = arg;
	struct broker *b = job->b;
	const struct config_secret *cs = &b->cfg->secrets[job->slot];
	json_t *results = json_array();

	(void)broker_run_hooks(b, &cs->hooks, false, cs->name, job->event,
			       results);
	(void)broker_run_hooks(b, &b->cfg->hooks, false, "*", job->event,
			       results);
	json_decref(results);
	json_decref(job->event);
	free(job);
	pthread_mutex_lock(&b->hooks_lock);
	b->hooks_running--;
	pthread_cond_broadcast(&b->hooks_done);
	pthread_mutex_unlock(&b->hooks_lock);
	return NULL;
}

void broker_rotate_hooks(struct broker *b, size_t slot, uint64_t version,
			 const char *lease_id)
{
	const struct config_secret *cs = &b->cfg->secrets[slot];
	struct rotate_job *job;
	pthread_attr_t attr;
	pthread_t thread;
	int r;

	if (cs->hooks.rotate_count == 0 && b->cfg->hooks.rotate_count == 0)
		return;
	job = calloc(1, sizeof(*job));
	if (job == NULL)
		return;
	job->b = b;
	job->slot = slot;
	job->event = json_pack("{s:s, s:s, s:I, s:s}", "event", "rotate",
			       "secret", cs->name, "version",
			       (json_int_t)version, "lease_id", lease_id);
	pthread_mutex_lock(&b->hooks_lock);
	r = b->hooks_running >= ROTATE_HOOKS_MAX ? -EBUSY : 0;
	if (r == 0)
		b->hooks_running++;
	pthread_mutex_unlock(&b->hooks_lock);
	if (r < 0) {
		log_warnx("event=hook_skipped secret=%s reason=\"%d hook runs "
			  "still busy\"",
			  cs->name, ROTATE_HOOKS_MAX);
		broker_audit(
		    b, "hook", broker_actor_scheduler(),
		    json_pack("{s:s, s:s}", "for", cs->name, "event", "rotate"),
		    r, "skipped: earlier hook runs still busy", NULL);
		json_decref(job->event);
		free(job);
		return;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = job->event == NULL
		? -ENOMEM
		: -pthread_create(&thread, &attr, broker_rotate_thread, job);
	pthread_attr_destroy(&attr);
	if (r < 0) {
		log_warnx("event=hook_not_started secret=%s errno=%d", cs->name,
			  -r);
		json_decref(job->event);
		free(job);
		pthread_mutex_lock(&b->hooks_lock);
		b->hooks_running--;
		pthread_mutex_unlock(&b->hooks_lock);
	}
}

void broker_hooks_wait(struct broker *b)
{
	pthread_mutex_lock(&b->hooks_lock);
	while (b->hooks_running > 0)
		pthread_cond_wait(&b->hooks_done, &b->hooks_lock);
	pthread_mutex_unlock(&b->hooks_lock);
}
