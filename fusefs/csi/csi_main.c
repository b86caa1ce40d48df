/* credbroker-csi: the CSI node plugin (one per node, privileged, holding no
 * secret).  Identity and Node services over gRPC on a Unix socket; the
 * volume work is node.c's.  volume_context carries the pod's
 * service-account tokens: it is never logged, and the hand-off payload
 * copies only the pod's facts, never a token. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include <jansson.h>

#include "csi_msg.h"
#include "grpc.h"
#include "log.h"
#include "node.h"

#define CSI_DRIVER_NAME "csi.credbroker.io"
#define CSI_VERSION "0.1.0"
#define CSI_MAX_RESP 4096
#define CSI_DEFAULT_HANDOFF_VOLUME "credbroker-handoff"

struct csi_plugin {
	char node_id[256];
	struct csi_node *node;
};

static struct grpc_server *csi_server; /* for the signal handler only */

/* The encoded response into *resp (malloc'd, for the server to free). */
static int csi_reply(struct pb_buf *b, int r, uint8_t **resp, size_t *resp_len)
{
	if (r < 0 || pb_buf_len(b) == 0) {
		pb_buf_free(b);
		return r < 0 ? GRPC_INTERNAL : GRPC_OK;
	}
	*resp = malloc(pb_buf_len(b));
	if (*resp == NULL) {
		pb_buf_free(b);
		return GRPC_INTERNAL;
	}
	memcpy(*resp, pb_buf_data(b), pb_buf_len(b));
	*resp_len = pb_buf_len(b);
	pb_buf_free(b);
	return GRPC_OK;
}

static int csi_get_plugin_info(void *arg, const uint8_t *req, size_t len,
			       uint8_t **resp, size_t *resp_len, char *msg,
			       size_t msg_size)
{
	struct pb_buf b;

	if (csi_empty_req_decode(req, len) < 0)
		return GRPC_INVALID_ARGUMENT;
	pb_buf_init(&b, CSI_MAX_RESP);
	return csi_reply(
	    &b,
	    csi_plugin_info_encode(&b, CSI_DRIVER_NAME, CSI_VERSION, NULL, 0),
	    resp, resp_len);
}

/* No controller service, no topology: an empty list. */
static int csi_get_plugin_caps(void *arg, const uint8_t *req, size_t len,
			       uint8_t **resp, size_t *resp_len, char *msg,
			       size_t msg_size)
{
	struct pb_buf b;

	if (csi_empty_req_decode(req, len) < 0)
		return GRPC_INVALID_ARGUMENT;
	pb_buf_init(&b, CSI_MAX_RESP);
	return csi_reply(&b, csi_empty_resp_encode(&b), resp, resp_len);
}

static int csi_probe(void *arg, const uint8_t *req, size_t len, uint8_t **resp,
		     size_t *resp_len, char *msg, size_t msg_size)
{
	struct pb_buf b;

	if (csi_empty_req_decode(req, len) < 0)
		return GRPC_INVALID_ARGUMENT;
	pb_buf_init(&b, CSI_MAX_RESP);
	return csi_reply(&b, csi_probe_encode(&b, true), resp, resp_len);
}

static int csi_node_get_info(void *arg, const uint8_t *req, size_t len,
			     uint8_t **resp, size_t *resp_len, char *msg,
			     size_t msg_size)
{
	const struct csi_plugin *p = arg;
	struct pb_buf b;

	if (csi_empty_req_decode(req, len) < 0)
		return GRPC_INVALID_ARGUMENT;
	pb_buf_init(&b, CSI_MAX_RESP);
	return csi_reply(
	    &b, csi_node_info_encode(&b, p->node_id, CSI_MAX_VOLUMES, NULL, 0),
	    resp, resp_len);
}

static int csi_node_get_caps(void *arg, const uint8_t *req, size_t len,
			     uint8_t **resp, size_t *resp_len, char *msg,
			     size_t msg_size)
{
	struct pb_buf b;

	if (csi_empty_req_decode(req, len) < 0)
		return GRPC_INVALID_ARGUMENT;
	pb_buf_init(&b, CSI_MAX_RESP);
	return csi_reply(&b, csi_node_caps_encode(&b), resp, resp_len);
}

static int csi_status_of(int r)
{
	switch (r) {
	case -EINVAL:
	case -EMSGSIZE:
		return GRPC_INVALID_ARGUMENT;
	case -ENOENT:
		return GRPC_NOT_FOUND;
	case -ENOSPC:
		return GRPC_RESOURCE_EXHAUSTED;
	default:
		return GRPC_INTERNAL;
	}
}

/* A volume_context value as a string, "" when absent. */
static void csi_attr(const struct csi_publish_req *req, const char *key,
		     char *buf, size_t size)
{
	size_t len = 0;
	const char *v = csi_volume_context_get(req, key, &len);

	(void)snprintf(buf, size, "%.*s", v ? (int)len : 0, v ? v : "");
}

/* The pod's facts for the broker: names and ids, never a token. */
static int csi_payload(const struct csi_publish_req *req, char *buf,
		       size_t size)
{
	char name[254], ns[254], uid[64], sa[254];
	json_t *o;
	size_t n;

	csi_attr(req, "csi.storage.k8s.io/pod.name", name, sizeof(name));
	csi_attr(req, "csi.storage.k8s.io/pod.namespace", ns, sizeof(ns));
	csi_attr(req, "csi.storage.k8s.io/pod.uid", uid, sizeof(uid));
	csi_attr(req, "csi.storage.k8s.io/serviceAccount.name", sa, sizeof(sa));
	o = json_pack("{s:{s:s, s:s, s:s}, s:s, s:s}", "pod", "name", name,
		      "namespace", ns, "uid", uid, "serviceAccount", sa,
		      "fsGroup",
		      req->volume_mount_group ? req->volume_mount_group : "");
	n = o ? json_dumpb(o, buf, size, JSON_COMPACT) : 0;
	json_decref(o);
	return n == 0 || n > size ? -EMSGSIZE : (int)n;
}

static int csi_parse_uid(const char *s, uid_t *ret)
{
	char *end;
	unsigned long v;

	if (s[0] == '\0')
		return 0;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0 || v > 0x7fffffff)
		return -EINVAL;
	*ret = (uid_t)v;
	return 0;
}

/* Checks the request is an inline ephemeral mount and publishes it. */
static int csi_publish_checked(struct csi_plugin *p,
			       const struct csi_publish_req *req, char *msg,
			       size_t msg_size)
{
	char ephemeral[8], handoff[254], uid_s[16], payload[CSI_MAX_PAYLOAD];
	struct csi_publish pub;
	struct errmsg err = {{0}};
	int n, r;

	csi_attr(req, "csi.storage.k8s.io/ephemeral", ephemeral,
		 sizeof(ephemeral));
	csi_attr(req, "handoffVolume", handoff, sizeof(handoff));
	csi_attr(req, "brokerUid", uid_s, sizeof(uid_s));
	memset(&pub, 0, sizeof(pub));
	pub.broker_uid = CSI_DEFAULT_BROKER_UID;
	if (strcmp(ephemeral, "true") != 0 ||
	    req->access_type != CSI_ACCESS_MOUNT) {
		(void)snprintf(msg, msg_size,
			       "only inline ephemeral mount "
			       "volumes are supported");
		return GRPC_INVALID_ARGUMENT;
	}
	if (csi_parse_uid(uid_s, &pub.broker_uid) < 0) {
		(void)snprintf(msg, msg_size, "brokerUid: a non-root uid");
		return GRPC_INVALID_ARGUMENT;
	}
	n = csi_payload(req, payload, sizeof(payload));
	if (n < 0)
		return GRPC_INVALID_ARGUMENT;
	pub.volume_id = req->volume_id;
	pub.target_path = req->target_path;
	pub.handoff_volume = handoff[0] ? handoff : CSI_DEFAULT_HANDOFF_VOLUME;
	pub.payload = payload;
	pub.payload_len = (size_t)n;
	r = csi_node_publish(p->node, &pub, &err);
	if (r < 0) {
		log_warnx(
		    "event=publish_failed volume=%s errno=%d error=\"%s\"",
		    req->volume_id, -r, err.text);
		(void)snprintf(msg, msg_size, "%s", err.text);
		return csi_status_of(r);
	}
	return GRPC_OK;
}

static int csi_node_publish_volume(void *arg, const uint8_t *req, size_t len,
				   uint8_t **resp, size_t *resp_len, char *msg,
				   size_t msg_size)
{
	struct csi_publish_req r;
	int status;

	memset(&r, 0, sizeof(r));
	if (csi_publish_req_decode(req, len, &r) < 0) {
		csi_publish_req_clear(&r);
		(void)snprintf(msg, msg_size, "malformed NodePublishVolume");
		return GRPC_INVALID_ARGUMENT;
	}
	if (r.volume_id == NULL || r.target_path == NULL ||
	    r.volume_id[0] == '\0' || r.target_path[0] == '\0') {
		csi_publish_req_clear(&r);
		(void)snprintf(msg, msg_size,
			       "volume_id and target_path are "
			       "required");
		return GRPC_INVALID_ARGUMENT;
	}
	status = csi_publish_checked(arg, &r, msg, msg_size);
	csi_publish_req_clear(&r);
	return status;
}

static int csi_node_unpublish_volume(void *arg, const uint8_t *req, size_t len,
				     uint8_t **resp, size_t *resp_len,
				     char *msg, size_t msg_size)
{
	struct csi_plugin *p = arg;
	struct csi_unpublish_req r;
	struct errmsg err = {{0}};
	int rc;

	if (csi_unpublish_req_decode(req, len, &r) < 0 ||
	    r.volume_id[0] == '\0' || r.target_path[0] == '\0') {
		(void)snprintf(msg, msg_size,
			       "volume_id and target_path are "
			       "required");
		return GRPC_INVALID_ARGUMENT;
	}
	rc = csi_node_unpublish(p->node, r.volume_id, r.target_path, &err);
	if (rc < 0) {
		(void)snprintf(msg, msg_size, "%s", err.text);
		return csi_status_of(rc);
	}
	return GRPC_OK;
}

static const struct grpc_method csi_methods[] = {
    {"/csi.v1.Identity/GetPluginInfo", csi_get_plugin_info},
    {"/csi.v1.Identity/GetPluginCapabilities", csi_get_plugin_caps},
    {"/csi.v1.Identity/Probe", csi_probe},
    {"/csi.v1.Node/NodeGetInfo", csi_node_get_info},
    {"/csi.v1.Node/NodeGetCapabilities", csi_node_get_caps},
    {"/csi.v1.Node/NodePublishVolume", csi_node_publish_volume},
    {"/csi.v1.Node/NodeUnpublishVolume", csi_node_unpublish_volume},
};

static void csi_on_signal(int sig)
{
	if (csi_server != NULL)
		grpc_server_stop(csi_server);
}

static void csi_usage(FILE *out)
{
	fprintf(out, "usage: credbroker-csi --endpoint unix:///PATH "
		     "--node-id NAME [--pods-dir DIR]\n"
		     "                      [--handoff-timeout-seconds N]\n");
}

/* --endpoint, --node-id, --pods-dir, --handoff-timeout-seconds. */
static int csi_args(int argc, char **argv, const char **endpoint,
		    struct csi_plugin *p, struct csi_node_config *cfg)
{
	unsigned long secs;
	char *end;
	int i;

	for (i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--endpoint") == 0) {
			*endpoint = argv[i + 1];
		} else if (strcmp(argv[i], "--node-id") == 0) {
			(void)snprintf(p->node_id, sizeof(p->node_id), "%s",
				       argv[i + 1]);
		} else if (strcmp(argv[i], "--pods-dir") == 0) {
			(void)snprintf(cfg->pods_dir, sizeof(cfg->pods_dir),
				       "%s", argv[i + 1]);
		} else if (strcmp(argv[i], "--handoff-timeout-seconds") == 0) {
			errno = 0;
			secs = strtoul(argv[i + 1], &end, 10);
			if (errno != 0 || *end != '\0' || secs == 0 ||
			    secs > 3600)
				return -EINVAL;
			cfg->handoff_timeout_usec = secs * 1000000ULL;
		} else {
			return -EINVAL;
		}
	}
	return i == argc && *endpoint != NULL && p->node_id[0] != '\0'
		   ? 0
		   : -EINVAL;
}

int main(int argc, char **argv)
{
	struct csi_node_config cfg = {"/var/lib/kubelet/pods", 0};
	struct csi_plugin plugin = {"", NULL};
	struct errmsg err = {{0}};
	const char *endpoint = NULL;
	struct sigaction sa;
	int r;

	log_init("credbroker-csi", LOG_LEVEL_INFO);
	if (csi_args(argc, argv, &endpoint, &plugin, &cfg) < 0) {
		csi_usage(stderr);
		return 2;
	}
	/* Requests carry service-account tokens: no core dumps. */
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	umask(077);
	r = csi_node_new(&cfg, &plugin.node, &err);
	if (r == 0)
		r = grpc_server_new(endpoint, csi_methods,
				    sizeof(csi_methods) /
					sizeof(csi_methods[0]),
				    &plugin, &csi_server, &err);
	if (r < 0)
		fatalx(2, "event=start_failed error=\"%s\"", err.text);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = csi_on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	log_info("event=started endpoint=%s node=%s pods=%s", endpoint,
		 plugin.node_id, cfg.pods_dir);
	r = grpc_server_run(csi_server);
	grpc_server_free(csi_server);
	csi_server = NULL;
	csi_node_free(plugin.node);
	log_info("event=stopped");
	return r < 0 ? 1 : 0;
}
