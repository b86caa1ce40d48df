/* Table-driven, as wireguard-tools' wg: each verb builds one request and
 * prints its reply for a human, or as JSON for scripts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "control.h"

/* revoke waits for upstream timeouts and hooks; the others answer at
 * once. */
#define CLI_TIMEOUT_MS 120000
#define CLI_REVOKE_TIMEOUT_MS 900000
#define CLI_SYSTEM_SOCKET "/run/credbroker/control.sock"
#define CLI_DEMO_SOCKET ".demo/control.sock"

static const char *str(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : "";
}

static long long num(const json_t *obj, const char *key)
{
	return (long long)json_integer_value(json_object_get(obj, key));
}

static void print_status(const json_t *reply)
{
	const json_t *list = json_object_get(reply, "secrets"), *s;
	size_t i;

	printf("%-20s %-8s %-8s %-40s %-25s %s\n", "SECRET", "STATE", "VERSION",
	       "LEASE", "EXPIRES", "FAILURES");
	json_array_foreach(list, i, s)
	{
		printf("%-20s %-8s %-8lld %-40s %-25s %lld\n", str(s, "name"),
		       str(s, "state"), num(s, "version"),
		       *str(s, "lease_id") ? str(s, "lease_id") : "-",
		       *str(s, "expires") ? str(s, "expires") : "-",
		       num(s, "failures"));
		if (*str(s, "last_error"))
			printf("  last error: %s\n", str(s, "last_error"));
	}
}

static void print_ls(const json_t *reply)
{
	const json_t *list = json_object_get(reply, "secrets"), *s, *f;
	size_t i, j;

	json_array_foreach(list, i, s)
	{
		printf("%s/%s (version %lld)\n", str(reply, "mount"),
		       str(s, "name"), num(s, "version"));
		json_array_foreach(json_object_get(s, "files"), j, f)
		    printf("  %-20s %6lld bytes  (hidden)\n", str(f, "name"),
			   num(f, "size"));
	}
}

static void print_blast_radius(const json_t *secret)
{
	const json_t *r, *v;
	size_t i, j;

	json_array_foreach(json_object_get(secret, "blast_radius"), i, r)
	{
		printf(
		    "  read by uid %lld pid %lld (%s): %lld opens, %s .. %s, "
		    "versions",
		    num(r, "uid"), num(r, "pid"),
		    *str(r, "comm") ? str(r, "comm") : "?", num(r, "opens"),
		    str(r, "first"), str(r, "last"));
		json_array_foreach(json_object_get(r, "versions"), j, v)
		    printf(" %lld", (long long)json_integer_value(v));
		printf("\n");
	}
}

static void print_revoke(const json_t *reply)
{
	const json_t *list = json_object_get(reply, "revoked"), *s, *l, *vf;
	size_t i, j;

	if (*str(reply, "reason"))
		printf("reason: %s\n", str(reply, "reason"));
	json_array_foreach(list, i, s)
	{
		printf("%s: removed from the mount, wiped, frozen\n",
		       str(s, "name"));
		json_array_foreach(json_object_get(s, "leases"), j, l)
		{
			printf("  lease %s: %s (%lld ms)%s%s\n",
			       str(l, "lease_id"),
			       json_is_true(json_object_get(l, "confirmed"))
				   ? "revoked upstream"
				   : "NOT CONFIRMED",
			       num(l, "ms"), *str(l, "error") ? ": " : "",
			       str(l, "error"));
			vf = json_object_get(l, "verified");
			if (vf != NULL)
				printf("    verified: %s (%s)\n",
				       json_is_true(json_object_get(vf, "ok"))
					   ? "yes"
					   : "NO",
				       str(vf, "detail"));
		}
		print_blast_radius(s);
	}
	json_array_foreach(json_object_get(reply, "identities"), i, s) printf(
	    "backend %s: identity %s%s%s\n", str(s, "backend"),
	    json_is_true(json_object_get(s, "confirmed")) ? "revoked upstream"
							  : "NOT CONFIRMED",
	    *str(s, "error") ? ": " : "", str(s, "error"));
	printf("%s in %lld ms (files hidden in %lld ms)\n",
	       json_is_true(json_object_get(reply, "confirmed"))
		   ? "confirmed"
		   : "NOT CONFIRMED",
	       num(reply, "ms"), num(reply, "hidden_ms"));
}

static void print_rotate(const json_t *reply)
{
	printf("%s: rotated to version %lld (lease %s)\n", str(reply, "name"),
	       num(reply, "version"), str(reply, "lease_id"));
}

static void print_unfreeze(const json_t *reply)
{
	printf("%s: unfrozen; a new credential is being issued\n",
	       str(reply, "name"));
}

static void print_ready(const json_t *reply)
{
	const json_t *m;
	size_t i;

	if (json_is_true(json_object_get(reply, "ready"))) {
		printf("ready\n");
		return;
	}
	printf("not ready:");
	json_array_foreach(json_object_get(reply, "missing"), i, m)
	    printf(" %s", json_string_value(m));
	printf("\n");
}

struct cli_verb {
	const char *name;
	const char *usage;
	int nargs; /* 1: requires NAME (or --all for revoke) */
	void (*print)(const json_t *reply);
};

static const struct cli_verb verbs[] = {
    {"status", "status", 0, print_status},
    {"ls", "ls", 0, print_ls},
    {"rotate", "rotate NAME", 1, print_rotate},
    {"revoke", "revoke NAME|--all [--reason TEXT] [--verify]", 1, print_revoke},
    {"unfreeze", "unfreeze NAME", 1, print_unfreeze},
    {"ready", "ready", 0, print_ready},
};

static const struct cli_verb *cli_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		if (strcmp(verbs[i].name, name) == 0)
			return &verbs[i];
	return NULL;
}

bool cli_is_command(const char *verb)
{
	return cli_find(verb) != NULL;
}

const char *cli_default_socket(void)
{
	const char *env = getenv("CREDBROKER_SOCKET");

	if (env != NULL && *env != '\0')
		return env;
	if (access(CLI_SYSTEM_SOCKET, F_OK) == 0)
		return CLI_SYSTEM_SOCKET;
	if (access(CLI_DEMO_SOCKET, F_OK) == 0)
		return CLI_DEMO_SOCKET;
	return CLI_SYSTEM_SOCKET;
}

/* revoke NAME|--all [--reason TEXT] [--verify] */
static json_t *cli_revoke_request(int argc, char **argv)
{
	const char *name = NULL, *reason = NULL;
	bool all = false, verify = false;
	json_t *req;
	int i;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--all") == 0 && !all && name == NULL)
			all = true;
		else if (strcmp(argv[i], "--verify") == 0)
			verify = true;
		else if (strcmp(argv[i], "--reason") == 0 && i + 1 < argc &&
			 reason == NULL)
			reason = argv[++i];
		else if (argv[i][0] != '-' && name == NULL && !all)
			name = argv[i];
		else
			return NULL;
	}
	if (!all && name == NULL)
		return NULL;
	req = json_pack("{s:s, s:b, s:b}", "cmd", "revoke", "all", all,
			"verify", verify);
	if (req != NULL && name != NULL)
		(void)json_object_set_new(req, "name", json_string(name));
	if (req != NULL && reason != NULL)
		(void)json_object_set_new(req, "reason", json_string(reason));
	return req;
}

static json_t *cli_request(const struct cli_verb *v, int argc, char **argv)
{
	if (strcmp(v->name, "revoke") == 0)
		return cli_revoke_request(argc, argv);
	if (v->nargs == 0)
		return argc == 1 ? json_pack("{s:s}", "cmd", v->name) : NULL;
	if (argc != 2)
		return NULL;
	if (argv[1][0] == '-')
		return NULL;
	return json_pack("{s:s, s:s}", "cmd", v->name, "name", argv[1]);
}

static int cli_exit_status(const struct cli_verb *v, const json_t *reply)
{
	if (!json_is_true(json_object_get(reply, "ok")))
		return CLI_EXIT_FAILED;
	if (strcmp(v->name, "revoke") == 0 &&
	    !json_is_true(json_object_get(reply, "confirmed")))
		return CLI_EXIT_UNCONFIRMED;
	if (strcmp(v->name, "ready") == 0 &&
	    !json_is_true(json_object_get(reply, "ready")))
		return CLI_EXIT_FAILED;
	return CLI_EXIT_OK;
}

int cli_run(int argc, char **argv, const char *socket_path, bool json)
{
	const struct cli_verb *v = cli_find(argv[0]);
	struct errmsg err = {{0}};
	json_t *req, *reply = NULL;
	int r, status;

	req = v != NULL ? cli_request(v, argc, argv) : NULL;
	if (req == NULL) {
		fprintf(stderr,
			"usage: credbroker [--socket PATH] [--json] "
			"%s\n",
			v != NULL ? v->usage : "COMMAND");
		return CLI_EXIT_USAGE;
	}
	r = control_call(socket_path, req,
			 strcmp(v->name, "revoke") == 0 ? CLI_REVOKE_TIMEOUT_MS
							: CLI_TIMEOUT_MS,
			 &reply, &err);
	json_decref(req);
	if (r < 0) {
		fprintf(stderr, "credbroker: %s\n", err.text);
		return CLI_EXIT_UNREACHABLE;
	}
	status = cli_exit_status(v, reply);
	if (json) {
		json_dumpf(reply, stdout, JSON_INDENT(2));
		printf("\n");
	} else if (json_is_true(json_object_get(reply, "ok"))) {
		v->print(reply);
	} else {
		fprintf(stderr, "credbroker %s: %s\n", v->name,
			str(reply, "error"));
	}
	json_decref(reply);
	return status;
}
