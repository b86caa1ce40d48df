/* libFuzzer target for the CSI message codec (fusefs/csi/pb.c,
 * csi_msg.c): any input is decoded as each request type and must either
 * decode or fail with -errno, never crash, leak or read past size.  A
 * decoded NodePublishVolumeRequest is re-encoded and decoded again, and
 * must come back the same; the responses are encoded from decoded
 * strings into a small capped buffer, so the -EMSGSIZE paths run too.
 *
 * tests/fuzz/replay.c replays corpus/csi_msg/ as a plain test; wire it with
 * cb_fuzz_target(fuzz_csi_msg fuse cb_csi). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csi_msg.h"
#include "pb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_errno(int r)
{
	if (r != 0 && r != -EBADMSG && r != -EMSGSIZE && r != -EINVAL &&
	    r != -ENOMEM)
		abort();
}

static void same_str(const char *a, const char *b)
{
	if (strcmp(a, b) != 0)
		abort();
}

static void same_map(const struct csi_map *a, const struct csi_map *b)
{
	size_t i;

	if (a->n != b->n)
		abort();
	for (i = 0; i < a->n; i++) {
		if (a->ent[i].key_len != b->ent[i].key_len ||
		    a->ent[i].value_len != b->ent[i].value_len ||
		    memcmp(a->ent[i].key, b->ent[i].key, a->ent[i].key_len) ||
		    memcmp(a->ent[i].value, b->ent[i].value,
			   a->ent[i].value_len))
			abort();
	}
}

static void same_req(const struct csi_publish_req *a,
		     const struct csi_publish_req *b)
{
	size_t i;

	same_str(a->volume_id, b->volume_id);
	same_str(a->staging_target_path, b->staging_target_path);
	same_str(a->target_path, b->target_path);
	same_str(a->fs_type, b->fs_type);
	same_str(a->volume_mount_group, b->volume_mount_group);
	if (a->has_capability != b->has_capability ||
	    a->access_type != b->access_type ||
	    a->access_mode != b->access_mode || a->readonly != b->readonly ||
	    a->n_mount_flags != b->n_mount_flags)
		abort();
	for (i = 0; i < a->n_mount_flags; i++)
		same_str(a->mount_flags[i], b->mount_flags[i]);
	same_map(&a->publish_context, &b->publish_context);
	same_map(&a->secrets, &b->secrets);
	same_map(&a->volume_context, &b->volume_context);
}

/* Encode, decode again, compare. */
static void round_trip(const struct csi_publish_req *req, size_t size)
{
	struct csi_publish_req again;
	struct pb_buf b;
	int r;

	/* Re-encoding can grow an entry with absent key and value from 2
	 * to 6 bytes. */
	pb_buf_init(&b, 3 * size + 64);
	r = csi_publish_req_encode(&b, req);
	if (r != 0)
		abort();
	r = csi_publish_req_decode(pb_buf_data(&b), pb_buf_len(&b), &again);
	check_errno(r);
	if (r == 0) {
		same_req(req, &again);
		csi_publish_req_clear(&again);
	} else if (r != -ENOMEM) {
		abort();
	}
	pb_buf_free(&b);
}

/* Responses built from decoded strings, into a buffer capped at 512
 * bytes; each must succeed or report the cap. */
static void encode_responses(const struct csi_publish_req *req)
{
	struct csi_pair pairs[CSI_MAP_MAX_ENTRIES];
	const struct csi_map *m = &req->volume_context;
	struct pb_buf b;
	size_t i;

	for (i = 0; i < m->n; i++) {
		pairs[i].key = m->ent[i].key;
		pairs[i].value = m->ent[i].value;
	}
	pb_buf_init(&b, 512);
	check_errno(csi_plugin_info_encode(&b, req->volume_id, req->target_path,
					   pairs, m->n));
	pb_buf_free(&b);
	check_errno(csi_node_info_encode(
	    &b, req->volume_id, (int64_t)req->volume_context.n, pairs, m->n));
	pb_buf_free(&b);
	check_errno(csi_probe_encode(&b, req->readonly));
	check_errno(csi_node_caps_encode(&b));
	check_errno(csi_empty_resp_encode(&b));
	pb_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct csi_unpublish_req *un;
	struct csi_publish_req req;
	int r;

	r = csi_publish_req_decode(data, size, &req);
	check_errno(r);
	if (r == 0) {
		(void)csi_volume_context_get(
		    &req, "csi.storage.k8s.io/serviceAccount.tokens", NULL);
		round_trip(&req, size);
		encode_responses(&req);
	} else if (req.arena != NULL || req.volume_context.n != 0) {
		abort(); /* a failed decode must leave req cleared */
	}
	csi_publish_req_clear(&req);

	un = malloc(sizeof(*un));
	if (un != NULL) {
		check_errno(csi_unpublish_req_decode(data, size, un));
		free(un);
	}
	r = csi_empty_req_decode(data, size);
	if (r != 0 && r != -EBADMSG)
		abort();
	return 0;
}
