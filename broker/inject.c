/* The generated config goes into the pod's own annotation
 * credbroker.io/generated-config and reaches the broker as a downwardAPI
 * file, so injection needs no ConfigMap (a webhook can only change the
 * pod it is shown). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inject.h"

#define ANN "credbroker.io/"
#define ANN_SECRET ANN "secret-"
#define BROKER_NAME "credbroker"
#define BROKER_UID 65534
#define HANDOFF_DIR "/run/credbroker"
#define CONFIG_DIR "/etc/credbroker"
#define TOKEN_DIR "/var/run/secrets/credbroker"
#define ADMIN_DIR "/etc/credbroker-admin"
#define MAX_SECRETS 64

/* The pod template being injected and where its annotations live. */
struct inject_target {
	const char *where;   /* "Deployment/web" for messages */
	json_t *annotations; /* the template's metadata.annotations */
	json_t *spec;	     /* the pod spec */
};

static const char *ann(const struct inject_target *t, const char *key)
{
	return json_string_value(json_object_get(t->annotations, key));
}

static const char *ann_or(const struct inject_target *t, const char *key,
			  const char *dflt)
{
	const char *v = ann(t, key);

	return v != NULL && v[0] != '\0' ? v : dflt;
}

/* The secret names: every credbroker.io/secret-NAME key without a
 * -kind/-ttl/-max-ttl/-files suffix. */
static bool inject_is_secret_key(const char *key, const char **name)
{
	static const char *const suffixes[] = {"-kind",	 "-ttl",    "-max-ttl",
					       "-files", "-notify", NULL};
	size_t len, i, sl;

	if (strncmp(key, ANN_SECRET, sizeof(ANN_SECRET) - 1) != 0)
		return false;
	*name = key + sizeof(ANN_SECRET) - 1;
	len = strlen(*name);
	for (i = 0; suffixes[i] != NULL; i++) {
		sl = strlen(suffixes[i]);
		if (len > sl && strcmp(*name + len - sl, suffixes[i]) == 0)
			return false;
	}
	return len > 0;
}

static const char *secret_opt(const struct inject_target *t, const char *name,
			      const char *suffix)
{
	char key[256];

	(void)snprintf(key, sizeof(key), ANN_SECRET "%s%s", name, suffix);
	return ann(t, key);
}

/* "1000,1001" into a JSON array of uids. */
static int inject_uid_list(const char *text, json_t **ret)
{
	json_t *list = json_array();
	const char *p = text;
	char *end;
	long v;

	while (list != NULL && *p != '\0') {
		errno = 0;
		v = strtol(p, &end, 10);
		if (errno != 0 || end == p || v < 0 || v > 2147483647 ||
		    (*end != ',' && *end != '\0')) {
			json_decref(list);
			return -EINVAL;
		}
		(void)json_array_append_new(list, json_integer(v));
		p = *end == ',' ? end + 1 : end;
	}
	if (list == NULL || json_array_size(list) == 0) {
		json_decref(list);
		return -EINVAL;
	}
	*ret = list;
	return 0;
}

/* The readers: the annotation, else the app containers' runAsUser. */
static int inject_readers(const struct inject_target *t, json_t **ret,
			  struct errmsg *err)
{
	const char *text = ann(t, ANN "readers");
	json_t *list, *c, *uid, *pod_uid;
	size_t i, j;

	if (text != NULL)
		return inject_uid_list(text, ret) == 0
			   ? 0
			   : errmsg_set(err, -EINVAL,
					"%s: " ANN "readers: expected uids "
					"like \"1000,1001\"",
					t->where);
	pod_uid = json_object_get(json_object_get(t->spec, "securityContext"),
				  "runAsUser");
	list = json_array();
	json_array_foreach(json_object_get(t->spec, "containers"), i, c)
	{
		uid = json_object_get(json_object_get(c, "securityContext"),
				      "runAsUser");
		uid = uid ? uid : pod_uid;
		for (j = 0; uid && j < json_array_size(list); j++)
			if (json_equal(json_array_get(list, j), uid))
				break;
		if (json_is_integer(uid) && j == json_array_size(list))
			(void)json_array_append(list, uid);
	}
	if (json_array_size(list) == 0) {
		json_decref(list);
		return errmsg_set(err, -EINVAL,
				  "%s: " ANN "readers: required (no container "
				  "runAsUser to take it from)",
				  t->where);
	}
	*ret = list;
	return 0;
}

static int inject_vault_backend(const struct inject_target *t, json_t **ret,
				struct errmsg *err)
{
	const char *addr = ann(t, ANN "vault-address");
	const char *role = ann(t, ANN "role");
	json_t *be;

	if (addr == NULL || strncmp(addr, "https://", 8) != 0)
		return errmsg_set(err, -EINVAL,
				  "%s: " ANN "vault-address: an https:// URL "
				  "is required",
				  t->where);
	if (role == NULL || role[0] == '\0')
		return errmsg_set(err, -EINVAL,
				  "%s: " ANN "role: required for vault",
				  t->where);
	be = json_pack("{s:s, s:s, s:{s:s, s:s, s:s}}", "type", "vault",
		       "address", addr, "auth", "role", role, "mount",
		       ann_or(t, ANN "vault-auth-mount", "kubernetes"),
		       "token_file", TOKEN_DIR "/token");
	if (be != NULL && ann(t, ANN "vault-namespace") != NULL)
		(void)json_object_set_new(
		    be, "namespace",
		    json_string(ann(t, ANN "vault-namespace")));
	if (be != NULL && ann(t, ANN "vault-ca-configmap") != NULL)
		(void)json_object_set_new(
		    be, "tls",
		    json_pack("{s:s}", "ca_file", ADMIN_DIR "/ca.crt"));
	*ret = be;
	return be == NULL ? -ENOMEM : 0;
}

static int inject_backend(const struct inject_target *t, const char *type,
			  json_t **ret, struct errmsg *err)
{
	if (strcmp(type, "vault") == 0)
		return inject_vault_backend(t, ret, err);
	if (strcmp(type, "postgres") != 0)
		return errmsg_set(err, -EINVAL,
				  "%s: " ANN "backend: \"vault\" or "
				  "\"postgres\"",
				  t->where);
	if (ann(t, ANN "postgres-admin-secret") == NULL)
		return errmsg_set(err, -EINVAL,
				  "%s: " ANN "postgres-admin-secret: required "
				  "for postgres",
				  t->where);
	*ret = json_pack("{s:s, s:s}", "type", "postgres", "admin_dsn_file",
			 ADMIN_DIR "/dsn");
	return *ret == NULL ? -ENOMEM : 0;
}

/* "a,b" into ["a", "b"]. */
static json_t *inject_file_list(const char *text)
{
	json_t *list = json_array();
	const char *p = text, *comma;

	while (list != NULL && *p != '\0') {
		comma = strchr(p, ',');
		(void)json_array_append_new(
		    list,
		    json_stringn(p, comma ? (size_t)(comma - p) : strlen(p)));
		p = comma ? comma + 1 : p + strlen(p);
	}
	return list;
}

/* credbroker.io/secret-NAME-notify: "signal:SIG:NAME" (a process name,
 * with shareProcessNamespace), "signal:SIG:/pid/file", or
 * "exec:/abs/command arg ..." -- an on_rotate hook.  NULL when text is
 * not one of those. */
static json_t *inject_notify(const char *text)
{
	const char *rest, *colon;
	json_t *argv;

	if (strncmp(text, "exec:/", 6) == 0) {
		argv = json_array();
		for (rest = text + 5; argv != NULL && *rest != '\0';) {
			colon = strchr(rest, ' ');
			if (colon != rest)
				(void)json_array_append_new(
				    argv,
				    json_stringn(rest,
						 colon ? (size_t)(colon - rest)
						       : strlen(rest)));
			rest = colon ? colon + 1 : rest + strlen(rest);
		}
		return json_pack("{s:s, s:o}", "type", "exec", "argv", argv);
	}
	if (strncmp(text, "signal:", 7) != 0 ||
	    (colon = strchr(text + 7, ':')) == NULL || colon[1] == '\0')
		return NULL;
	return json_pack("{s:s, s:s#, s:s}", "type", "signal", "signal",
			 text + 7, (int)(colon - text - 7),
			 colon[1] == '/' ? "pid_file" : "process", colon + 1);
}

/* One secret of the config, from credbroker.io/secret-NAME[-...]. */
/* The mount enforces mode bits (default_permissions): one reader owns
 * 0400 files; several need 0444, and the broker's reader list is what
 * keeps everyone else out. */
static json_t *inject_secret(const struct inject_target *t, const char *name,
			     const char *path, const char *type, json_t *uid,
			     const char *mode)
{
	const char *files = secret_opt(t, name, "-files");
	const char *notify = secret_opt(t, name, "-notify");
	json_t *s;

	s = json_pack(
	    "{s:s, s:s, s:s, s:s, s:O, s:O, s:s}", "name", name, "backend",
	    "upstream", "ttl",
	    secret_opt(t, name, "-ttl") ? secret_opt(t, name, "-ttl") : "1h",
	    "max_ttl",
	    secret_opt(t, name, "-max-ttl") ? secret_opt(t, name, "-max-ttl")
					    : "24h",
	    "uid", uid, "gid", uid, "mode", ann_or(t, ANN "file-mode", mode));
	if (s != NULL && files != NULL)
		(void)json_object_set_new(s, "files", inject_file_list(files));
	if (s != NULL && notify != NULL)
		(void)json_object_set_new(
		    s, "hooks",
		    json_pack("{s:[o]}", "on_rotate", inject_notify(notify)));
	if (s != NULL && strcmp(type, "vault") == 0)
		(void)json_object_set_new(
		    s, "vault",
		    json_pack("{s:s, s:s}", "kind",
			      secret_opt(t, name, "-kind")
				  ? secret_opt(t, name, "-kind")
				  : "leased",
			      "path", path));
	return s;
}

static bool inject_notify_ok(const char *text)
{
	json_t *h = inject_notify(text);
	bool ok = h != NULL;

	json_decref(h);
	return ok;
}

static int inject_secrets(const struct inject_target *t, const char *type,
			  json_t *readers, json_t **ret, struct errmsg *err)
{
	json_t *list = json_array(), *v, *s;
	const char *key, *name;

	json_object_foreach(t->annotations, key, v)
	{
		if (!inject_is_secret_key(key, &name))
			continue;
		if (!json_is_string(v) ||
		    json_array_size(list) >= MAX_SECRETS) {
			json_decref(list);
			return errmsg_set(err, -EINVAL, "%s: %s: a path string",
					  t->where, key);
		}
		if (secret_opt(t, name, "-notify") != NULL &&
		    !inject_notify_ok(secret_opt(t, name, "-notify"))) {
			json_decref(list);
			return errmsg_set(err, -EINVAL,
					  "%s: " ANN_SECRET "%s-notify: "
					  "\"signal:SIG:PROCESS\", "
					  "\"signal:SIG:/PID/FILE\" or "
					  "\"exec:/COMMAND ARGS\"",
					  t->where, name);
		}
		s = inject_secret(t, name, json_string_value(v), type,
				  json_array_get(readers, 0),
				  json_array_size(readers) > 1 ? "0444"
							       : "0400");
		if (s == NULL || json_array_append_new(list, s) < 0) {
			json_decref(list);
			return -ENOMEM;
		}
	}
	if (json_array_size(list) == 0) {
		json_decref(list);
		return errmsg_set(err, -EINVAL,
				  "%s: no " ANN_SECRET "NAME annotation",
				  t->where);
	}
	*ret = list;
	return 0;
}

/* Compact, sorted JSON in a malloc'd string (not jansson's allocator,
 * which the daemon replaces). */
static char *inject_dump(const json_t *j)
{
	size_t n = json_dumpb(j, NULL, 0, JSON_COMPACT | JSON_SORT_KEYS);
	char *buf = n > 0 ? malloc(n + 1) : NULL;

	if (buf != NULL) {
		(void)json_dumpb(j, buf, n, JSON_COMPACT | JSON_SORT_KEYS);
		buf[n] = '\0';
	}
	return buf;
}

/* The broker's config, as it will read it from the downwardAPI file. */
static int inject_config(const struct inject_target *t, bool privileged,
			 char **ret, struct errmsg *err)
{
	const char *type = ann_or(t, ANN "backend", "vault");
	const char *mount = ann_or(t, ANN "mount-path", "/secrets");
	json_t *readers = NULL, *backend = NULL, *secrets = NULL, *cfg = NULL;
	int r;

	r = inject_readers(t, &readers, err);
	if (r == 0)
		r = inject_backend(t, type, &backend, err);
	if (r == 0)
		r = inject_secrets(t, type, readers, &secrets, err);
	if (r == 0)
		cfg = json_pack("{s:{s:s, s:O}, s:{s:s}, s:{s:b}, s:{s:o}, "
				"s:o}",
				"mount", "path", privileged ? mount : mount,
				"readers", readers, "control", "socket",
				HANDOFF_DIR "/control.sock", "audit", "stdout",
				1, "backends", "upstream", backend, "secrets",
				secrets);
	else {
		json_decref(backend);
		json_decref(secrets);
	}
	if (r == 0 && cfg != NULL && !privileged)
		(void)json_object_set_new(
		    json_object_get(cfg, "mount"), "fd_socket",
		    json_string(HANDOFF_DIR "/credbroker-fuse.sock"));
	json_decref(readers);
	if (r == 0 && cfg == NULL)
		r = -ENOMEM;
	if (r == 0) {
		*ret = inject_dump(cfg);
		r = *ret == NULL ? -ENOMEM : 0;
	}
	json_decref(cfg);
	return r;
}

/* The native sidecar: restricted, tiny, ready only once every secret is
 * in the mount, so app containers (and Jobs) start after their secrets. */
static json_t *inject_sidecar(const struct inject_target *t,
			      const struct inject_options *opt, bool privileged)
{
	json_t *c, *mounts, *sc;

	mounts = json_pack(
	    "[{s:s, s:s}, {s:s, s:s, s:b}, {s:s, s:s, s:b}]", "name",
	    "credbroker-handoff", "mountPath", HANDOFF_DIR, "name",
	    "credbroker-config", "mountPath", CONFIG_DIR, "readOnly", 1, "name",
	    "credbroker-token", "mountPath", TOKEN_DIR, "readOnly", 1);
	if (mounts != NULL && (ann(t, ANN "postgres-admin-secret") ||
			       ann(t, ANN "vault-ca-configmap")))
		(void)json_array_append_new(
		    mounts,
		    json_pack("{s:s, s:s, s:b}", "name", "credbroker-admin",
			      "mountPath", ADMIN_DIR, "readOnly", 1));
	sc = privileged
		 ? json_pack("{s:b, s:i, s:b}", "privileged", 1, "runAsUser", 0,
			     "readOnlyRootFilesystem", 1)
		 : json_pack(
		       "{s:b, s:i, s:i, s:b, s:b, s:{s:[s]}, s:{s:s}}",
		       "runAsNonRoot", 1, "runAsUser", BROKER_UID, "runAsGroup",
		       BROKER_UID, "allowPrivilegeEscalation", 0,
		       "readOnlyRootFilesystem", 1, "capabilities", "drop",
		       "ALL", "seccompProfile", "type", "RuntimeDefault");
	if (privileged && mounts != NULL)
		(void)json_array_append_new(
		    mounts, json_pack("{s:s, s:s, s:s}", "name",
				      "credbroker-secrets", "mountPath",
				      ann_or(t, ANN "mount-path", "/secrets"),
				      "mountPropagation", "Bidirectional"));
	c = json_pack(
	    "{s:s, s:s, s:s, s:[s], s:[s, s, s], s:{s:{s:[s, s, s, s]}, "
	    "s:i, s:i}, s:o, s:{s:{s:s, s:s}, s:{s:s}}, s:o}",
	    "name", BROKER_NAME, "image",
	    opt && opt->image ? opt->image : INJECT_DEFAULT_IMAGE,
	    "restartPolicy", "Always", "command", "/usr/bin/credbroker", "args",
	    "run", "--config", CONFIG_DIR "/credbroker.json", "startupProbe",
	    "exec", "command", "/usr/bin/credbroker", "--socket",
	    HANDOFF_DIR "/control.sock", "ready", "periodSeconds", 1,
	    "failureThreshold", 120, "securityContext", sc, "resources",
	    "requests", "cpu", ann_or(t, ANN "cpu", "10m"), "memory",
	    ann_or(t, ANN "memory", "16Mi"), "limits", "memory", "64Mi",
	    "volumeMounts", mounts);
	return c;
}

static json_t *inject_volumes(const struct inject_target *t, bool privileged)
{
	const char *secret = ann(t, ANN "postgres-admin-secret");
	const char *ca = ann(t, ANN "vault-ca-configmap");
	json_t *v;

	v = json_pack(
	    "[{s:s, s:{s:s, s:s}}, {s:s, s:{s:[{s:s, s:{s:s}}]}}, "
	    "{s:s, s:{s:[{s:{s:s, s:i, s:s}}]}}]",
	    "name", "credbroker-handoff", "emptyDir", "medium", "Memory",
	    "sizeLimit", "1Mi", "name", "credbroker-config", "downwardAPI",
	    "items", "path", "credbroker.json", "fieldRef", "fieldPath",
	    "metadata.annotations['" ANN "generated-config']", "name",
	    "credbroker-token", "projected", "sources", "serviceAccountToken",
	    "audience", ann_or(t, ANN "token-audience", "vault"),
	    "expirationSeconds", 600, "path", "token");
	if (v != NULL && secret != NULL)
		(void)json_array_append_new(
		    v, json_pack("{s:s, s:{s:s, s:i}}", "name",
				 "credbroker-admin", "secret", "secretName",
				 secret, "defaultMode", 0400));
	else if (v != NULL && ca != NULL)
		(void)json_array_append_new(
		    v, json_pack("{s:s, s:{s:s}}", "name", "credbroker-admin",
				 "configMap", "name", ca));
	if (v != NULL)
		(void)json_array_append_new(
		    v, privileged
			   ? json_pack("{s:s, s:{}}", "name",
				       "credbroker-secrets", "emptyDir")
			   : json_pack("{s:s, s:{s:s, s:b, s:{s:s, s:s}}}",
				       "name", "credbroker-secrets", "csi",
				       "driver", INJECT_CSI_DRIVER, "readOnly",
				       1, "volumeAttributes", "handoffVolume",
				       "credbroker-handoff", "brokerUid",
				       "65534"));
	return v;
}

/* Appends items to the array at obj.key (created when missing); prepend
 * puts them first (the sidecar starts before other init containers). */
static int inject_extend(json_t *obj, const char *key, json_t *items,
			 bool prepend)
{
	json_t *arr = json_object_get(obj, key);
	int r;

	if (items == NULL)
		return -ENOMEM;
	if (arr == NULL) {
		r = json_object_set_new(obj, key, items);
		return r < 0 ? -ENOMEM : 0;
	}
	if (!json_is_array(arr)) {
		json_decref(items);
		return -EINVAL;
	}
	if (prepend)
		r = json_array_extend(items, arr) < 0 ||
			    json_object_set(obj, key, items) < 0
			? -ENOMEM
			: 0;
	else
		r = json_array_extend(arr, items) < 0 ? -ENOMEM : 0;
	json_decref(items);
	return r;
}

/* Every app container sees the secrets, read-only (in privileged mode,
 * the broker's own mount propagates to them through the emptyDir). */
static int inject_app_mounts(const struct inject_target *t, bool privileged)
{
	const char *path = ann_or(t, ANN "mount-path", "/secrets");
	json_t *c;
	size_t i;
	int r = 0;

	json_array_foreach(json_object_get(t->spec, "containers"), i, c)
	{
		r = inject_extend(
		    c, "volumeMounts",
		    privileged
			? json_pack("[{s:s, s:s, s:b, s:s}]", "name",
				    "credbroker-secrets", "mountPath", path,
				    "readOnly", 1, "mountPropagation",
				    "HostToContainer")
			: json_pack("[{s:s, s:s, s:b}]", "name",
				    "credbroker-secrets", "mountPath", path,
				    "readOnly", 1),
		    false);
		if (r < 0)
			break;
	}
	return r;
}

static int inject_template(struct inject_target *t,
			   const struct inject_options *opt, bool *changed,
			   struct errmsg *err)
{
	const char *mode = ann_or(t, ANN "mode", "csi");
	bool privileged = strcmp(mode, "privileged") == 0;
	char *config = NULL;
	int r;

	if (strcmp(mode, "csi") != 0 && !privileged)
		return errmsg_set(err, -EINVAL,
				  "%s: " ANN "mode: \"csi\" (default) or "
				  "\"privileged\"",
				  t->where);
	r = inject_config(t, privileged, &config, err);
	if (r == 0)
		r = inject_extend(
		    t->spec, "initContainers",
		    json_pack("[o]", inject_sidecar(t, opt, privileged)), true);
	if (r == 0)
		r = inject_extend(t->spec, "volumes",
				  inject_volumes(t, privileged), false);
	if (r == 0)
		r = inject_app_mounts(t, privileged);
	if (r == 0 &&
	    (json_object_set_new(t->annotations, ANN "generated-config",
				 json_string(config)) < 0 ||
	     json_object_set_new(t->annotations, ANN "injected",
				 json_string("true")) < 0))
		r = -ENOMEM;
	free(config);
	if (r == -EINVAL && err->text[0] == '\0')
		return errmsg_set(err, r, "%s: spec is not a pod spec",
				  t->where);
	if (r == 0)
		*changed = true;
	return r;
}

static const char *inject_str(const json_t *j, const char *dflt)
{
	const char *v = json_string_value(j);

	return v != NULL ? v : dflt;
}

static bool inject_wanted(const struct inject_target *t)
{
	const char *v = ann(t, ANN "inject");
	json_t *c;
	size_t i;

	if (v == NULL || strcmp(v, "true") != 0)
		return false;
	if (ann(t, ANN "injected") != NULL)
		return false;
	json_array_foreach(json_object_get(t->spec, "initContainers"), i, c)
	{
		if (strcmp(inject_str(json_object_get(c, "name"), ""),
			   BROKER_NAME) == 0)
			return false;
	}
	return true;
}

/* The pod template of a Pod or workload: (metadata, spec). */
static int inject_find_template(json_t *obj, json_t **meta, json_t **spec)
{
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	json_t *s = json_object_get(obj, "spec"), *tmpl;
	static const char *const workloads[] = {"Deployment", "StatefulSet",
						"DaemonSet",  "ReplicaSet",
						"Job",	      NULL};
	size_t i;

	if (kind == NULL)
		return -EINVAL;
	if (strcmp(kind, "Pod") == 0) {
		*meta = obj;
		*spec = s;
		return json_is_object(s) ? 0 : -EINVAL;
	}
	if (strcmp(kind, "CronJob") == 0)
		s = json_object_get(json_object_get(s, "jobTemplate"), "spec");
	for (i = 0; strcmp(kind, "CronJob") != 0 && workloads[i]; i++)
		if (strcmp(kind, workloads[i]) == 0)
			break;
	if (strcmp(kind, "CronJob") != 0 && workloads[i] == NULL)
		return -ENOENT; /* not a kind that holds pods: untouched */
	tmpl = json_object_get(s, "template");
	*meta = tmpl;
	*spec = json_object_get(tmpl, "spec");
	return json_is_object(tmpl) && json_is_object(*spec) ? 0 : -EINVAL;
}

static int inject_one(json_t *obj, const struct inject_options *opt,
		      bool *changed, struct errmsg *err)
{
	struct inject_target t;
	json_t *meta, *md;
	char where[160];
	int r;

	(void)snprintf(where, sizeof(where), "%.40s/%.100s",
		       inject_str(json_object_get(obj, "kind"), "?"),
		       inject_str(json_object_get(
				      json_object_get(obj, "metadata"), "name"),
				  "?"));
	r = inject_find_template(obj, &meta, &t.spec);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return errmsg_set(err, -EINVAL, "%s: no pod template", where);
	md = json_object_get(meta, "metadata");
	t.annotations = json_object_get(md, "annotations");
	t.where = where;
	if (!json_is_object(t.annotations) || !inject_wanted(&t))
		return 0;
	return inject_template(&t, opt, changed, err);
}

int inject_object(json_t *obj, const struct inject_options *opt, bool *changed,
		  struct errmsg *err)
{
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	json_t *item;
	size_t i;
	int r = 0;

	*changed = false;
	if (!json_is_object(obj))
		return errmsg_set(err, -EINVAL, "not a Kubernetes object");
	if (kind == NULL || strcmp(kind, "List") != 0)
		return inject_one(obj, opt, changed, err);
	json_array_foreach(json_object_get(obj, "items"), i, item)
	{
		r = inject_one(item, opt, changed, err);
		if (r < 0)
			return errmsg_prefix(err, r, "items[%zu]", i);
	}
	return 0;
}
