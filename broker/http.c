/* libcurl behind struct http_transport_ops.  Every request gets its own easy
 * handle, so a token set on it lives only as long as the request; a share
 * handle keeps connections, TLS sessions and DNS answers between requests
 * (a new TLS handshake per Vault call would cost more than the call). */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "http.h"
#include "zalloc.h"

#define HTTP_USER_AGENT "credbroker/0.1"
#define HTTP_MAX_HEADER_LINE 8192

struct http_curl {
	struct http_transport base; /* first: the ops table */
	uint64_t connect_timeout_usec;
	uint64_t total_timeout_usec;
	size_t max_body;
	char *ca_file, *ca_dir, *cert_file, *key_file, *pinned_pubkey;
	char *server_name;
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
};

/* The response body, grown in secret memory up to its cap. */
struct http_sink {
	struct secret *buf;
	size_t max;
	bool too_big;
};

static pthread_once_t http_once = PTHREAD_ONCE_INIT;
static CURLcode http_global_status = CURLE_FAILED_INIT;

/* Before any other libcurl call: libcurl's header and body buffers get
 * wiped when freed. */
static void http_global_init(void)
{
	http_global_status = curl_global_init_mem(
	    CURL_GLOBAL_DEFAULT, zalloc_malloc, zalloc_free, zalloc_realloc,
	    zalloc_strdup, zalloc_calloc);
}

static void http_share_lock(CURL *handle, curl_lock_data data,
			    curl_lock_access access, void *userptr)
{
	struct http_curl *t = userptr;

	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&t->share_locks[data]);
}

static void http_share_unlock(CURL *handle, curl_lock_data data, void *userptr)
{
	struct http_curl *t = userptr;

	if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&t->share_locks[data]);
}

static size_t http_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct http_sink *sink = userdata;
	size_t n = size * nmemb, len = secret_len(sink->buf), cap;
	struct secret *grown = NULL;

	if (n > sink->max - len) {
		sink->too_big = true;
		return 0;
	}
	cap = secret_capacity(sink->buf);
	if (len + n > cap) {
		cap = cap * 2 > len + n ? cap * 2 : len + n;
		if (cap > sink->max)
			cap = sink->max;
		if (secret_new(cap, &grown) < 0)
			return 0;
		memcpy(secret_expose(grown, NULL),
		       secret_expose(sink->buf, NULL), len);
		secret_free(sink->buf);
		sink->buf = grown;
	}
	memcpy((char *)secret_expose(sink->buf, NULL) + len, ptr, n);
	return secret_set_len(sink->buf, len + n) == 0 ? n : 0;
}

/* "Name: value" lines; libcurl copies them (into wiped memory).  The line
 * is built in secret memory because the value may be a token. */
static int http_headers(const struct http_request *req, struct curl_slist **ret)
{
	struct curl_slist *list = NULL, *next;
	struct secret *line = NULL;
	const char *val;
	size_t i, vlen;
	char *p;
	int r = 0;

	r = secret_new(HTTP_MAX_HEADER_LINE, &line);
	for (i = 0; r == 0 && i < req->header_count; i++) {
		const struct http_header *h = &req->headers[i];

		val = h->secret_value ? secret_expose(h->secret_value, &vlen)
				      : h->value;
		if (h->secret_value == NULL)
			vlen = strlen(val);
		p = secret_expose(line, NULL);
		if (strlen(h->name) + vlen + 3 > HTTP_MAX_HEADER_LINE ||
		    memchr(val, '\n', vlen) || memchr(val, '\r', vlen)) {
			r = -EINVAL;
			break;
		}
		(void)snprintf(p, HTTP_MAX_HEADER_LINE, "%s: %.*s", h->name,
			       (int)vlen, val);
		next = curl_slist_append(list, p);
		secret_wipe(p, HTTP_MAX_HEADER_LINE);
		r = next == NULL ? -ENOMEM : 0;
		list = next ? next : list;
	}
	/* No "Expect: 100-continue" round trip for small JSON bodies. */
	if (r == 0 && (next = curl_slist_append(list, "Expect:")) != NULL)
		list = next;
	else if (r == 0)
		r = -ENOMEM;
	if (r == 0 && req->body != NULL && req->content_type != NULL) {
		p = secret_expose(line, NULL);
		(void)snprintf(p, HTTP_MAX_HEADER_LINE, "Content-Type: %s",
			       req->content_type);
		next = curl_slist_append(list, p);
		r = next == NULL ? -ENOMEM : 0;
		list = next ? next : list;
	}
	secret_free(line);
	if (r < 0) {
		curl_slist_free_all(list);
		return r;
	}
	*ret = list;
	return 0;
}

/* With tls.server_name, the URL names that host (SNI, certificate check,
 * Host header) and CURLOPT_CONNECT_TO sends the connection to the address
 * the config gave. */
static int http_server_name(const struct http_curl *t, const char *url,
			    char **url_out, struct curl_slist **connect_to)
{
	char *host = NULL, *port = NULL, *out = NULL, line[600];
	struct curl_slist *list = NULL;
	CURLU *u = curl_url();
	int r = -EINVAL;

	if (u == NULL)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) !=
		CURLUE_OK)
		goto out;
	if (snprintf(line, sizeof(line), "%s:%s:%s:%s", t->server_name, port,
		     host, port) >= (int)sizeof(line))
		goto out;
	if (curl_url_set(u, CURLUPART_HOST, t->server_name, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_URL, &out, 0) != CURLUE_OK)
		goto out;
	list = curl_slist_append(NULL, line);
	if (list == NULL) {
		r = -ENOMEM;
		goto out;
	}
	*url_out = out;
	out = NULL;
	*connect_to = list;
	r = 0;
out:
	curl_free(host);
	curl_free(port);
	curl_free(out);
	curl_url_cleanup(u);
	return r;
}

static int http_setopt_tls(CURL *c, const struct http_curl *t)
{
	CURLcode rc = CURLE_OK;

	rc |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	rc |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	rc |= curl_easy_setopt(c, CURLOPT_SSLVERSION,
			       (long)CURL_SSLVERSION_TLSv1_2);
	if (t->ca_file != NULL)
		rc |= curl_easy_setopt(c, CURLOPT_CAINFO, t->ca_file);
	if (t->ca_dir != NULL)
		rc |= curl_easy_setopt(c, CURLOPT_CAPATH, t->ca_dir);
	if (t->cert_file != NULL)
		rc |= curl_easy_setopt(c, CURLOPT_SSLCERT, t->cert_file);
	if (t->key_file != NULL)
		rc |= curl_easy_setopt(c, CURLOPT_SSLKEY, t->key_file);
	if (t->pinned_pubkey != NULL)
		rc |= curl_easy_setopt(c, CURLOPT_PINNEDPUBLICKEY,
				       t->pinned_pubkey);
	return rc == CURLE_OK ? 0 : -EINVAL;
}

/* Methods: GET has no body; the others send req->body (or nothing) with
 * the method named verbatim (Vault's LIST included). */
static int http_setopt_method(CURL *c, const struct http_request *req)
{
	size_t len = 0;
	const void *body = req->body ? secret_expose(req->body, &len) : "";
	CURLcode rc = CURLE_OK;

	if (strcmp(req->method, "GET") == 0 && req->body == NULL)
		return curl_easy_setopt(c, CURLOPT_HTTPGET, 1L) == CURLE_OK
			   ? 0
			   : -EINVAL;
	if (strcmp(req->method, "DELETE") == 0 && req->body == NULL)
		return curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE") ==
			       CURLE_OK
			   ? 0
			   : -EINVAL;
	rc |= curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	rc |= curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	if (strcmp(req->method, "POST") != 0)
		rc |= curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
	return rc == CURLE_OK ? 0 : -EINVAL;
}

static int http_setopt(CURL *c, struct http_curl *t,
		       const struct http_request *req, const char *url,
		       struct http_sink *sink, char *errbuf)
{
	CURLcode rc = CURLE_OK;
	int r;

	rc |= curl_easy_setopt(c, CURLOPT_URL, url);
	rc |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	rc |= curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	/* A redirect would carry the token to wherever it points. */
	rc |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	rc |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	rc |= curl_easy_setopt(c, CURLOPT_NOPROGRESS, 1L);
	rc |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
			       (long)(t->connect_timeout_usec / 1000));
	rc |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
			       (long)(t->total_timeout_usec / 1000));
	rc |= curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
			       (curl_off_t)t->max_body);
	rc |= curl_easy_setopt(c, CURLOPT_USERAGENT, HTTP_USER_AGENT);
	rc |= curl_easy_setopt(c, CURLOPT_SHARE, t->share);
	rc |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	rc |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_write);
	rc |= curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);
	if (rc != CURLE_OK)
		return -EINVAL;
	r = http_setopt_tls(c, t);
	if (r == 0)
		r = http_setopt_method(c, req);
	return r;
}

/* One -errno per libcurl failure class; the text names the class and
 * libcurl's detail (host names, never a header or body). */
static int http_curl_error(CURLcode rc, const struct http_sink *sink,
			   const char *errbuf, struct errmsg *err)
{
	const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
	int r;

	switch (rc) {
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		if (sink->too_big || rc == CURLE_FILESIZE_EXCEEDED)
			return errmsg_set(err, -EMSGSIZE,
					  "response body larger "
					  "than %zu bytes",
					  sink->max);
		r = -ENOMEM;
		break;
	case CURLE_OPERATION_TIMEDOUT:
		r = -ETIMEDOUT;
		break;
	case CURLE_COULDNT_CONNECT:
		r = -ECONNREFUSED;
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		r = -EHOSTUNREACH;
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ISSUER_ERROR:
		return errmsg_set(err, -EPERM, "TLS verification failed: %s",
				  detail);
	case CURLE_SSL_CONNECT_ERROR:
		return errmsg_set(err, -EPROTO, "TLS handshake failed: %s",
				  detail);
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
		r = -ECONNRESET;
		break;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		r = -EINVAL;
		break;
	default:
		r = -EIO;
	}
	return errmsg_set(err, r, "%s", detail);
}

static int http_curl_perform(struct http_transport *base,
			     const struct http_request *req,
			     struct http_response *resp, struct errmsg *err)
{
	struct http_curl *t = (struct http_curl *)base;
	struct curl_slist *headers = NULL, *connect_to = NULL;
	struct http_sink sink = {NULL, t->max_body, false};
	char errbuf[CURL_ERROR_SIZE] = "", *url = NULL;
	CURL *c = NULL;
	CURLcode rc;
	long status = 0;
	int r;

	if (strncasecmp(req->url, "https://", 8) != 0)
		return errmsg_set(err, -EINVAL, "only https URLs are allowed");
	if (req->header_count > HTTP_MAX_HEADERS)
		return errmsg_set(err, -EINVAL, "too many headers");
	r = secret_new(4096 < t->max_body ? 4096 : t->max_body, &sink.buf);
	if (r == 0)
		r = http_headers(req, &headers);
	if (r == 0 && t->server_name != NULL)
		r = http_server_name(t, req->url, &url, &connect_to);
	if (r == 0 && (c = curl_easy_init()) == NULL)
		r = -ENOMEM;
	if (r == 0)
		r = http_setopt(c, t, req, url ? url : req->url, &sink, errbuf);
	if (r == 0 &&
	    (curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers) != CURLE_OK ||
	     (connect_to != NULL &&
	      curl_easy_setopt(c, CURLOPT_CONNECT_TO, connect_to) != CURLE_OK)))
		r = -EINVAL;
	if (r < 0) {
		(void)errmsg_set(err, r, "cannot set up the request");
		goto out;
	}
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		r = http_curl_error(rc, &sink, errbuf, err);
		goto out;
	}
	(void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	resp->status = status;
	resp->body = sink.buf;
	sink.buf = NULL;
out:
	curl_easy_cleanup(c);
	curl_slist_free_all(headers);
	curl_slist_free_all(connect_to);
	curl_free(url);
	secret_free(sink.buf);
	return r;
}

static void http_curl_destroy(struct http_transport *base)
{
	struct http_curl *t = (struct http_curl *)base;
	int i;

	if (t == NULL)
		return;
	if (t->share != NULL)
		curl_share_cleanup(t->share);
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&t->share_locks[i]);
	free(t->ca_file);
	free(t->ca_dir);
	free(t->cert_file);
	free(t->key_file);
	free(t->pinned_pubkey);
	free(t->server_name);
	free(t);
}

static const struct http_transport_ops http_curl_ops = {
    .perform = http_curl_perform,
    .destroy = http_curl_destroy,
};

static int http_copy(const char *s, char **ret)
{
	*ret = NULL;
	if (s == NULL)
		return 0;
	*ret = strdup(s);
	return *ret == NULL ? -ENOMEM : 0;
}

static int http_share_new(struct http_curl *t)
{
	CURLSHcode rc = CURLSHE_OK;

	t->share = curl_share_init();
	if (t->share == NULL)
		return -ENOMEM;
	rc |= curl_share_setopt(t->share, CURLSHOPT_LOCKFUNC, http_share_lock);
	rc |= curl_share_setopt(t->share, CURLSHOPT_UNLOCKFUNC,
				http_share_unlock);
	rc |= curl_share_setopt(t->share, CURLSHOPT_USERDATA, t);
	rc |= curl_share_setopt(t->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	rc |= curl_share_setopt(t->share, CURLSHOPT_SHARE,
				CURL_LOCK_DATA_SSL_SESSION);
	rc |= curl_share_setopt(t->share, CURLSHOPT_SHARE,
				CURL_LOCK_DATA_CONNECT);
	return rc == CURLSHE_OK ? 0 : -EINVAL;
}

int http_curl_new(const struct http_config *cfg, struct http_transport **ret,
		  struct errmsg *err)
{
	struct http_curl *t;
	int i, r = 0;

	/* libcurl reads a zero timeout as "wait forever". */
	if (cfg->total_timeout_usec == 0)
		return errmsg_set(err, -EINVAL,
				  "http: a total timeout is required");
	pthread_once(&http_once, http_global_init);
	if (http_global_status != CURLE_OK)
		return errmsg_set(err, -EIO, "libcurl: %s",
				  curl_easy_strerror(http_global_status));
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return errmsg_set(err, -ENOMEM, "out of memory");
	for (i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&t->share_locks[i], NULL);
	t->base.ops = &http_curl_ops;
	t->connect_timeout_usec = cfg->connect_timeout_usec;
	t->total_timeout_usec = cfg->total_timeout_usec;
	t->max_body = cfg->max_body ? cfg->max_body : HTTP_DEFAULT_MAX_BODY;
	if (t->max_body > SECRET_MAX_LEN)
		t->max_body = SECRET_MAX_LEN;
	if (http_copy(cfg->tls.ca_file, &t->ca_file) < 0 ||
	    http_copy(cfg->tls.ca_dir, &t->ca_dir) < 0 ||
	    http_copy(cfg->tls.cert_file, &t->cert_file) < 0 ||
	    http_copy(cfg->tls.key_file, &t->key_file) < 0 ||
	    http_copy(cfg->tls.pinned_pubkey, &t->pinned_pubkey) < 0 ||
	    http_copy(cfg->tls.server_name, &t->server_name) < 0)
		r = -ENOMEM;
	if (r == 0)
		r = http_share_new(t);
	if (r < 0) {
		http_curl_destroy(&t->base);
		return errmsg_set(err, r, "cannot create the HTTP client");
	}
	*ret = &t->base;
	return 0;
}
