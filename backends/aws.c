/* The aws backend.  Its one piece of shared state is its own STS session
 * (the keys it signs Secrets Manager and KMS calls with): the scheduler
 * thread and control threads use it at once, so it lives behind a mutex
 * and every request signs with a private copy. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "aws.h"
#include "aws_api.h"
#include "aws_config.h"
#include "http.h"
#include "clock.h"
#include "sigv4.h"
#include "tokenfile.h"

#define USEC 1000000LL
#define AWS_MAX_HOST 200
#define AWS_AUTH_MAX 1024

struct backend {
	const struct aws_config *cfg;
	struct http_transport *http;
	struct sigv4_signer *signer;
	pthread_mutex_t lock;	  /* protects every field below */
	struct aws_creds session; /* access_key_id NULL until login */
	int64_t session_issued;	  /* wall usec */
	uint64_t generation;	  /* bumps with every login */
	uint64_t issued;	  /* credentials handed out, for lease ids */
	bool retired; /* revoke_all dropped the session: no login until
		       * login() is called again (unfreeze) */
};

/* One service's endpoint and what SigV4 and JSON 1.1 need for it. */
struct aws_service {
	const char *name;   /* signing name: "secretsmanager", "kms" */
	const char *target; /* X-Amz-Target */
	const char *url;
};

static int64_t aws_now(void)
{
	return clock_wall(clock_system());
}

/* The Host header a request to url carries: what follows "https://"
 * (the config allows no path), sent explicitly so that what is signed is
 * what is sent. */
static void aws_host_of(const char *url, char *buf, size_t size)
{
	(void)snprintf(buf, size, "%s", url + strlen("https://"));
}

static int aws_send(struct backend *b, const char *url,
		    const struct http_header *headers, size_t count,
		    const struct secret *body, const char *content_type,
		    struct http_response *resp, struct errmsg *err)
{
	struct http_request req;

	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.url = url;
	req.headers = headers;
	req.header_count = count;
	req.body = body;
	req.content_type = content_type;
	memset(resp, 0, sizeof(*resp));
	return b->http->ops->perform(b->http, &req, resp, err);
}

/* AssumeRoleWithWebIdentity: unsigned, the token is the credential. */
static int aws_assume(struct backend *b, const char *role_arn,
		      const char *session_name, uint64_t duration_usec,
		      struct aws_creds *out, struct errmsg *err)
{
	static const char form[] = "application/x-www-form-urlencoded; "
				   "charset=utf-8";
	struct http_header headers[1] = {{"Accept", NULL, "text/xml"}};
	struct http_response resp = {0, NULL};
	struct secret *jwt = NULL, *body = NULL;
	const void *raw;
	size_t len;
	int r;

	r = token_file_read(b->cfg->token_file, "token_file", &jwt, err);
	if (r == 0)
		r = aws_sts_form(role_arn, session_name, duration_usec / USEC,
				 jwt, &body);
	if (r == 0)
		r = aws_send(b, b->cfg->sts_endpoint, headers, 1, body, form,
			     &resp, err);
	if (r == 0) {
		raw = secret_expose(resp.body, &len);
		r = resp.status == 200
			? aws_sts_parse(raw, len, out, err)
			: aws_error(resp.status, raw, len, true, err);
	}
	secret_free(jwt);
	secret_free(body);
	secret_free(resp.body);
	if (r < 0)
		return errmsg_prefix(
		    err, r, "aws: sts AssumeRoleWithWebIdentity %s", role_arn);
	return 0;
}

/* The backend's own session: a new one is a new identity generation. */
static int aws_login(struct backend *b, struct errmsg *err)
{
	struct aws_creds creds;
	int64_t now = aws_now();
	bool retired;
	int r;

	pthread_mutex_lock(&b->lock);
	retired = b->retired;
	pthread_mutex_unlock(&b->lock);
	if (retired)
		return errmsg_set(err, -EACCES,
				  "aws: the session was dropped (revoke "
				  "--all); unfreeze assumes the role again");
	r = aws_assume(b, b->cfg->role_arn, b->cfg->session_name,
		       b->cfg->session_duration_usec, &creds, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&b->lock);
	aws_creds_clear(&b->session);
	b->session = creds;
	b->session_issued = now;
	b->generation++;
	pthread_mutex_unlock(&b->lock);
	return 0;
}

static int aws_login_op(struct backend *b, struct errmsg *err)
{
	pthread_mutex_lock(&b->lock);
	b->retired = false;
	pthread_mutex_unlock(&b->lock);
	return aws_login(b, err);
}

/* A NUL-terminated copy of the session (secret_from maps at least one
 * byte more than it copies, all zero), or -ENOKEY before login. */
static int aws_session_copy(struct backend *b, struct aws_creds *out)
{
	const struct aws_creds *s = &b->session;
	size_t len;
	void *p;
	int r = -ENOKEY;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&b->lock);
	if (s->access_key_id != NULL) {
		p = secret_expose(s->access_key_id, &len);
		r = secret_from(p, len, &out->access_key_id);
		p = secret_expose(s->secret_access_key, &len);
		if (r == 0)
			r = secret_from(p, len, &out->secret_access_key);
		p = secret_expose(s->session_token, &len);
		if (r == 0)
			r = secret_from(p, len, &out->session_token);
		out->expires_wall = s->expires_wall;
	}
	pthread_mutex_unlock(&b->lock);
	if (r < 0)
		aws_creds_clear(out);
	return r;
}

static void aws_amz_date(char *buf, size_t size)
{
	time_t t = (time_t)(aws_now() / USEC);
	struct tm tm;

	(void)gmtime_r(&t, &tm);
	(void)strftime(buf, size, "%Y%m%dT%H%M%SZ", &tm);
}

/* One JSON 1.1 call signed with session. */
static int aws_signed_once(struct backend *b, const struct aws_service *svc,
			   const struct aws_creds *session,
			   const struct secret *body,
			   struct http_response *resp, struct errmsg *err)
{
	static const char json11[] = "application/x-amz-json-1.1";
	const char *token = secret_expose(session->session_token, NULL);
	char host[AWS_MAX_HOST], date[20], auth[AWS_AUTH_MAX];
	struct sigv4_header signed_headers[5];
	struct http_header headers[5];
	struct sigv4_request req;
	struct sigv4_key key;
	size_t body_len;
	const void *raw = secret_expose(body, &body_len);
	int r;

	aws_host_of(svc->url, host, sizeof(host));
	aws_amz_date(date, sizeof(date));
	signed_headers[0] = (struct sigv4_header){"Content-Type", json11};
	signed_headers[1] = (struct sigv4_header){"Host", host};
	signed_headers[2] = (struct sigv4_header){"X-Amz-Date", date};
	signed_headers[3] =
	    (struct sigv4_header){"X-Amz-Security-Token", token};
	signed_headers[4] = (struct sigv4_header){"X-Amz-Target", svc->target};
	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.path = "/";
	req.query = "";
	req.headers = signed_headers;
	req.header_count = 5;
	req.body = raw;
	req.body_len = body_len;
	key.access_key_id = secret_expose(session->access_key_id, NULL);
	key.secret_access_key = session->secret_access_key;
	r = sigv4_sign(b->signer, &req, date, b->cfg->region, svc->name, &key,
		       auth, sizeof(auth), err);
	if (r < 0)
		return r;
	headers[0] = (struct http_header){"Host", NULL, host};
	headers[1] = (struct http_header){"X-Amz-Date", NULL, date};
	headers[2] = (struct http_header){"X-Amz-Target", NULL, svc->target};
	headers[3] = (struct http_header){"X-Amz-Security-Token",
					  session->session_token, NULL};
	headers[4] = (struct http_header){"Authorization", NULL, auth};
	r = aws_send(b, svc->url, headers, 5, body, json11, resp, err);
	secret_wipe(auth, sizeof(auth));
	return r;
}

/* A signed call; a session AWS calls expired or unknown is replaced once
 * and the call retried, so a stale session does not cost a backoff. */
static int aws_signed_call(struct backend *b, const struct aws_service *svc,
			   const struct secret *body, struct secret **reply,
			   struct errmsg *err)
{
	struct http_response resp = {0, NULL};
	struct aws_creds session;
	const void *raw;
	int attempt, r = 0;
	size_t len;

	for (attempt = 0; attempt < 2; attempt++) {
		r = aws_session_copy(b, &session);
		if (r == -ENOKEY)
			r = aws_login(b, err);
		if (r == 0 && session.access_key_id == NULL)
			r = aws_session_copy(b, &session);
		if (r == 0)
			r = aws_signed_once(b, svc, &session, body, &resp, err);
		aws_creds_clear(&session);
		if (r < 0 || resp.status == 200)
			break;
		raw = secret_expose(resp.body, &len);
		r = aws_error(resp.status, raw, len, false, err);
		secret_free(resp.body);
		resp.body = NULL;
		if (r != -EKEYEXPIRED || attempt > 0)
			break;
		r = aws_login(b, err);
		if (r < 0)
			break;
	}
	if (r < 0) {
		secret_free(resp.body);
		/* Expired and still refused after a fresh session: a refusal,
		 * not a reason to retry at once. */
		return errmsg_prefix(err, r == -EKEYEXPIRED ? -EACCES : r,
				     "aws: %s", svc->target);
	}
	*reply = resp.body;
	return 0;
}

/* Kind "credentials": a session for the app, of its own. */
static int aws_issue_credentials(struct backend *b,
				 const struct aws_secret_config *sc,
				 const struct backend_issue_request *req,
				 struct lease *lease, struct kv *values,
				 struct errmsg *err)
{
	const char *role = sc->role_arn[0] ? sc->role_arn : b->cfg->role_arn;
	const char *session_name =
	    sc->session_name[0] ? sc->session_name : b->cfg->session_name;
	uint64_t duration = req->ttl_usec;
	const char *role_name = strrchr(role, '/') + 1;
	struct aws_creds creds;
	char expiration[40];
	uint64_t seq;
	size_t len;
	void *p;
	int r;

	/* The secret's ttl, within what STS accepts. */
	if (duration < AWS_MIN_SESSION)
		duration = AWS_MIN_SESSION;
	if (duration > AWS_MAX_SESSION)
		duration = AWS_MAX_SESSION;
	r = aws_assume(b, role, session_name, duration, &creds, err);
	if (r < 0)
		return r;
	if (creds.expires_wall <= req->now_wall) {
		aws_creds_clear(&creds);
		return errmsg_set(err, -EPROTO,
				  "aws: sts granted keys that have already "
				  "expired (clock skew?)");
	}
	clock_format_rfc3339(creds.expires_wall, expiration,
			     sizeof(expiration));
	p = secret_expose(creds.access_key_id, &len);
	r = kv_set(values, "access_key_id", p, len);
	p = secret_expose(creds.secret_access_key, &len);
	if (r == 0)
		r = kv_set(values, "secret_access_key", p, len);
	p = secret_expose(creds.session_token, &len);
	if (r == 0)
		r = kv_set(values, "session_token", p, len);
	if (r == 0)
		r = kv_set_str(values, "expiration", expiration);
	if (r == 0)
		r = kv_set_str(values, "region", b->cfg->region);
	pthread_mutex_lock(&b->lock);
	seq = ++b->issued;
	pthread_mutex_unlock(&b->lock);
	/* The lease id is logged and audited: role, session and a count,
	 * never the access key id. */
	(void)snprintf(lease->id, sizeof(lease->id), "sts:%.60s/%.40s#%llu",
		       role_name, session_name, (unsigned long long)seq);
	lease->issued_wall = req->now_wall;
	lease->expires_wall = creds.expires_wall;
	lease->max_wall = creds.expires_wall;
	lease->renewable = false;
	aws_creds_clear(&creds);
	if (r < 0)
		kv_clear(values);
	return r;
}

/* A KMS blob never changes: a digest of it stands for its version. */
static void aws_kms_version(const struct aws_secret_config *sc, char *buf,
			    size_t size)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (EVP_Digest(sc->ciphertext, strlen(sc->ciphertext), md, &n,
		       EVP_sha256(), NULL) != 1 ||
	    n < 8)
		memset(md, 0, 8);
	(void)snprintf(buf, size, "kms:%02x%02x%02x%02x%02x%02x%02x%02x", md[0],
		       md[1], md[2], md[3], md[4], md[5], md[6], md[7]);
}

static int aws_issue_polled(struct backend *b,
			    const struct aws_secret_config *sc,
			    const struct backend_issue_request *req,
			    struct lease *lease, struct kv *values,
			    struct errmsg *err)
{
	const struct aws_service sm = {"secretsmanager",
				       "secretsmanager.GetSecretValue",
				       b->cfg->secretsmanager_endpoint};
	const struct aws_service kms = {"kms", "TrentService.Decrypt",
					b->cfg->kms_endpoint};
	bool is_sm = sc->kind == AWS_SECRETSMANAGER;
	struct secret *body = NULL, *reply = NULL;
	char version[LEASE_MAX_ID - 4];
	const void *raw;
	size_t len;
	int r;

	r = is_sm ? aws_sm_request(sc, &body) : aws_kms_request(sc, &body);
	if (r == 0)
		r = aws_signed_call(b, is_sm ? &sm : &kms, body, &reply, err);
	if (r == 0) {
		raw = secret_expose(reply, &len);
		r = is_sm ? aws_sm_parse(raw, len, values, version,
					 sizeof(version), err)
			  : aws_kms_parse(sc, raw, len, values, err);
	}
	secret_free(body);
	secret_free(reply);
	if (r < 0)
		return r;
	if (is_sm)
		(void)snprintf(lease->id, sizeof(lease->id), "sm:%s", version);
	else
		aws_kms_version(sc, lease->id, sizeof(lease->id));
	lease->issued_wall = req->now_wall;
	lease->expires_wall = LEASE_NO_EXPIRY;
	lease->max_wall = LEASE_NO_EXPIRY;
	lease->renewable = false;
	return 0;
}

static int aws_issue(struct backend *b, const struct backend_issue_request *req,
		     struct lease *lease, struct kv *values, struct errmsg *err)
{
	const struct aws_secret_config *sc = req->secret_cfg;

	memset(lease, 0, sizeof(*lease));
	if (sc->kind == AWS_CREDENTIALS)
		return aws_issue_credentials(b, sc, req, lease, values, err);
	return aws_issue_polled(b, sc, req, lease, values, err);
}

/* STS keys cannot be extended: the broker issues new ones instead. */
static int aws_renew(struct backend *b, const void *secret_cfg,
		     struct lease *lease, int64_t want, struct errmsg *err)
{
	(void)b;
	(void)secret_cfg;
	(void)lease;
	(void)want;
	return errmsg_set(err, -ENOTSUP, "aws: keys cannot be renewed");
}

/* Nothing to call: AWS has no revocation of one session's keys, and a
 * Secrets Manager or KMS value is the account's, not ours to destroy.  The
 * broker drops the values from memory and the mount. */
static int aws_revoke(struct backend *b, const struct lease *lease,
		      struct errmsg *err)
{
	(void)b;
	(void)lease;
	(void)err;
	return 0;
}

/* revoke --verify cannot prove STS keys dead; the incident record says
 * what the responder does instead. */
static int aws_verify(struct backend *b, const struct lease *lease,
		      const struct kv *values, char *detail, struct errmsg *err)
{
	char issued[40];

	(void)b;
	(void)values;
	if (strncmp(lease->id, "sts:", 4) != 0)
		return errmsg_set(err, -ENOTSUP,
				  "aws: a Secrets Manager or KMS value is "
				  "rotated in the account, not revoked here");
	clock_format_rfc3339(lease->issued_wall, issued, sizeof(issued));
	(void)snprintf(detail, ERRMSG_MAX,
		       "keys dropped; AWS cannot revoke them: deny the role "
		       "sessions with aws:TokenIssueTime before %s",
		       issued);
	return errmsg_set(err, -ENOTSUP, "%s", detail);
}

static int aws_maintain(struct backend *b, int64_t now,
			struct backend_identity *out, struct errmsg *err)
{
	int64_t refresh_at;
	bool login;
	int r = 0;

	pthread_mutex_lock(&b->lock);
	refresh_at = b->session_issued +
		     (b->session.expires_wall - b->session_issued) * 2 / 3;
	login = !b->retired &&
		(b->session.access_key_id == NULL || now >= refresh_at);
	pthread_mutex_unlock(&b->lock);
	if (login)
		r = aws_login(b, err);
	if (r < 0)
		return r;
	pthread_mutex_lock(&b->lock);
	out->generation = b->generation;
	out->expires_wall =
	    b->retired ? LEASE_NO_EXPIRY : b->session.expires_wall;
	out->next_wall =
	    b->retired
		? now + 3600 * USEC
		: b->session_issued +
		      (b->session.expires_wall - b->session_issued) * 2 / 3;
	if (out->next_wall <= now)
		out->next_wall = now + USEC;
	pthread_mutex_unlock(&b->lock);
	return 0;
}

static int aws_revoke_all(struct backend *b, struct errmsg *err)
{
	(void)err;
	pthread_mutex_lock(&b->lock);
	aws_creds_clear(&b->session);
	b->retired = true;
	pthread_mutex_unlock(&b->lock);
	return 0;
}

/* The backend owns http from the call on, also on failure. */
static int aws_backend_create_with(const struct aws_config *cfg,
				   struct http_transport *http,
				   struct backend **ret)
{
	struct backend *b = calloc(1, sizeof(*b));
	int r = b == NULL ? -ENOMEM : sigv4_signer_new(&b->signer);

	if (r < 0) {
		free(b);
		http->ops->destroy(http);
		return r;
	}
	b->cfg = cfg;
	b->http = http;
	pthread_mutex_init(&b->lock, NULL);
	*ret = b;
	return 0;
}

static int aws_create(const void *cfg, struct backend **ret)
{
	const struct aws_config *c = cfg;
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
	r = http_curl_new(&hc, &http, &err);
	if (r < 0)
		return r;
	return aws_backend_create_with(c, http, ret);
}

static void aws_destroy(struct backend *b)
{
	if (b == NULL)
		return;
	aws_creds_clear(&b->session);
	sigv4_signer_free(b->signer);
	b->http->ops->destroy(b->http);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

static const char *const aws_credentials_files[] = {
    "credentials", "credential_process", "env", NULL};
static const char *const aws_polled_files[] = {"*", NULL};

static const char *const *aws_secret_files(const void *secret_cfg)
{
	const struct aws_secret_config *sc = secret_cfg;

	return sc->kind == AWS_CREDENTIALS ? aws_credentials_files
					   : aws_polled_files;
}

static const struct render_env_name aws_env_names[] = {
    {"access_key_id", "AWS_ACCESS_KEY_ID"},
    {"secret_access_key", "AWS_SECRET_ACCESS_KEY"},
    {"session_token", "AWS_SESSION_TOKEN"},
    {"expiration", "AWS_CREDENTIAL_EXPIRATION"},
    {"region", "AWS_REGION"},
    {NULL, NULL},
};

const struct backend_ops aws_backend_ops = {
    .type = "aws",
    .default_files = aws_polled_files,
    .secret_files = aws_secret_files,
    .env_names = aws_env_names,
    .parse_config = aws_config_parse,
    .free_config = aws_config_free,
    .parse_secret_config = aws_secret_config_parse,
    .free_secret_config = aws_secret_config_free,
    .create = aws_create,
    .login = aws_login_op,
    .issue = aws_issue,
    .renew = aws_renew,
    .revoke = aws_revoke,
    .maintain = aws_maintain,
    .verify = aws_verify,
    .revoke_all = aws_revoke_all,
    .destroy = aws_destroy,
};
