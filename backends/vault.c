/* The vault backend.  Its one piece of state is the client token: the
 * scheduler thread (maintain, issue, renew) and control threads (revoke)
 * use it at once, so it lives behind a mutex and every request works on a
 * private copy.  The token and the service-account JWT exist only in
 * struct secret; bodies and responses too. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "clock.h"
#include "http.h"
#include "tokenfile.h"
#include "vault.h"
#include "vault_config.h"

#define USEC 1000000LL

struct backend {
	const struct vault_config *cfg;
	struct http_transport *http;
	unsigned char kv1_key[32]; /* HMAC key for KV v1 change detection */
	pthread_mutex_t lock;	   /* protects every field below */
	struct secret *token;	   /* NULL until the first login */
	uint64_t generation;	   /* bumps with every login */
	int64_t token_renewed;	   /* wall usec of login or renewal */
	int64_t token_expires;	   /* wall usec */
	int64_t token_ttl_s;	   /* as granted at login */
	bool token_renewable;
	bool token_capped; /* renewal hit max TTL: log in again */
	bool retired;	   /* revoke_all revoked the identity: no login
			    * until login() is called again (unfreeze) */
};

/* One request's outcome, with the body for the caller to parse. */
struct vault_reply {
	long status;
	struct secret *body;
};

/* A copy of the current token (or NULL before login) and its generation. */
static int vault_token_copy(struct backend *b, struct secret **ret,
			    uint64_t *generation)
{
	size_t len;
	void *p;
	int r = 0;

	*ret = NULL;
	pthread_mutex_lock(&b->lock);
	*generation = b->generation;
	if (b->token != NULL) {
		p = secret_expose(b->token, &len);
		r = secret_from(p, len, ret);
	}
	pthread_mutex_unlock(&b->lock);
	return r;
}

/* Sends one request to /v1/<path>.  body may be NULL; token may be NULL
 * (login).  A non-2xx status is returned in reply, not as an error. */
static int vault_send(struct backend *b, const char *method, const char *path,
		      const struct secret *token, const struct secret *body,
		      struct vault_reply *reply, struct errmsg *err)
{
	struct http_header headers[3];
	struct http_request req;
	struct http_response resp;
	char url[VAULT_MAX_PATH * 2 + 16];
	size_t n = 0;
	int r;

	(void)snprintf(url, sizeof(url), "%s/v1/%s", b->cfg->address, path);
	headers[n++] = (struct http_header){"X-Vault-Request", NULL, "true"};
	if (b->cfg->namespace_[0] != '\0')
		headers[n++] = (struct http_header){"X-Vault-Namespace", NULL,
						    b->cfg->namespace_};
	if (token != NULL)
		headers[n++] =
		    (struct http_header){"X-Vault-Token", token, NULL};
	memset(&req, 0, sizeof(req));
	req.method = method;
	req.url = url;
	req.headers = headers;
	req.header_count = n;
	req.body = body;
	req.content_type = body != NULL ? "application/json" : NULL;
	memset(&resp, 0, sizeof(resp));
	r = b->http->ops->perform(b->http, &req, &resp, err);
	if (r < 0)
		return errmsg_prefix(err, r, "vault: %s %s", method, path);
	reply->status = resp.status;
	reply->body = resp.body;
	return 0;
}

/* Turns a non-2xx reply into -errno and a message with Vault's errors. */
static int vault_status_error(const char *method, const char *path,
			      const struct vault_reply *reply,
			      struct errmsg *err)
{
	char text[256];
	size_t len = 0;
	const void *p = reply->body ? secret_expose(reply->body, &len) : "";

	vault_error_text(reply->status, p, len, text, sizeof(text));
	return errmsg_set(err, vault_status_errno(reply->status),
			  "vault: %s %s: %s", method, path, text);
}

static void vault_reply_free(struct vault_reply *reply)
{
	secret_free(reply->body);
	reply->body = NULL;
}

static int vault_login_body(const struct vault_config *c,
			    const struct secret *jwt, struct secret **ret)
{
	size_t len;
	const char *p = secret_expose(jwt, &len);
	json_t *obj = json_object();

	if (obj == NULL)
		return -ENOMEM;
	if (json_object_set_new(obj, "role", json_string(c->role)) < 0 ||
	    json_object_set_new(obj, "jwt", json_stringn(p, len)) < 0) {
		json_decref(obj);
		return -ENOMEM;
	}
	return kv_json_dump(obj, ret);
}

/* Kubernetes auth: a new token, a new identity generation. */
static int vault_login(struct backend *b, int64_t now, struct errmsg *err)
{
	const void *raw;
	struct secret *jwt = NULL, *body = NULL;
	struct vault_reply reply = {0, NULL};
	struct vault_auth auth = {NULL, 0, false};
	char path[160];
	size_t len;
	int r;

	(void)snprintf(path, sizeof(path), "auth/%s/login", b->cfg->auth_mount);
	r = token_file_read(b->cfg->token_file, "auth.token_file", &jwt, err);
	if (r == 0)
		r = vault_login_body(b->cfg, jwt, &body);
	if (r == 0)
		r = vault_send(b, "POST", path, NULL, body, &reply, err);
	if (r == 0 && reply.status / 100 != 2)
		r = vault_status_error("POST", path, &reply, err);
	if (r == 0) {
		raw = secret_expose(reply.body, &len);
		r = vault_parse_auth(raw, len, true, &auth, err);
	}
	if (r == 0 && auth.lease_duration_s <= 0)
		r = errmsg_set(err, -EPROTO, "vault: login: token without TTL");
	secret_free(jwt);
	secret_free(body);
	vault_reply_free(&reply);
	if (r < 0) {
		secret_free(auth.token);
		return r;
	}
	pthread_mutex_lock(&b->lock);
	secret_free(b->token);
	b->token = auth.token;
	b->generation++;
	b->token_renewed = now;
	b->token_ttl_s = auth.lease_duration_s;
	b->token_expires = now + auth.lease_duration_s * USEC;
	b->token_renewable = auth.renewable;
	b->token_capped = false;
	pthread_mutex_unlock(&b->lock);
	return 0;
}

/* The logins the backend starts by itself (no token yet, a 403): none
 * once revoke_all retired the identity, so a revoked broker does not
 * quietly hold a fresh token. */
static int vault_auto_login(struct backend *b, int64_t now, struct errmsg *err)
{
	bool retired;

	pthread_mutex_lock(&b->lock);
	retired = b->retired;
	pthread_mutex_unlock(&b->lock);
	if (retired)
		return errmsg_set(err, -EACCES,
				  "vault: the identity was revoked "
				  "(revoke --all); unfreeze logs in again");
	return vault_login(b, now, err);
}

/* renew-self; a grant shorter than the token's TTL means max TTL is near,
 * and the next maintain logs in again. */
static int vault_renew_self(struct backend *b, int64_t now, struct errmsg *err)
{
	const void *raw;
	static const char path[] = "auth/token/renew-self";
	struct vault_reply reply = {0, NULL};
	struct vault_auth auth = {NULL, 0, false};
	struct secret *token = NULL;
	uint64_t gen;
	size_t len;
	int r;

	/* No increment: Vault extends by the token's own TTL, capped at its
	 * max TTL. */
	r = vault_token_copy(b, &token, &gen);
	if (r == 0 && token == NULL)
		r = errmsg_set(err, -EACCES, "vault: not logged in");
	if (r == 0)
		r = vault_send(b, "POST", path, token, NULL, &reply, err);
	if (r == 0 && reply.status / 100 != 2)
		r = vault_status_error("POST", path, &reply, err);
	if (r == 0) {
		raw = secret_expose(reply.body, &len);
		r = vault_parse_auth(raw, len, false, &auth, err);
	}
	secret_free(token);
	secret_free(auth.token);
	vault_reply_free(&reply);
	if (r < 0)
		return r;
	pthread_mutex_lock(&b->lock);
	if (b->generation == gen) {
		b->token_renewed = now;
		b->token_expires = now + auth.lease_duration_s * USEC;
		b->token_capped = auth.lease_duration_s < b->token_ttl_s;
	}
	pthread_mutex_unlock(&b->lock);
	return 0;
}

static int vault_maintain(struct backend *b, int64_t now,
			  struct backend_identity *out, struct errmsg *err)
{
	int64_t renew_at;
	bool login, renew;
	int r = 0;

	pthread_mutex_lock(&b->lock);
	if (b->retired) {
		out->generation = b->generation;
		out->expires_wall = LEASE_NO_EXPIRY;
		out->next_wall = now + 3600 * USEC;
		pthread_mutex_unlock(&b->lock);
		return 0;
	}
	renew_at =
	    b->token_renewed + (b->token_expires - b->token_renewed) * 2 / 3;
	login = b->token == NULL || now >= b->token_expires ||
		(now >= renew_at && (b->token_capped || !b->token_renewable));
	renew = !login && now >= renew_at;
	pthread_mutex_unlock(&b->lock);
	if (renew) {
		r = vault_renew_self(b, now, err);
		/* A token Vault no longer honours: start over. */
		login = r == -EACCES;
	}
	if (login)
		r = vault_auto_login(b, now, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&b->lock);
	out->generation = b->generation;
	out->expires_wall = b->token_expires;
	out->next_wall =
	    b->token_renewed + (b->token_expires - b->token_renewed) * 2 / 3;
	if (out->next_wall <= now)
		out->next_wall = now + USEC;
	pthread_mutex_unlock(&b->lock);
	return 0;
}

/* An authenticated request; a 403 (token revoked behind our back) logs in
 * again once and retries, so a broken token does not cost a whole backoff.
 * *generation receives the identity the request ran under. */
static int vault_call(struct backend *b, const char *method, const char *path,
		      const struct secret *body, struct vault_reply *reply,
		      uint64_t *generation, struct errmsg *err)
{
	struct secret *token = NULL;
	int attempt, r = 0;

	for (attempt = 0; attempt < 2; attempt++) {
		if (attempt > 0)
			r = vault_auto_login(b, clock_wall(clock_system()),
					     err);
		if (r == 0)
			r = vault_token_copy(b, &token, generation);
		if (r == 0 && token == NULL)
			r = vault_auto_login(b, clock_wall(clock_system()),
					     err);
		if (r == 0 && token == NULL)
			r = vault_token_copy(b, &token, generation);
		if (r == 0)
			r = vault_send(b, method, path, token, body, reply,
				       err);
		secret_free(token);
		token = NULL;
		if (r < 0 || reply->status != 403 || attempt > 0)
			break;
		vault_reply_free(reply);
	}
	if (r == 0 && reply->status / 100 != 2) {
		r = vault_status_error(method, path, reply, err);
		vault_reply_free(reply);
	}
	return r;
}

/* The request path of a secret: KV v2 reads <mount>/data/<path>. */
static void vault_secret_path(const struct vault_secret_config *sc, char *buf,
			      size_t size)
{
	if (sc->kind == VAULT_KV2 && sc->version > 0)
		(void)snprintf(buf, size, "%s/data/%s?version=%lld", sc->mount,
			       sc->path, (long long)sc->version);
	else if (sc->kind == VAULT_KV2)
		(void)snprintf(buf, size, "%s/data/%s", sc->mount, sc->path);
	else
		(void)snprintf(buf, size, "%s", sc->path);
}

/* KV v1 has no version: a keyed hash of the values stands in for one, so
 * an unchanged value is not republished.  Keyed with a per-process random
 * key so the id (which is logged) reveals nothing about the values. */
static void vault_kv1_version(const struct backend *b, const struct kv *kv,
			      char *buf, size_t size)
{
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
	    OSSL_PARAM_construct_end(),
	};
	unsigned char mac[EVP_MAX_MD_SIZE];
	EVP_MAC_CTX *ctx = NULL;
	EVP_MAC *hmac = NULL;
	size_t i, len, maclen = 0;
	const void *p;
	int ok;

	buf[0] = '\0';
	hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	ctx = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
	ok = ctx != NULL &&
	     EVP_MAC_init(ctx, b->kv1_key, sizeof(b->kv1_key), params) == 1;
	for (i = 0; ok && i < kv->count; i++) {
		p = secret_expose(kv->items[i].value, &len);
		/* Key and value NUL-separated, so no two kvs hash alike. */
		ok =
		    EVP_MAC_update(ctx, (const unsigned char *)kv->items[i].key,
				   strlen(kv->items[i].key) + 1) == 1 &&
		    EVP_MAC_update(ctx, p, len) == 1 &&
		    EVP_MAC_update(ctx, (const unsigned char *)"", 1) == 1;
	}
	if (ok && EVP_MAC_final(ctx, mac, &maclen, sizeof(mac)) == 1 &&
	    maclen >= 8)
		(void)snprintf(buf, size, "%02x%02x%02x%02x%02x%02x%02x%02x",
			       mac[0], mac[1], mac[2], mac[3], mac[4], mac[5],
			       mac[6], mac[7]);
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(hmac);
}

static int vault_fill_lease(struct backend *b,
			    const struct vault_secret_config *sc,
			    const struct backend_issue_request *req,
			    const struct vault_secret *sec, uint64_t gen,
			    struct lease *lease)
{
	char version[24];

	memset(lease, 0, sizeof(*lease));
	lease->issued_wall = req->now_wall;
	lease->identity = gen;
	if (sc->kind == VAULT_LEASED) {
		(void)snprintf(lease->id, sizeof(lease->id), "%s",
			       sec->lease_id);
		lease->expires_wall =
		    req->now_wall + sec->lease_duration_s * USEC;
		/* Vault does not say the max TTL up front: a renewal that
		 * grants less than asked reveals it (see vault_renew). */
		lease->max_wall = LEASE_NO_EXPIRY;
		lease->renewable = sec->renewable;
		return 0;
	}
	if (sc->kind == VAULT_KV2)
		(void)snprintf(version, sizeof(version), "v%lld",
			       (long long)sec->kv_version);
	else
		vault_kv1_version(b, &sec->values, version, sizeof(version));
	if (snprintf(lease->id, sizeof(lease->id), "%s%s%s@%s",
		     sc->kind == VAULT_KV2 ? sc->mount : "",
		     sc->kind == VAULT_KV2 ? "/" : "", sc->path,
		     version) >= (int)sizeof(lease->id))
		return -ENAMETOOLONG;
	lease->expires_wall = LEASE_NO_EXPIRY;
	lease->max_wall = LEASE_NO_EXPIRY;
	lease->renewable = false;
	return 0;
}

/* host/port/dbname from the secret's config, for the dsn/env files of
 * database credentials. */
static int vault_add_connection(const struct vault_secret_config *sc,
				struct kv *kv)
{
	int r = 0;

	if (sc->host[0] != '\0')
		r = kv_set_str(kv, "host", sc->host);
	if (r == 0 && sc->port[0] != '\0')
		r = kv_set_str(kv, "port", sc->port);
	if (r == 0 && sc->dbname[0] != '\0')
		r = kv_set_str(kv, "dbname", sc->dbname);
	return r;
}

static int vault_issue(struct backend *b,
		       const struct backend_issue_request *req,
		       struct lease *lease, struct kv *values,
		       struct errmsg *err)
{
	const void *raw;
	const struct vault_secret_config *sc = req->secret_cfg;
	struct vault_reply reply = {0, NULL};
	struct vault_secret sec;
	char path[VAULT_MAX_PATH * 2];
	uint64_t gen = 0;
	size_t len;
	int r;

	memset(&sec, 0, sizeof(sec));
	vault_secret_path(sc, path, sizeof(path));
	r = vault_call(b, sc->kind == VAULT_LEASED ? sc->method : "GET", path,
		       NULL, &reply, &gen, err);
	if (r == 0) {
		raw = secret_expose(reply.body, &len);
		r = vault_parse_secret(raw, len, sc->kind, &sec, err);
	}
	vault_reply_free(&reply);
	if (r == 0)
		r = vault_add_connection(sc, &sec.values);
	if (r == 0)
		r = vault_fill_lease(b, sc, req, &sec, gen, lease);
	if (r < 0) {
		kv_clear(&sec.values);
		return r == -EPROTO ? errmsg_prefix(err, r, "vault: %s", path)
				    : r;
	}
	*values = sec.values;
	return 0;
}

static int vault_lease_body(const char *lease_id, int64_t increment,
			    struct secret **ret)
{
	if (increment > 0)
		return kv_json_dump(json_pack("{s:s, s:I}", "lease_id",
					      lease_id, "increment",
					      (json_int_t)increment),
				    ret);
	return kv_json_dump(json_pack("{s:s}", "lease_id", lease_id), ret);
}

/* Vault answers 400 with one of these for a lease it does not know (or
 * no longer will extend); any other 400 ("failed to revoke entry", a
 * proxy's refusal) is an error, not proof that the lease is gone. */
static bool vault_lease_unknown(int r, const struct errmsg *err)
{
	return r == -EINVAL && err != NULL &&
	       (strstr(err->text, "lease not found") != NULL ||
		strstr(err->text, "invalid lease") != NULL ||
		strstr(err->text, "lease expired") != NULL);
}

static int vault_renew(struct backend *b, const void *secret_cfg,
		       struct lease *lease, int64_t want, struct errmsg *err)
{
	const void *raw;
	static const char path[] = "sys/leases/renew";
	struct vault_reply reply = {0, NULL};
	int64_t now = clock_wall(clock_system()), inc, granted = 0;
	struct secret *body = NULL;
	bool renewable = false;
	uint64_t gen;
	size_t len;
	int r;

	inc = (want - now + USEC - 1) / USEC;
	if (inc < 1)
		inc = 1;
	r = vault_lease_body(lease->id, inc, &body);
	if (r == 0)
		r = vault_call(b, "PUT", path, body, &reply, &gen, err);
	if (r == 0) {
		raw = secret_expose(reply.body, &len);
		r = vault_parse_renew(raw, len, &granted, &renewable, err);
	}
	secret_free(body);
	vault_reply_free(&reply);
	if (vault_lease_unknown(r, err))
		return errmsg_set(err, -ENOENT, "vault: lease %s is gone",
				  lease->id);
	if (r < 0)
		return r;
	lease->expires_wall = now + granted * USEC;
	lease->renewable = renewable;
	/* Less than asked: the lease reached its max TTL. */
	if (granted + 1 < inc)
		lease->max_wall = lease->expires_wall;
	return 0;
}

static bool vault_is_kv(const struct lease *lease)
{
	return lease->expires_wall == LEASE_NO_EXPIRY;
}

/* PUT {"lease_id"} to a sys/leases endpoint; the reply is not needed. */
static int vault_lease_put(struct backend *b, const char *path,
			   const struct lease *lease, struct errmsg *err)
{
	struct vault_reply reply = {0, NULL};
	struct secret *body = NULL;
	uint64_t gen;
	int r;

	r = vault_lease_body(lease->id, 0, &body);
	if (r == 0)
		r = vault_call(b, "PUT", path, body, &reply, &gen, err);
	secret_free(body);
	vault_reply_free(&reply);
	return r;
}

static int vault_revoke(struct backend *b, const struct lease *lease,
			struct errmsg *err)
{
	int r;

	/* A KV value has no lease: dropping it from memory is all. */
	if (vault_is_kv(lease))
		return 0;
	r = vault_lease_put(b, "sys/leases/revoke", lease, err);
	return vault_lease_unknown(r, err) ? 0 : r;
}

static int vault_check(struct backend *b, const struct lease *lease,
		       struct errmsg *err)
{
	int r;

	if (vault_is_kv(lease))
		return 0;
	r = vault_lease_put(b, "sys/leases/lookup", lease, err);
	if (vault_lease_unknown(r, err))
		return errmsg_set(err, -ENOENT,
				  "vault no longer knows lease %s", lease->id);
	return r;
}

/* A lease lookup must say Vault no longer knows the lease. */
static int vault_verify(struct backend *b, const struct lease *lease,
			const struct kv *values, char *detail,
			struct errmsg *err)
{
	int r;

	if (vault_is_kv(lease)) {
		(void)snprintf(detail, ERRMSG_MAX,
			       "a KV value: nothing upstream to revoke");
		return 0;
	}
	r = vault_check(b, lease, err);
	if (r == 0)
		return errmsg_set(err, -EEXIST, "vault still knows lease %s",
				  lease->id);
	if (r != -ENOENT)
		return r;
	(void)snprintf(detail, ERRMSG_MAX,
		       "sys/leases/lookup: the lease is unknown to Vault");
	return 0;
}

/* revoke-self revokes the token and every lease created with it.  The
 * identity is retired first, so no login can start meanwhile; one that
 * was already under way is revoked too. */
static int vault_revoke_self(struct backend *b, struct errmsg *err)
{
	static const char path[] = "auth/token/revoke-self";
	struct vault_reply reply = {0, NULL};
	struct secret *token = NULL;
	uint64_t gen;
	int r;

	r = vault_token_copy(b, &token, &gen);
	if (r < 0 || token == NULL)
		return r < 0 ? r : 1;
	r = vault_send(b, "POST", path, token, NULL, &reply, err);
	if (r == 0 && reply.status / 100 != 2)
		r = vault_status_error("POST", path, &reply, err);
	secret_free(token);
	vault_reply_free(&reply);
	if (r < 0)
		return r;
	pthread_mutex_lock(&b->lock);
	if (b->generation == gen) {
		secret_free(b->token);
		b->token = NULL;
	}
	r = b->token == NULL ? 1 : 0;
	pthread_mutex_unlock(&b->lock);
	return r;
}

static int vault_revoke_all(struct backend *b, struct errmsg *err)
{
	int attempt, r = 0;

	pthread_mutex_lock(&b->lock);
	b->retired = true;
	pthread_mutex_unlock(&b->lock);
	for (attempt = 0; attempt < 3; attempt++) {
		r = vault_revoke_self(b, err);
		if (r != 0)
			break;
	}
	return r < 0 ? r : 0;
}

int vault_backend_create_with(const struct vault_config *cfg,
			      struct http_transport *http, struct backend **ret)
{
	struct backend *b;

	b = calloc(1, sizeof(*b));
	if (b == NULL) {
		http->ops->destroy(http);
		return -ENOMEM;
	}
	b->cfg = cfg;
	b->http = http;
	if (RAND_bytes(b->kv1_key, sizeof(b->kv1_key)) != 1) {
		http->ops->destroy(http);
		free(b);
		return -EIO;
	}
	pthread_mutex_init(&b->lock, NULL);
	*ret = b;
	return 0;
}

static int vault_create(const void *cfg, struct backend **ret)
{
	const struct vault_config *c = cfg;
	struct http_transport *http = NULL;
	struct http_config hc;
	struct errmsg err;
	int r;

	memset(&hc, 0, sizeof(hc));
	hc.connect_timeout_usec = c->connect_timeout_usec;
	hc.total_timeout_usec = c->request_timeout_usec;
	hc.max_body = c->max_response_bytes;
	hc.tls.ca_file = c->ca_file[0] ? c->ca_file : NULL;
	hc.tls.ca_dir = c->ca_dir[0] ? c->ca_dir : NULL;
	hc.tls.cert_file = c->cert_file[0] ? c->cert_file : NULL;
	hc.tls.key_file = c->key_file[0] ? c->key_file : NULL;
	hc.tls.pinned_pubkey =
	    c->pinned_public_key[0] ? c->pinned_public_key : NULL;
	hc.tls.server_name = c->server_name[0] ? c->server_name : NULL;
	r = http_curl_new(&hc, &http, &err);
	if (r < 0)
		return r;
	return vault_backend_create_with(c, http, ret);
}

/* An explicit login (start, unfreeze) also lifts a retirement. */
static int vault_login_op(struct backend *b, struct errmsg *err)
{
	pthread_mutex_lock(&b->lock);
	b->retired = false;
	pthread_mutex_unlock(&b->lock);
	return vault_login(b, clock_wall(clock_system()), err);
}

static void vault_destroy(struct backend *b)
{
	if (b == NULL)
		return;
	secret_free(b->token);
	b->http->ops->destroy(b->http);
	pthread_mutex_destroy(&b->lock);
	explicit_bzero(b->kv1_key, sizeof(b->kv1_key));
	free(b);
}

/* One file per key of the data, and all of it as JSON. */
static const char *const vault_default_files[] = {"*", "json", NULL};

static const struct render_env_name vault_env_names[] = {
    {"username", "PGUSER"}, {"password", "PGPASSWORD"}, {"host", "PGHOST"},
    {"port", "PGPORT"},	    {"dbname", "PGDATABASE"},	{NULL, NULL},
};

const struct backend_ops vault_backend_ops = {
    .type = "vault",
    .default_files = vault_default_files,
    .env_names = vault_env_names,
    .parse_config = vault_config_parse,
    .free_config = vault_config_free,
    .parse_secret_config = vault_secret_config_parse,
    .free_secret_config = vault_secret_config_free,
    .create = vault_create,
    .login = vault_login_op,
    .issue = vault_issue,
    .renew = vault_renew,
    .revoke = vault_revoke,
    .maintain = vault_maintain,
    .check = vault_check,
    .verify = vault_verify,
    .revoke_all = vault_revoke_all,
    .destroy = vault_destroy,
};
