/* credbroker: the daemon (run), config validation (check-config) and the
 * responder's commands (status, ls, rotate, revoke, unfreeze, ready). */
#include <errno.h>
#include <signal.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "audit.h"
#include "broker.h"
#include "cli.h"
#include "config.h"
#include "hardening.h"
#include "inject.h"
#include "log.h"
#include "spawner.h"
#include "webhook.h"

#define CREDBROKER_VERSION "0.1.0"

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: credbroker run --config FILE\n"
	    "       credbroker check-config FILE\n"
	    "       credbroker audit verify [--key-file FILE] LOG...\n"
	    "       credbroker inject [-f FILE] [--image IMAGE] < OBJECT.json\n"
	    "       credbroker webhook --cert FILE --key FILE [--listen "
	    "HOST:PORT] [--image IMAGE]\n"
	    "       credbroker [--socket PATH] [--json] COMMAND\n"
	    "commands:\n"
	    "  status              every secret's state, version, lease\n"
	    "  ls                  the files in the mount (values hidden)\n"
	    "  rotate NAME         issue a new credential now\n"
	    "  revoke NAME|--all [--reason TEXT] [--verify]\n"
	    "                      hide, revoke upstream, wipe, freeze;\n"
	    "                      prints the incident record\n"
	    "  unfreeze NAME       allow a revoked secret to be issued "
	    "again\n"
	    "  ready               exit 0 once every secret is in the "
	    "mount\n"
	    "exit status: 0 ok, 1 failed, 2 usage or config error, "
	    "3 revocation not confirmed upstream, 4 broker unreachable\n");
}

#define INJECT_MAX_INPUT (16 * 1024 * 1024)

/* The object to inject into, from FILE or stdin, at most
 * INJECT_MAX_INPUT bytes (a manifest is far smaller; a pipe that never
 * ends must not fill memory). */
static json_t *inject_read(const char *file, json_error_t *jerr)
{
	FILE *f = file ? fopen(file, "re") : stdin;
	char *buf = malloc(INJECT_MAX_INPUT + 1);
	size_t n = 0, got;
	json_t *obj = NULL;

	memset(jerr, 0, sizeof(*jerr));
	if (f == NULL || buf == NULL) {
		(void)snprintf(jerr->text, sizeof(jerr->text), "%s",
			       f == NULL ? strerror(errno) : "out of memory");
		goto out;
	}
	while (n <= INJECT_MAX_INPUT &&
	       (got = fread(buf + n, 1, INJECT_MAX_INPUT + 1 - n, f)) > 0)
		n += got;
	if (n > INJECT_MAX_INPUT)
		(void)snprintf(jerr->text, sizeof(jerr->text),
			       "larger than %d bytes", INJECT_MAX_INPUT);
	else
		obj = json_loadb(buf, n, JSON_REJECT_DUPLICATES, jerr);
out:
	if (f != NULL && f != stdin)
		fclose(f);
	free(buf);
	return obj;
}

/* inject [-f FILE] [--image IMAGE]: an object (or a List) as JSON on stdin
 * or in FILE, written back with the broker added where annotated. */
static int cmd_inject(int argc, char **argv)
{
	struct inject_options opt = {NULL};
	struct errmsg err = {{0}};
	const char *file = NULL;
	json_error_t jerr;
	bool changed;
	json_t *obj;
	int i;

	for (i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "-f") == 0)
			file = argv[i + 1];
		else if (strcmp(argv[i], "--image") == 0)
			opt.image = argv[i + 1];
		else
			break;
	}
	if (i != argc) {
		fprintf(stderr, "usage: credbroker inject [-f FILE] "
				"[--image IMAGE]\n");
		return CLI_EXIT_USAGE;
	}
	obj = inject_read(file, &jerr);
	if (obj == NULL) {
		fprintf(stderr, "credbroker inject: %s: line %d: %s\n",
			file ? file : "stdin", jerr.line, jerr.text);
		return CLI_EXIT_USAGE;
	}
	if (inject_object(obj, &opt, &changed, &err) < 0) {
		fprintf(stderr, "credbroker inject: %s\n", err.text);
		json_decref(obj);
		return CLI_EXIT_USAGE;
	}
	(void)json_dumpf(obj, stdout, JSON_INDENT(2));
	printf("\n");
	json_decref(obj);
	return CLI_EXIT_OK;
}

/* webhook --cert FILE --key FILE [--listen HOST:PORT] [--image IMAGE] */
static int cmd_webhook(int argc, char **argv)
{
	struct webhook_config cfg = {NULL, NULL, "0.0.0.0:8443", {NULL}};
	struct errmsg err = {{0}};
	sigset_t set;
	int i;

	for (i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--cert") == 0)
			cfg.cert_file = argv[i + 1];
		else if (strcmp(argv[i], "--key") == 0)
			cfg.key_file = argv[i + 1];
		else if (strcmp(argv[i], "--listen") == 0)
			cfg.listen = argv[i + 1];
		else if (strcmp(argv[i], "--image") == 0)
			cfg.inject.image = argv[i + 1];
		else
			break;
	}
	if (i != argc || cfg.cert_file == NULL || cfg.key_file == NULL) {
		fprintf(stderr, "usage: credbroker webhook --cert FILE --key "
				"FILE [--listen HOST:PORT] [--image IMAGE]\n");
		return CLI_EXIT_USAGE;
	}
	if (hardening_apply() < 0)
		log_warnx("event=hardening_incomplete");
	/* The webhook waits for these on a signalfd. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (webhook_run(&cfg, &err) < 0) {
		fprintf(stderr, "credbroker webhook: %s\n", err.text);
		return CLI_EXIT_USAGE;
	}
	return CLI_EXIT_OK;
}

/* audit verify [--key-file FILE] LOG...: the files oldest first. */
static int cmd_audit(int argc, char **argv, bool json)
{
	struct audit_verify_result res;
	struct errmsg err = {{0}};
	const char *key = "";
	int first = 2, r;

	if (argc >= 4 && strcmp(argv[2], "--key-file") == 0) {
		key = argv[3];
		first = 4;
	}
	if (argc < 2 || strcmp(argv[1], "verify") != 0 || first >= argc ||
	    argv[first][0] == '-') {
		fprintf(stderr, "usage: credbroker audit verify [--key-file "
				"FILE] LOG...\n");
		return CLI_EXIT_USAGE;
	}
	r = audit_verify((const char *const *)argv + first,
			 (size_t)(argc - first), key, &res, &err);
	if (json)
		printf("{\"ok\": %s, \"records\": %llu, \"first_seq\": %llu, "
		       "\"last_seq\": %llu, \"starts_at_genesis\": %s, "
		       "\"broken_line\": %llu}\n",
		       r == 0 ? "true" : "false",
		       (unsigned long long)res.records,
		       (unsigned long long)res.first_seq,
		       (unsigned long long)res.last_seq,
		       res.starts_at_genesis ? "true" : "false",
		       (unsigned long long)res.broken_line);
	if (r < 0) {
		fprintf(stderr, "credbroker audit: %s\n", err.text);
		return CLI_EXIT_FAILED;
	}
	if (!json)
		printf("ok: %llu records, seq %llu..%llu, %s\n",
		       (unsigned long long)res.records,
		       (unsigned long long)res.first_seq,
		       (unsigned long long)res.last_seq,
		       res.starts_at_genesis
			   ? "from the start of the chain"
			   : "continuing a chain whose start was not given");
	return CLI_EXIT_OK;
}

static int cmd_check_config(const char *path)
{
	struct errmsg err = {{0}};
	struct config *cfg;

	if (config_load(path, &cfg, &err) < 0) {
		fprintf(stderr, "credbroker: %s\n", err.text);
		return BROKER_EXIT_CONFIG;
	}
	printf("%s: ok (%zu secrets, %zu backends)\n", path, cfg->secret_count,
	       cfg->backend_count);
	config_free(cfg);
	return 0;
}

static int wait_for_signal(const sigset_t *set)
{
	int sig;

	for (;;) {
		if (sigwait(set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			log_info("event=sighup action=ignored");
			continue;
		}
		return sig;
	}
}

static int cmd_run(const char *path)
{
	struct errmsg err = {{0}};
	struct broker *b = NULL;
	struct config *cfg;
	sigset_t set;
	int r, sig;

	r = hardening_apply();
	if (r < 0)
		log_warnx("event=hardening_incomplete errno=%d", -r);
	hardening_block_signals(&set);
	if (config_load(path, &cfg, &err) < 0)
		fatalx(BROKER_EXIT_CONFIG, "event=config_error error=\"%s\"",
		       err.text);
	log_init("credbroker", cfg->log_level);
	/* Exec hooks run from a process forked now, before any secret or
	 * thread exists, so that this one can be confined later. */
	r = spawner_start(&err);
	if (r < 0)
		fatalx(BROKER_EXIT_CONFIG,
		       "event=start_failed error=\"hook "
		       "spawner: %s\"",
		       err.text);
	log_info("event=spawner_started pid=%d", spawner_pid());
	r = broker_new(cfg, clock_system(), &b, &err);
	if (r < 0) {
		spawner_stop();
		fatalx(BROKER_EXIT_CONFIG, "event=start_failed error=\"%s\"",
		       err.text);
	}
	r = broker_start(b, &err);
	if (r < 0) {
		log_warnx("event=start_failed error=\"%s\"", err.text);
		broker_free(b);
		spawner_stop();
		return BROKER_EXIT_CONFIG;
	}
	sig = wait_for_signal(&set);
	log_info("event=signal signal=%s", strsignal(sig));
	broker_free(b);
	spawner_stop();
	return 0;
}

int main(int argc, char **argv)
{
	const char *socket_path = NULL;
	bool json = false;
	int i = 1;

	log_init("credbroker", LOG_LEVEL_INFO);
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
			socket_path = argv[++i];
		} else if (strcmp(argv[i], "--help") == 0 ||
			   strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("credbroker %s\n", CREDBROKER_VERSION);
			return 0;
		} else {
			break;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(argv[i], "run") == 0 && argc - i == 3 &&
	    strcmp(argv[i + 1], "--config") == 0)
		return cmd_run(argv[i + 2]);
	if (strcmp(argv[i], "check-config") == 0 && argc - i == 2)
		return cmd_check_config(argv[i + 1]);
	if (strcmp(argv[i], "audit") == 0)
		return cmd_audit(argc - i, argv + i, json);
	if (strcmp(argv[i], "inject") == 0)
		return cmd_inject(argc - i, argv + i);
	if (strcmp(argv[i], "webhook") == 0)
		return cmd_webhook(argc - i, argv + i);
	if (cli_is_command(argv[i]))
		return cli_run(argc - i, argv + i,
			       socket_path ? socket_path : cli_default_socket(),
			       json);
	usage(stderr);
	return CLI_EXIT_USAGE;
}
