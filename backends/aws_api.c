/* AWS wire formats.  jansson's copies of parsed strings are wiped on free
 * (hardening.c gives it zalloc), and everything we keep goes into struct
 * secret. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "aws_api.h"
#include "aws_xml.h"

#define STS_CREDS                                                              \
	"AssumeRoleWithWebIdentityResponse/AssumeRoleWithWebIdentityResult/"   \
	"Credentials/"

/* Appends the form-encoding of s (RFC 3986 unreserved kept) to o. */
static size_t form_put(char *o, size_t at, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (isalnum(c) || strchr("-_.~", c) != NULL) {
			o[at++] = (char)c;
		} else {
			o[at++] = '%';
			o[at++] = hex[c >> 4];
			o[at++] = hex[c & 15];
		}
	}
	return at;
}

int aws_sts_form(const char *role_arn, const char *session_name,
		 uint64_t duration_s, const struct secret *jwt,
		 struct secret **ret)
{
	size_t jwt_len, cap, at;
	const char *token = secret_expose(jwt, &jwt_len);
	char duration[24];
	char *o;
	int r;

	(void)snprintf(duration, sizeof(duration), "%llu",
		       (unsigned long long)duration_s);
	cap = 160 + 3 * (strlen(role_arn) + strlen(session_name) + jwt_len);
	r = secret_new(cap, ret);
	if (r < 0)
		return r;
	o = secret_expose(*ret, NULL);
	at = (size_t)snprintf(o, cap,
			      "Action=AssumeRoleWithWebIdentity"
			      "&Version=2011-06-15&DurationSeconds=%s&RoleArn=",
			      duration);
	at = form_put(o, at, role_arn, strlen(role_arn));
	memcpy(o + at, "&RoleSessionName=", 17);
	at = form_put(o, at + 17, session_name, strlen(session_name));
	memcpy(o + at, "&WebIdentityToken=", 18);
	at = form_put(o, at + 18, token, jwt_len);
	return secret_set_len(*ret, at);
}

int aws_parse_time(const char *text, int64_t *wall)
{
	struct tm tm;
	const char *p;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	p = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
	if (p == NULL)
		return -EINVAL;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0)
		return -EINVAL;
	t = timegm(&tm);
	if (t == (time_t)-1 || t < 0)
		return -EINVAL;
	*wall = (int64_t)t * 1000000;
	return 0;
}

/* A credential field is printable ASCII: it goes into INI and env files
 * and HTTP headers, where a newline would forge another line. */
static int aws_field_printable(const struct secret *s)
{
	size_t len, i;
	const unsigned char *p = secret_expose(s, &len);

	if (len == 0)
		return -EPROTO;
	for (i = 0; i < len; i++)
		if (p[i] <= 0x20 || p[i] >= 0x7f)
			return -EPROTO;
	return 0;
}

static int aws_sts_field(const void *body, size_t len, const char *name,
			 struct secret **ret, struct errmsg *err)
{
	char path[160];
	int r;

	(void)snprintf(path, sizeof(path), STS_CREDS "%s", name);
	r = aws_xml_text(body, len, path, ret, err);
	if (r == -ENOENT)
		return errmsg_set(err, -EPROTO, "sts: response without %s",
				  name);
	if (r < 0)
		return errmsg_prefix(err, -EPROTO, "sts: response");
	if (aws_field_printable(*ret) < 0) {
		secret_free(*ret);
		*ret = NULL;
		return errmsg_set(err, -EPROTO,
				  "sts: %s is not printable ASCII", name);
	}
	return 0;
}

int aws_sts_parse(const void *body, size_t len, struct aws_creds *out,
		  struct errmsg *err)
{
	struct secret *expiration = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	r = aws_sts_field(body, len, "AccessKeyId", &out->access_key_id, err);
	if (r == 0)
		r = aws_sts_field(body, len, "SecretAccessKey",
				  &out->secret_access_key, err);
	if (r == 0)
		r = aws_sts_field(body, len, "SessionToken",
				  &out->session_token, err);
	if (r == 0)
		r = aws_sts_field(body, len, "Expiration", &expiration, err);
	if (r == 0 && aws_parse_time(secret_expose(expiration, NULL),
				     &out->expires_wall) < 0)
		r = errmsg_set(err, -EPROTO,
			       "sts: Expiration is not an ISO 8601 UTC time");
	secret_free(expiration);
	if (r < 0)
		aws_creds_clear(out);
	return r;
}

void aws_creds_clear(struct aws_creds *c)
{
	secret_free(c->access_key_id);
	secret_free(c->secret_access_key);
	secret_free(c->session_token);
	memset(c, 0, sizeof(*c));
}

/* Printable ASCII of at most size-1 bytes: AWS messages say what was
 * refused, but they reach logs, so nothing else gets through. */
static void aws_copy_text(char *buf, size_t size, const char *s, size_t n)
{
	size_t i, at = 0;

	for (i = 0; i < n && at + 1 < size; i++)
		buf[at++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	buf[at] = '\0';
}

/* Where an AWS error message stops being safe to log.  A signature
 * refusal (SignatureDoesNotMatch, InvalidSignatureException) goes on, after
 * a blank line, with "The Canonical String for this request should have
 * been" and "The String-to-Sign should have been", quoting the canonical
 * request: every signed header, the X-Amz-Security-Token among them.  So
 * the message ends at its first line break or at the first of these
 * markers, whichever comes first, whatever the length cap allows. */
static size_t aws_message_safe_len(const char *s, size_t n)
{
	static const char *const markers[] = {
	    "canonical string", "canonical request",	"string-to-sign",
	    "string to sign",	"x-amz-security-token", NULL};
	const char *const *m;
	size_t i, mlen;

	for (i = 0; i < n; i++) {
		if (s[i] == '\n' || s[i] == '\r')
			break;
		for (m = markers; *m != NULL; m++) {
			mlen = strlen(*m);
			if (n - i >= mlen && strncasecmp(s + i, *m, mlen) == 0)
				break;
		}
		if (*m != NULL)
			break;
	}
	/* Drop what led up to the cut: "The", blanks, an opening quote. */
	if (i < n && s[i] != '\n' && s[i] != '\r') {
		while (i > 0 && s[i - 1] == ' ')
			i--;
		if (i >= 3 && strncasecmp(s + i - 3, "the", 3) == 0)
			i -= 3;
	}
	while (i > 0 && strchr(" \t'\"", s[i - 1]) != NULL)
		i--;
	return i;
}

/* The message as it may be logged: the safe part, printable. */
static void aws_copy_message(char *buf, size_t size, const char *s, size_t n)
{
	aws_copy_text(buf, size, s, aws_message_safe_len(s, n));
}

static void aws_error_xml(const void *body, size_t len, char *code,
			  size_t code_size, char *msg, size_t msg_size)
{
	struct errmsg ignored = {{0}};
	struct secret *s = NULL;
	size_t n;

	if (aws_xml_text(body, len, "ErrorResponse/Error/Code", &s, &ignored) ==
	    0) {
		const char *p = secret_expose(s, &n);

		aws_copy_text(code, code_size, p, n);
		secret_free(s);
	}
	if (aws_xml_text(body, len, "ErrorResponse/Error/Message", &s,
			 &ignored) == 0) {
		const char *p = secret_expose(s, &n);

		aws_copy_message(msg, msg_size, p, n);
		secret_free(s);
	}
}

/* JSON 1.1 errors: "__type" may carry a namespace
 * ("com.amazonaws.kms#InvalidCiphertextException"), and the message is
 * "message" or "Message" depending on the service. */
static void aws_error_json(const void *body, size_t len, char *code,
			   size_t code_size, char *msg, size_t msg_size)
{
	json_t *root = json_loadb(body, len, 0, NULL);
	const json_t *type = json_object_get(root, "__type");
	const json_t *m = json_object_get(root, "message");
	const char *t, *hash;

	if (m == NULL)
		m = json_object_get(root, "Message");
	if (json_is_string(type)) {
		t = json_string_value(type);
		hash = strrchr(t, '#');
		t = hash != NULL ? hash + 1 : t;
		aws_copy_text(code, code_size, t, strlen(t));
	}
	if (json_is_string(m))
		aws_copy_message(msg, msg_size, json_string_value(m),
				 json_string_length(m));
	json_decref(root);
}

static bool aws_code_in(const char *code, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(code, *list) == 0)
			return true;
	return false;
}

static int aws_code_errno(long status, const char *code)
{
	static const char *const expired[] = {
	    "ExpiredToken",	    "ExpiredTokenException",
	    "InvalidClientTokenId", "UnrecognizedClientException",
	    "InvalidToken",	    NULL};
	static const char *const retry[] = {"Throttling",
					    "ThrottlingException",
					    "TooManyRequestsException",
					    "RequestLimitExceeded",
					    "IDPCommunicationError",
					    "ServiceUnavailable",
					    "InternalFailure",
					    "InternalServiceError",
					    "InternalServiceErrorException",
					    "KMSInternalException",
					    "DependencyTimeoutException",
					    NULL};
	static const char *const denied[] = {"AccessDenied",
					     "AccessDeniedException",
					     "InvalidIdentityToken",
					     "IDPRejectedClaim",
					     "SignatureDoesNotMatch",
					     "IncompleteSignature",
					     "MissingAuthenticationToken",
					     "InvalidSignatureException",
					     "KMSInvalidStateException",
					     "DisabledException",
					     NULL};

	if (aws_code_in(code, expired))
		return -EKEYEXPIRED;
	if (aws_code_in(code, retry) || status >= 500 || status == 429)
		return -EAGAIN;
	if (aws_code_in(code, denied) || status == 401 || status == 403)
		return -EACCES;
	if (strcmp(code, "ResourceNotFoundException") == 0 ||
	    strcmp(code, "NotFoundException") == 0 || status == 404)
		return -ENOENT;
	return status >= 400 && status < 500 ? -EINVAL : -EIO;
}

int aws_error_code(long status, const void *body, size_t len, bool xml,
		   char *code, struct errmsg *err)
{
	char msg[200] = "";

	code[0] = '\0';
	if (xml)
		aws_error_xml(body, len, code, AWS_MAX_CODE, msg, sizeof(msg));
	else
		aws_error_json(body, len, code, AWS_MAX_CODE, msg, sizeof(msg));
	return errmsg_set(err, aws_code_errno(status, code), "%ld %s%s%s",
			  status, code[0] != '\0' ? code : "(no error code)",
			  msg[0] != '\0' ? ": " : "", msg);
}

int aws_error(long status, const void *body, size_t len, bool xml,
	      struct errmsg *err)
{
	char code[AWS_MAX_CODE];

	return aws_error_code(status, body, len, xml, code, err);
}

bool aws_code_denied(const char *code)
{
	return strcmp(code, "AccessDenied") == 0 ||
	       strcmp(code, "AccessDeniedException") == 0;
}

bool aws_code_bad_web_identity(const char *code)
{
	return strcmp(code, "InvalidIdentityToken") == 0 ||
	       strcmp(code, "ExpiredTokenException") == 0 ||
	       strcmp(code, "IDPRejectedClaim") == 0;
}

int aws_sm_request(const struct aws_secret_config *sc, struct secret **ret)
{
	if (sc->version_id[0] != '\0')
		return kv_json_dump(json_pack("{s:s, s:s}", "SecretId",
					      sc->secret_id, "VersionId",
					      sc->version_id),
				    ret);
	return kv_json_dump(json_pack("{s:s, s:s}", "SecretId", sc->secret_id,
				      "VersionStage", sc->version_stage),
			    ret);
}

/* Base64 (as JSON carries blobs) decoded straight into secret memory. */
static int aws_b64_value(struct kv *kv, const char *key, const json_t *v)
{
	const char *in = json_string_value(v);
	size_t len = json_string_length(v), pad = 0;
	struct secret *out = NULL;
	int n, r;

	if (in == NULL || len % 4 != 0 || len > SECRET_MAX_LEN)
		return -EPROTO;
	if (len == 0)
		return kv_set(kv, key, "", 0);
	pad = (in[len - 1] == '=') + (len > 1 && in[len - 2] == '=');
	r = secret_new(len / 4 * 3, &out);
	if (r < 0)
		return r;
	n = EVP_DecodeBlock(secret_expose(out, NULL), (const unsigned char *)in,
			    (int)len);
	r = n < 0 || (size_t)n < pad
		? -EPROTO
		: kv_set(kv, key, secret_expose(out, NULL), (size_t)n - pad);
	secret_free(out);
	return r;
}

static int aws_sm_string(const json_t *str, struct kv *values,
			 struct errmsg *err)
{
	json_t *inner;
	int r;

	inner = json_loadb(json_string_value(str), json_string_length(str),
			   JSON_REJECT_DUPLICATES, NULL);
	r = 0;
	if (json_is_object(inner)) {
		if (json_object_get(inner, "SecretString") != NULL)
			r = errmsg_set(err, -EPROTO,
				       "secretsmanager: the secret's JSON has "
				       "a key \"SecretString\", the name of "
				       "the whole-string file");
		if (r == 0)
			r = kv_copy_json_object(inner, values, err);
	}
	json_decref(inner);
	if (r == 0)
		r = kv_set(values, "SecretString", json_string_value(str),
			   json_string_length(str));
	return r;
}

/* "NAME@VERSIONID" when it fits in size, else "PREFIX~DIGEST@VERSIONID":
 * the name's first 32 characters (so logs still say which secret) and 16
 * hex digits of its SHA-256 (so two long names sharing a prefix differ).
 * AWS allows 512-character names, far more than a lease id holds; the
 * same name always gives the same string, so a version change is still
 * seen as one.  -EMSGSIZE when even that does not fit (a VersionId far
 * longer than AWS's 64 characters). */
static int aws_sm_version(const char *name, const char *vid, char *version,
			  size_t size)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	int w;

	w = snprintf(version, size, "%s@%s", name, vid);
	if (w >= 0 && (size_t)w < size)
		return 0;
	if (EVP_Digest(name, strlen(name), md, &n, EVP_sha256(), NULL) != 1 ||
	    n < 8)
		return -EIO;
	w = snprintf(version, size, "%.32s~%02x%02x%02x%02x%02x%02x%02x%02x@%s",
		     name, md[0], md[1], md[2], md[3], md[4], md[5], md[6],
		     md[7], vid);
	if (w < 0 || (size_t)w >= size) {
		version[0] = '\0';
		return -EMSGSIZE;
	}
	return 0;
}

int aws_sm_parse(const void *body, size_t len, struct kv *values, char *version,
		 size_t version_size, struct errmsg *err)
{
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	const json_t *name = json_object_get(root, "Name");
	const json_t *vid = json_object_get(root, "VersionId");
	const json_t *str = json_object_get(root, "SecretString");
	const json_t *bin = json_object_get(root, "SecretBinary");
	int r = 0;

	if (!json_is_object(root))
		r = errmsg_set(err, -EPROTO,
			       "secretsmanager: response is not a JSON object");
	else if (!json_is_string(name) || !json_is_string(vid))
		r = errmsg_set(err, -EPROTO,
			       "secretsmanager: response without Name and "
			       "VersionId");
	else if (json_is_string(str) == json_is_string(bin))
		r = errmsg_set(err, -EPROTO,
			       "secretsmanager: response needs exactly one of "
			       "SecretString and SecretBinary");
	else if (aws_sm_version(json_string_value(name), json_string_value(vid),
				version, version_size) < 0)
		r = errmsg_set(err, -EPROTO,
			       "secretsmanager: VersionId too long");
	if (r == 0 && str != NULL)
		r = aws_sm_string(str, values, err);
	else if (r == 0 && aws_b64_value(values, "SecretBinary", bin) < 0)
		r = errmsg_set(err, -EPROTO,
			       "secretsmanager: SecretBinary is not base64");
	json_decref(root);
	if (r < 0)
		kv_clear(values);
	return r;
}

int aws_kms_request(const struct aws_secret_config *sc, struct secret **ret)
{
	json_t *obj = json_pack("{s:s}", "CiphertextBlob", sc->ciphertext);
	json_t *ctx;
	size_t i;

	if (obj != NULL && sc->key_id[0] != '\0' &&
	    json_object_set_new(obj, "KeyId", json_string(sc->key_id)) < 0)
		goto fail;
	if (obj != NULL && sc->context_count > 0) {
		ctx = json_object();
		if (json_object_set_new(obj, "EncryptionContext", ctx) < 0)
			goto fail;
		for (i = 0; i < sc->context_count; i++)
			if (json_object_set_new(
				ctx, sc->context[i].key,
				json_string(sc->context[i].value)) < 0)
				goto fail;
	}
	return kv_json_dump(obj, ret);
fail:
	json_decref(obj);
	return -ENOMEM;
}

int aws_kms_parse(const struct aws_secret_config *sc, const void *body,
		  size_t len, struct kv *values, struct errmsg *err)
{
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	const json_t *plain = json_object_get(root, "Plaintext");
	int r;

	if (!json_is_string(plain))
		r = errmsg_set(err, -EPROTO, "kms: response without Plaintext");
	else if (aws_b64_value(values, sc->value_key, plain) < 0)
		r = errmsg_set(err, -EPROTO, "kms: Plaintext is not base64");
	else
		r = 0;
	json_decref(root);
	if (r < 0)
		kv_clear(values);
	return r;
}
