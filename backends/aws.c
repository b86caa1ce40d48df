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
/* How soon a refused session may make the backend assume its role again.
 * An expired or unknown session, or a responder's deny on
 * aws:TokenIssueTime (which refuses the backend's own session too, and lets
 * only a session issued after the cut-off through), is cured by a new
 * session: so the first refusal logs in again at once.  When the fresh
 * session is refused as well, a new one will not help (the policy really
 * denies the role, STS hands out dead keys), and the next forced login
 * waits this long, doubling up to the cap, instead of costing an STS call
 * on every poll. */
#define AWS_RELOGIN_MIN (5 * USEC)
#define AWS_RELOGIN_MAX (600 * USEC)

struct backend {
	const struct aws_config *cfg;
	struct http_transport *http;
	struct sigv4_signer *signer; /* its own lock; wiped with the session */
	const struct clock *clk;
	pthread_mutex_t lock;	  /* protects every field below */
	struct aws_creds session; /* access_key_id NULL until login */
	int64_t session_issued;	  /* wall usec */
	uint64_t generation;	  /* bumps with every login */
	uint64_t issued;	  /* credentials handed out, for lease ids */
	uint64_t relogin_next;	  /* mono usec: no forced re-login before
				   * (AWS_RELOGIN_MIN) */
	uint64_t relogin_backoff; /* the wait after the next one; 0: none */
	bool retired; /* revoke_all dropped the session: no login until
		       * login() is called again (unfreeze) */
};

/* One service's endpoint and what SigV4 and JSON 1.1 need for it. */
struct aws_service {
	const char *name;   /* signing name: "secretsmanager", "kms" */
	const char *target; /* X-Amz-Target */
	const char *url;
};

static int64_t aws_now(const struct backend *b)
{
	return clock_wall(b->clk);
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
	char code[AWS_MAX_CODE] = "";
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
		r = resp.status == 200 ? aws_sts_parse(raw, len, out, err)
				       : aws_error_code(resp.status, raw, len,
							true, code, err);
	}
	secret_free(jwt);
	secret_free(body);
	secret_free(resp.body);
	/* Say which token: a responder reading "InvalidIdentityToken" needs
	 * to know it is the projected file, not a key, that STS refused. */
	if (r < 0 && aws_code_bad_web_identity(code))
		(void)errmsg_prefix(err, r,
				    "the web-identity token in %s was refused",
				    b->cfg->token_file);
	if (r < 0)
		return errmsg_prefix(
		    err, r, "aws: sts AssumeRoleWithWebIdentity %s", role_arn);
	return 0;
}

/* The backend's own session: a new one is a new identity generation. */
static int aws_login(struct backend *b, struct errmsg *err)
{
	struct aws_creds creds;
	int64_t now = aws_now(b);
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
	/* The signing keys derived from the replaced secret key are as good
	 * as it for the rest of their day: they go with it. */
	sigv4_signer_wipe(b->signer);
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
 * byte more than it copies, all zero) and its generation, or -ENOKEY
 * before login. */
static int aws_session_copy(struct backend *b, struct aws_creds *out,
			    uint64_t *generation)
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
		*generation = b->generation;
	}
	pthread_mutex_unlock(&b->lock);
	if (r < 0)
		aws_creds_clear(out);
	return r;
}

static void aws_amz_date(const struct backend *b, char *buf, size_t size)
{
	time_t t = (time_t)(aws_now(b) / USEC);
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
	aws_amz_date(b, date, sizeof(date));
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

/* Whether a refusal (r, AWS code) of a call signed with a session may be
 * cured by a new one: when AWS calls the session expired or unknown
 * (-EKEYEXPIRED) or denies it, and no forced login is waiting out its
 * backoff (AWS_RELOGIN_MIN).  The next wait is claimed at once, so
 * concurrent pollers do not all log in. */
static bool aws_relogin_may_cure(struct backend *b, int r, const char *code)
{
	uint64_t now = clock_mono(b->clk);
	bool yes = false;

	if (r != -EKEYEXPIRED && !aws_code_denied(code))
		return false;
	pthread_mutex_lock(&b->lock);
	if (!b->retired && now >= b->relogin_next) {
		b->relogin_backoff = b->relogin_backoff == 0 ? AWS_RELOGIN_MIN
				     : b->relogin_backoff >= AWS_RELOGIN_MAX / 2
					 ? AWS_RELOGIN_MAX
					 : b->relogin_backoff * 2;
		b->relogin_next = now + b->relogin_backoff;
		yes = true;
	}
	pthread_mutex_unlock(&b->lock);
	return yes;
}

/* A new session unless another thread made one since generation (then
 * that one is used). */
static int aws_relogin(struct backend *b, uint64_t generation,
		       struct errmsg *err)
{
	bool stale;

	pthread_mutex_lock(&b->lock);
	stale = b->generation == generation;
	pthread_mutex_unlock(&b->lock);
	return stale ? aws_login(b, err) : 0;
}

/* A fresh session got through where the old one was refused: the refusal
 * was the old session's (expired, or before a TokenIssueTime cut-off), so
 * the backoff starts over. */
static void aws_relogin_cured(struct backend *b)
{
	pthread_mutex_lock(&b->lock);
	b->relogin_backoff = 0;
	b->relogin_next = 0;
	pthread_mutex_unlock(&b->lock);
}

/* One signed call with the current session (logging in when there is
 * none).  *reply: the 200 body; otherwise r is aws_error's and code the
 * AWS error code. */
static int aws_signed_attempt(struct backend *b, const struct aws_service *svc,
			      const struct secret *body, struct secret **reply,
			      uint64_t *generation, char *code,
			      struct errmsg *err)
{
	struct http_response resp = {0, NULL};
	struct aws_creds session;
	const void *raw;
	size_t len;
	int r;

	code[0] = '\0';
	r = aws_session_copy(b, &session, generation);
	if (r == -ENOKEY) {
		r = aws_login(b, err);
		if (r == 0)
			r = aws_session_copy(b, &session, generation);
	}
	if (r == 0)
		r = aws_signed_once(b, svc, &session, body, &resp, err);
	aws_creds_clear(&session);
	if (r == 0 && resp.status != 200) {
		raw = secret_expose(resp.body, &len);
		r = aws_error_code(resp.status, raw, len, false, code, err);
	}
	if (r < 0) {
		secret_free(resp.body);
		return r;
	}
	*reply = resp.body;
	return 0;
}

/* A signed call.  A session AWS refuses as expired or unknown, or denies,
 * is replaced once (see AWS_RELOGIN_MIN) and the call retried, so a
 * stale session costs neither a backoff nor the ~40 minutes until the next
 * scheduled login. */
static int aws_signed_call(struct backend *b, const struct aws_service *svc,
			   const struct secret *body, struct secret **reply,
			   struct errmsg *err)
{
	char code[AWS_MAX_CODE];
	uint64_t generation = 0;
	int r;

	r = aws_signed_attempt(b, svc, body, reply, &generation, code, err);
	if (r == 0 || !aws_relogin_may_cure(b, r, code))
		goto out;
	r = aws_relogin(b, generation, err);
	if (r == 0)
		r = aws_signed_attempt(b, svc, body, reply, &generation, code,
				       err);
	if (r == 0)
		aws_relogin_cured(b);
out:
	/* Expired and still refused after a fresh session: a refusal, not a
	 * reason to retry at once. */
	if (r < 0)
		return errmsg_prefix(err, r == -EKEYEXPIRED ? -EACCES : r,
				     "aws: %s", svc->target);
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
	uint64_t duration =
	    sc->duration_usec ? sc->duration_usec : req->ttl_usec;
	const char *role_name = strrchr(role, '/') + 1;
	struct aws_creds creds;
	char expiration[40];
	uint64_t seq;
	size_t len;
	void *p;
	int r;

	/* The configured duration (checked against STS's bounds at parse
	 * time), else the secret's ttl, never past the secret's max_ttl
	 * (AWS cannot revoke the keys: they must not outlive the lease),
	 * within STS's bounds. */
	if (duration > req->max_ttl_usec)
		duration = req->max_ttl_usec;
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
 * what the responder does instead: deny the role's sessions issued before
 * now.  Now, not the lease's issue time, which the broker took before the
 * STS call: the session's TokenIssueTime is later, so a cut-off at the
 * issue time would miss exactly the keys being revoked.  Rounded up to the
 * next whole second (the policy's precision), so a session issued in this
 * second is covered too. */
static int aws_verify(struct backend *b, const struct lease *lease,
		      const struct kv *values, char *detail, struct errmsg *err)
{
	time_t cutoff = (time_t)(aws_now(b) / USEC + 1);
	char when[32];
	struct tm tm;

	(void)values;
	if (strncmp(lease->id, "sts:", 4) != 0)
		return errmsg_set(err, -ENOTSUP,
				  "aws: a Secrets Manager or KMS value is "
				  "rotated in the account, not revoked here");
	if (gmtime_r(&cutoff, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		(void)snprintf(when, sizeof(when), "now");
	(void)snprintf(detail, ERRMSG_MAX,
		       "keys dropped; AWS cannot revoke them: deny the role "
		       "sessions with aws:TokenIssueTime before %s",
		       when);
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

/* Drops the session and every signing key derived from it: what a
 * responder's revoke --all can do about keys AWS cannot revoke. */
static int aws_revoke_all(struct backend *b, struct errmsg *err)
{
	(void)err;
	pthread_mutex_lock(&b->lock);
	aws_creds_clear(&b->session);
	b->retired = true;
	b->relogin_backoff = 0;
	b->relogin_next = 0;
	pthread_mutex_unlock(&b->lock);
	sigv4_signer_wipe(b->signer);
	return 0;
}

int aws_backend_create_with(const struct aws_config *cfg,
			    struct http_transport *http,
			    struct sigv4_signer *signer,
			    const struct clock *clk, struct backend **ret)
{
	struct backend *b = calloc(1, sizeof(*b));

	if (b == NULL) {
		sigv4_signer_free(signer);
		http->ops->destroy(http);
		return -ENOMEM;
	}
	b->cfg = cfg;
	b->http = http;
	b->signer = signer;
	b->clk = clk;
	pthread_mutex_init(&b->lock, NULL);
	*ret = b;
	return 0;
}

static int aws_create(const void *cfg, struct backend **ret)
{
	const struct aws_config *c = cfg;
	struct http_transport *http = NULL;
	struct sigv4_signer *signer = NULL;
	struct http_config hc;
	struct errmsg err;
	int r;

	r = sigv4_signer_new(&signer);
	if (r < 0)
		return r;
	memset(&hc, 0, sizeof(hc));
	hc.connect_timeout_usec = c->connect_timeout_usec;
	hc.total_timeout_usec = c->request_timeout_usec;
	hc.max_body = c->max_response_bytes;
	hc.tls.ca_file = c->ca_file[0] ? c->ca_file : NULL;
	hc.tls.ca_dir = c->ca_dir[0] ? c->ca_dir : NULL;
	r = http_curl_new(&hc, &http, &err);
	if (r < 0) {
		sigv4_signer_free(signer);
		return r;
	}
	return aws_backend_create_with(c, http, signer, clock_system(), ret);
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
