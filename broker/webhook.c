/* One thread per connection (at most WEBHOOK_MAX_CLIENTS), each bounded by
 * socket timeouts, so a slow client never holds up the API server's other
 * calls.  The TLS context is swapped under a lock when the certificate
 * files change; connections keep the context they started with. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "log.h"
#include "webhook.h"

#define WEBHOOK_IO_TIMEOUT_SEC 10

struct webhook {
	const struct webhook_config *cfg;
	pthread_mutex_t lock; /* protects ctx, mtimes and clients */
	SSL_CTX *ctx;
	struct timespec cert_mtime, key_mtime;
	unsigned clients;
	pthread_cond_t idle; /* clients reached 0 */
};

struct webhook_conn {
	struct webhook *w;
	int fd;
	SSL_CTX *ctx; /* a reference of its own */
};

/* ---- JSON Patch ---- */

/* path + "/" + key, with RFC 6901 escaping (~0, ~1). */
static char *webhook_child(const char *path, const char *key)
{
	size_t n = strlen(path) + 2 * strlen(key) + 2, o;
	char *out = malloc(n);
	const char *k;

	if (out == NULL)
		return NULL;
	o = (size_t)snprintf(out, n, "%s/", path);
	for (k = key; *k != '\0'; k++) {
		if (*k == '~' || *k == '/') {
			out[o++] = '~';
			out[o++] = *k == '~' ? '0' : '1';
		} else {
			out[o++] = *k;
		}
	}
	out[o] = '\0';
	return out;
}

static int webhook_op(json_t *ops, const char *op, const char *path,
		      json_t *value)
{
	json_t *o = value ? json_pack("{s:s, s:s, s:O}", "op", op, "path", path,
				      "value", value)
			  : json_pack("{s:s, s:s}", "op", op, "path", path);

	return o == NULL || json_array_append_new(ops, o) < 0 ? -ENOMEM : 0;
}

static int webhook_diff_at(const json_t *a, const json_t *b, const char *path,
			   json_t *ops)
{
	const char *key;
	json_t *bv, *av;
	char *child;
	int r = 0;

	if (!json_is_object(a) || !json_is_object(b))
		return json_equal(a, b)
			   ? 0
			   : webhook_op(ops, "replace", path, (json_t *)b);
	json_object_foreach((json_t *)b, key, bv)
	{
		av = json_object_get(a, key);
		if (av != NULL && json_equal(av, bv))
			continue;
		child = webhook_child(path, key);
		if (child == NULL)
			return -ENOMEM;
		r = av == NULL ? webhook_op(ops, "add", child, bv)
			       : webhook_diff_at(av, bv, child, ops);
		free(child);
		if (r < 0)
			return r;
	}
	json_object_foreach((json_t *)a, key, av)
	{
		if (json_object_get(b, key) != NULL)
			continue;
		child = webhook_child(path, key);
		r = child ? webhook_op(ops, "remove", child, NULL) : -ENOMEM;
		free(child);
		if (r < 0)
			return r;
	}
	return 0;
}

json_t *webhook_diff(const json_t *a, const json_t *b)
{
	json_t *ops = json_array();

	if (ops != NULL && webhook_diff_at(a, b, "", ops) < 0) {
		json_decref(ops);
		return NULL;
	}
	return ops;
}

/* ---- AdmissionReview ---- */

static json_t *webhook_patch_b64(const json_t *patch)
{
	size_t n = json_dumpb(patch, NULL, 0, JSON_COMPACT);
	unsigned char *raw = n ? malloc(n) : NULL;
	char *b64 = raw ? malloc(4 * ((n + 2) / 3) + 1) : NULL;
	json_t *s = NULL;

	if (b64 != NULL) {
		(void)json_dumpb(patch, (char *)raw, n, JSON_COMPACT);
		(void)EVP_EncodeBlock((unsigned char *)b64, raw, (int)n);
		s = json_string(b64);
	}
	free(raw);
	free(b64);
	return s;
}

/* Injects into a copy of the pod; the answer carries the difference. */
static json_t *webhook_response(const json_t *req,
				const struct inject_options *opt)
{
	const json_t *uid = json_object_get(req, "uid");
	const char *kind = json_string_value(
	    json_object_get(json_object_get(req, "kind"), "kind"));
	json_t *orig = json_object_get(req, "object"), *pod, *patch, *resp;
	struct errmsg err = {{0}};
	bool changed = false;
	int r;

	resp = json_pack("{s:O, s:b}", "uid", uid, "allowed", 1);
	if (resp == NULL || kind == NULL || strcmp(kind, "Pod") != 0 ||
	    !json_is_object(orig))
		return resp;
	pod = json_deep_copy(orig);
	r = pod ? inject_object(pod, opt, &changed, &err) : -ENOMEM;
	if (r < 0) {
		log_warnx("event=webhook_refused uid=%.64s error=\"%s\"",
			  json_string_value(uid), err.text);
		(void)json_object_set_new(resp, "allowed", json_false());
		(void)json_object_set_new(
		    resp, "status",
		    json_pack("{s:i, s:s}", "code", 400, "message", err.text));
	} else if (changed) {
		patch = webhook_diff(orig, pod);
		(void)json_object_set_new(resp, "patchType",
					  json_string("JSONPatch"));
		(void)json_object_set_new(resp, "patch",
					  patch ? webhook_patch_b64(patch)
						: json_null());
		json_decref(patch);
	}
	json_decref(pod);
	return resp;
}

json_t *webhook_review(const json_t *review, const struct inject_options *opt,
		       struct errmsg *err)
{
	const char *kind = json_string_value(json_object_get(review, "kind"));
	const char *api =
	    json_string_value(json_object_get(review, "apiVersion"));
	const json_t *req = json_object_get(review, "request");

	if (kind == NULL || strcmp(kind, "AdmissionReview") != 0 ||
	    api == NULL || strcmp(api, "admission.k8s.io/v1") != 0 ||
	    !json_is_object(req) ||
	    !json_is_string(json_object_get(req, "uid"))) {
		(void)errmsg_set(err, -EINVAL,
				 "not an admission.k8s.io/v1 "
				 "AdmissionReview with a request.uid");
		return NULL;
	}
	return json_pack("{s:s, s:s, s:o}", "apiVersion", "admission.k8s.io/v1",
			 "kind", "AdmissionReview", "response",
			 webhook_response(req, opt));
}

/* ---- TLS ---- */

static int webhook_mtimes(const struct webhook_config *cfg,
			  struct timespec *cert, struct timespec *key)
{
	struct stat a, b;

	if (stat(cfg->cert_file, &a) < 0 || stat(cfg->key_file, &b) < 0)
		return -errno;
	*cert = a.st_mtim;
	*key = b.st_mtim;
	return 0;
}

static int webhook_new_ctx(const struct webhook_config *cfg, SSL_CTX **ret,
			   struct errmsg *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	char detail[160] = "";

	if (ctx != NULL &&
	    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1 &&
	    SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) == 1 &&
	    SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) ==
		1 &&
	    SSL_CTX_check_private_key(ctx) == 1) {
		*ret = ctx;
		return 0;
	}
	ERR_error_string_n(ERR_get_error(), detail, sizeof(detail));
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return errmsg_set(err, -EINVAL, "webhook: certificate %s / key %s: %s",
			  cfg->cert_file, cfg->key_file, detail);
}

/* A context for the next connection: re-read when the files changed
 * (cert-manager writes new ones); on a bad pair, the old one goes on. */
static SSL_CTX *webhook_ctx(struct webhook *w)
{
	struct timespec c, k;
	struct errmsg err;
	SSL_CTX *fresh = NULL, *ctx;

	pthread_mutex_lock(&w->lock);
	if (webhook_mtimes(w->cfg, &c, &k) == 0 &&
	    (c.tv_sec != w->cert_mtime.tv_sec ||
	     c.tv_nsec != w->cert_mtime.tv_nsec ||
	     k.tv_sec != w->key_mtime.tv_sec ||
	     k.tv_nsec != w->key_mtime.tv_nsec)) {
		if (webhook_new_ctx(w->cfg, &fresh, &err) == 0) {
			SSL_CTX_free(w->ctx);
			w->ctx = fresh;
			w->cert_mtime = c;
			w->key_mtime = k;
			log_info("event=webhook_certificate_reloaded");
		} else {
			log_warnx("event=webhook_reload_failed error=\"%s\"",
				  err.text);
		}
	}
	ctx = w->ctx;
	SSL_CTX_up_ref(ctx);
	pthread_mutex_unlock(&w->lock);
	return ctx;
}

/* ---- HTTP ---- */

static void webhook_send(SSL *ssl, int status, const char *reason,
			 const char *body)
{
	char head[256];
	int n;

	n = snprintf(head, sizeof(head),
		     "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		     status, reason, strlen(body));
	if (SSL_write(ssl, head, n) > 0 && body[0] != '\0')
		(void)SSL_write(ssl, body, (int)strlen(body));
}

static void webhook_fail(SSL *ssl, int status, const char *reason,
			 const char *why)
{
	char body[256];

	log_warnx("event=webhook_bad_request status=%d reason=\"%s\"", status,
		  why);
	(void)snprintf(body, sizeof(body), "{\"error\":\"%s\"}\n", why);
	webhook_send(ssl, status, reason, body);
}

/* Reads until the end of the headers; returns their length (the body's
 * first bytes may follow in buf), or -1. */
static ssize_t webhook_read_head(SSL *ssl, char *buf, size_t size, size_t *have)
{
	char *end;
	int n;

	*have = 0;
	while (*have < size - 1) {
		n = SSL_read(ssl, buf + *have, (int)(size - 1 - *have));
		if (n <= 0)
			return -1;
		*have += (size_t)n;
		buf[*have] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (end != NULL)
			return end + 4 - buf;
	}
	return -1;
}

static long webhook_content_length(const char *head)
{
	const char *p = head;
	char *end;
	long v;

	while ((p = strchr(p, '\n')) != NULL) {
		p++;
		if (strncasecmp(p, "Content-Length:", 15) != 0)
			continue;
		errno = 0;
		v = strtol(p + 15, &end, 10);
		return errno == 0 && end != p + 15 && v >= 0 ? v : -1;
	}
	return -1;
}

static void webhook_mutate(struct webhook *w, SSL *ssl, const char *body,
			   size_t len)
{
	struct errmsg err = {{0}};
	json_t *review, *answer;
	char *text;

	review = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	answer = review ? webhook_review(review, &w->cfg->inject, &err) : NULL;
	json_decref(review);
	if (answer == NULL) {
		webhook_fail(ssl, 400, "Bad Request",
			     review ? "not an AdmissionReview v1"
				    : "body is not JSON");
		return;
	}
	len = json_dumpb(answer, NULL, 0, JSON_COMPACT);
	text = len > 0 ? malloc(len + 1) : NULL;
	if (text != NULL) {
		(void)json_dumpb(answer, text, len, JSON_COMPACT);
		text[len] = '\0';
	}
	json_decref(answer);
	if (text == NULL) {
		webhook_fail(ssl, 500, "Internal Server Error", "no memory");
		return;
	}
	webhook_send(ssl, 200, "OK", text);
	free(text);
}

/* One request: GET /healthz or POST /mutate, bounded in size. */
static void webhook_request(struct webhook *w, SSL *ssl)
{
	char head[WEBHOOK_MAX_HEADER], *body = NULL;
	size_t have, got;
	ssize_t hlen;
	long clen;
	int n;

	hlen = webhook_read_head(ssl, head, sizeof(head), &have);
	if (hlen < 0)
		return webhook_fail(ssl, 400, "Bad Request", "bad headers");
	if (strncmp(head, "GET /healthz ", 13) == 0)
		return webhook_send(ssl, 200, "OK", "ok");
	if (strncmp(head, "POST /mutate ", 13) != 0)
		return webhook_fail(ssl, 404, "Not Found", "no such path");
	clen = webhook_content_length(head);
	if (clen < 0)
		return webhook_fail(ssl, 400, "Bad Request",
				    "Content-Length required");
	if (clen > WEBHOOK_MAX_BODY)
		return webhook_fail(ssl, 413, "Payload Too Large",
				    "body over 4 MiB");
	body = malloc((size_t)clen + 1);
	if (body == NULL)
		return webhook_fail(ssl, 500, "Internal Server Error",
				    "no memory");
	got = have - (size_t)hlen < (size_t)clen ? have - (size_t)hlen
						 : (size_t)clen;
	memcpy(body, head + hlen, got);
	while (got < (size_t)clen &&
	       (n = SSL_read(ssl, body + got, (int)((size_t)clen - got))) > 0)
		got += (size_t)n;
	if (got < (size_t)clen)
		webhook_fail(ssl, 400, "Bad Request", "body cut short");
	else
		webhook_mutate(w, ssl, body, got);
	free(body);
}

static void *webhook_conn_thread(void *arg)
{
	struct webhook_conn *c = arg;
	struct webhook *w = c->w;
	SSL *ssl = SSL_new(c->ctx);

	if (ssl != NULL && SSL_set_fd(ssl, c->fd) == 1 && SSL_accept(ssl) == 1)
		webhook_request(w, ssl);
	ERR_clear_error();
	if (ssl != NULL)
		(void)SSL_shutdown(ssl);
	SSL_free(ssl);
	SSL_CTX_free(c->ctx);
	close(c->fd);
	free(c);
	/* The last touch of w: webhook_run waits for this before its frame
	 * (and w with it) goes. */
	pthread_mutex_lock(&w->lock);
	w->clients--;
	pthread_cond_broadcast(&w->idle);
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static void webhook_accept(struct webhook *w, int lfd)
{
	struct timeval tv = {WEBHOOK_IO_TIMEOUT_SEC, 0};
	struct webhook_conn *c;
	pthread_attr_t attr;
	pthread_t thread;
	int fd;

	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	pthread_mutex_lock(&w->lock);
	if (w->clients >= WEBHOOK_MAX_CLIENTS) {
		pthread_mutex_unlock(&w->lock);
		log_warnx("event=webhook_busy clients=%d", WEBHOOK_MAX_CLIENTS);
		close(fd);
		return;
	}
	w->clients++;
	pthread_mutex_unlock(&w->lock);
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	c = calloc(1, sizeof(*c));
	if (c != NULL) {
		c->w = w;
		c->fd = fd;
		c->ctx = webhook_ctx(w);
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (c == NULL ||
	    pthread_create(&thread, &attr, webhook_conn_thread, c) != 0) {
		if (c != NULL)
			SSL_CTX_free(c->ctx);
		free(c);
		close(fd);
		pthread_mutex_lock(&w->lock);
		w->clients--;
		pthread_mutex_unlock(&w->lock);
	}
	pthread_attr_destroy(&attr);
}

static int webhook_listen(const char *spec, struct errmsg *err)
{
	struct addrinfo hints = {.ai_flags = AI_PASSIVE,
				 .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai = NULL;
	char host[256];
	const char *colon = strrchr(spec, ':');
	int fd = -1, one = 1;

	if (colon == NULL || (size_t)(colon - spec) >= sizeof(host))
		return errmsg_set(err, -EINVAL, "--listen: expected HOST:PORT");
	(void)snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
	if (getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &ai) != 0)
		return errmsg_set(err, -EINVAL, "--listen: cannot resolve %s",
				  spec);
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return errmsg_set(err, -e, "--listen %s: %s", spec,
				  strerror(e));
	}
	freeaddrinfo(ai);
	return fd;
}

/* Waits for the connection threads (each bounded by its socket
 * timeouts), then frees what they shared. */
static void webhook_drain(struct webhook *w)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 3 * WEBHOOK_IO_TIMEOUT_SEC;
	pthread_mutex_lock(&w->lock);
	while (w->clients > 0 &&
	       pthread_cond_timedwait(&w->idle, &w->lock, &deadline) == 0)
		;
	if (w->clients > 0) {
		/* Stuck past every timeout: leave w alone, the process ends. */
		log_warnx("event=webhook_stop_incomplete clients=%u",
			  w->clients);
		pthread_mutex_unlock(&w->lock);
		return;
	}
	pthread_mutex_unlock(&w->lock);
	SSL_CTX_free(w->ctx);
	w->ctx = NULL;
	pthread_cond_destroy(&w->idle);
	pthread_mutex_destroy(&w->lock);
}

int webhook_run(const struct webhook_config *cfg, struct errmsg *err)
{
	struct webhook w = {.cfg = cfg};
	struct pollfd pfd[2];
	sigset_t set;
	int lfd, sfd, r;

	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.idle, NULL);
	r = webhook_mtimes(cfg, &w.cert_mtime, &w.key_mtime);
	if (r < 0)
		return errmsg_set(err, r, "webhook: %s or %s: %s",
				  cfg->cert_file, cfg->key_file, strerror(-r));
	r = webhook_new_ctx(cfg, &w.ctx, err);
	if (r < 0)
		return r;
	lfd = webhook_listen(cfg->listen, err);
	if (lfd < 0) {
		SSL_CTX_free(w.ctx);
		return lfd;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0) {
		r = errmsg_set(err, -errno, "webhook: signalfd: %s",
			       strerror(errno));
		close(lfd);
		SSL_CTX_free(w.ctx);
		return r;
	}
	log_info("event=webhook_started listen=%s", cfg->listen);
	pfd[0] = (struct pollfd){lfd, POLLIN, 0};
	pfd[1] = (struct pollfd){sfd, POLLIN, 0};
	while (poll(pfd, 2, -1) >= 0 || errno == EINTR) {
		if (pfd[1].revents)
			break;
		if (pfd[0].revents)
			webhook_accept(&w, lfd);
	}
	close(lfd);
	close(sfd);
	webhook_drain(&w);
	log_info("event=webhook_stopped");
	return 0;
}
