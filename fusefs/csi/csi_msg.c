/* CSI v1 request decoders and response encoders: see csi_msg.h.
 *
 * Field numbers are those of container-storage-interface/spec csi.proto
 * (package csi.v1); google.protobuf.BoolValue is { bool value = 1 }. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "csi_msg.h"

/* NodePublishVolumeRequest */
#define PUB_VOLUME_ID 1
#define PUB_PUBLISH_CONTEXT 2
#define PUB_STAGING_TARGET_PATH 3
#define PUB_TARGET_PATH 4
#define PUB_VOLUME_CAPABILITY 5
#define PUB_READONLY 6
#define PUB_SECRETS 7
#define PUB_VOLUME_CONTEXT 8
/* VolumeCapability, its MountVolume and AccessMode */
#define CAP_BLOCK 1
#define CAP_MOUNT 2
#define CAP_ACCESS_MODE 3
#define MOUNT_FS_TYPE 1
#define MOUNT_FLAGS 2
#define MOUNT_VOLUME_MOUNT_GROUP 3
#define ACCESS_MODE_MODE 1
/* NodeUnpublishVolumeRequest */
#define UNPUB_VOLUME_ID 1
#define UNPUB_TARGET_PATH 2
/* map<string,string> entry */
#define MAP_KEY 1
#define MAP_VALUE 2

static const char empty_str[] = "";

static int want_wire(const struct pb_field *f, enum pb_wire wire)
{
	return f->wire == wire ? 0 : -EBADMSG;
}

/* Copies a length-delimited field into the request's arena as a
 * NUL-terminated string.  The arena is as large as the input, and every
 * copied string comes from distinct input bytes that also carry at least
 * a tag and a length byte, so it cannot run out; the check is defensive. */
static int arena_copy(struct csi_publish_req *req, const struct pb_field *f,
		      size_t cap, bool no_nul, const char **out)
{
	char *p;

	if (f->wire != PB_WIRE_LEN)
		return -EBADMSG;
	if (f->len > cap)
		return -EMSGSIZE;
	if (no_nul && memchr(f->data, '\0', f->len) != NULL)
		return -EINVAL;
	if (req->arena == NULL || req->arena_cap - req->arena_len < f->len + 1)
		return -EMSGSIZE;
	p = req->arena + req->arena_len;
	memcpy(p, f->data, f->len);
	p[f->len] = '\0';
	req->arena_len += f->len + 1;
	*out = p;
	return 0;
}

/* Adds or replaces (last value wins) one decoded entry. */
static int map_put(struct csi_map *m, const struct csi_kv *kv)
{
	size_t i;

	for (i = 0; i < m->n; i++) {
		if (m->ent[i].key_len == kv->key_len &&
		    memcmp(m->ent[i].key, kv->key, kv->key_len) == 0) {
			m->ent[i] = *kv;
			return 0;
		}
	}
	if (m->n >= CSI_MAP_MAX_ENTRIES)
		return -EMSGSIZE;
	m->ent[m->n++] = *kv;
	return 0;
}

/* Decodes one map<string,string> entry message into m. */
static int decode_map_entry(struct csi_publish_req *req, struct csi_map *m,
			    const struct pb_field *outer)
{
	struct csi_kv kv = {empty_str, 0, empty_str, 0};
	struct pb_reader r;
	struct pb_field f;
	int ret;

	if (outer->wire != PB_WIRE_LEN)
		return -EBADMSG;
	pb_reader_init(&r, outer->data, outer->len);
	while ((ret = pb_next(&r, &f)) > 0) {
		if (f.num == MAP_KEY) {
			ret = arena_copy(req, &f, CSI_MAP_KEY_MAX, false,
					 &kv.key);
			kv.key_len = f.len;
		} else if (f.num == MAP_VALUE) {
			ret = arena_copy(req, &f, CSI_MAP_VALUE_MAX, false,
					 &kv.value);
			kv.value_len = f.len;
		}
		if (ret < 0)
			return ret;
	}
	return ret < 0 ? ret : map_put(m, &kv);
}

/* Checks that a message we ignore the contents of is well formed. */
static int decode_opaque(const struct pb_field *outer)
{
	if (outer->wire != PB_WIRE_LEN)
		return -EBADMSG;
	return csi_empty_req_decode(outer->data, outer->len);
}

static int decode_mount_flag(struct csi_publish_req *req,
			     const struct pb_field *f)
{
	int ret;

	if (f->wire != PB_WIRE_LEN)
		return -EBADMSG;
	if (req->n_mount_flags >= CSI_MOUNT_FLAGS_MAX ||
	    f->len > CSI_MOUNT_FLAGS_BYTES - req->mount_flags_bytes)
		return -EMSGSIZE;
	ret = arena_copy(req, f, CSI_MOUNT_FLAGS_BYTES, true,
			 &req->mount_flags[req->n_mount_flags]);
	if (ret < 0)
		return ret;
	req->n_mount_flags++;
	req->mount_flags_bytes += f->len;
	return 0;
}

/* VolumeCapability.MountVolume */
static int decode_mount(struct csi_publish_req *req,
			const struct pb_field *outer)
{
	struct pb_reader r;
	struct pb_field f;
	int ret;

	if (outer->wire != PB_WIRE_LEN)
		return -EBADMSG;
	pb_reader_init(&r, outer->data, outer->len);
	while ((ret = pb_next(&r, &f)) > 0) {
		if (f.num == MOUNT_FS_TYPE)
			ret = arena_copy(req, &f, CSI_MOUNT_NAME_MAX, true,
					 &req->fs_type);
		else if (f.num == MOUNT_FLAGS)
			ret = decode_mount_flag(req, &f);
		else if (f.num == MOUNT_VOLUME_MOUNT_GROUP)
			ret = arena_copy(req, &f, CSI_MOUNT_NAME_MAX, true,
					 &req->volume_mount_group);
		if (ret < 0)
			return ret;
	}
	return ret;
}

/* VolumeCapability.AccessMode */
static int decode_access_mode(struct csi_publish_req *req,
			      const struct pb_field *outer)
{
	struct pb_reader r;
	struct pb_field f;
	int ret;

	if (outer->wire != PB_WIRE_LEN)
		return -EBADMSG;
	pb_reader_init(&r, outer->data, outer->len);
	while ((ret = pb_next(&r, &f)) > 0) {
		if (f.num != ACCESS_MODE_MODE)
			continue;
		if (want_wire(&f, PB_WIRE_VARINT) < 0)
			return -EBADMSG;
		/* An enum is an int32: keep the low 32 bits, as protobuf
		 * does. */
		req->access_mode = (int32_t)(uint32_t)f.u64;
	}
	return ret;
}

/* Leaves the mount member of the oneof empty (block was set). */
static void reset_mount(struct csi_publish_req *req)
{
	req->fs_type = empty_str;
	req->volume_mount_group = empty_str;
	memset(req->mount_flags, 0, sizeof(req->mount_flags));
	req->n_mount_flags = 0;
	req->mount_flags_bytes = 0;
}

/* VolumeCapability: block = 1 | mount = 2 (oneof), access_mode = 3. */
static int decode_capability(struct csi_publish_req *req,
			     const struct pb_field *outer)
{
	struct pb_reader r;
	struct pb_field f;
	int ret;

	if (outer->wire != PB_WIRE_LEN)
		return -EBADMSG;
	req->has_capability = true;
	pb_reader_init(&r, outer->data, outer->len);
	while ((ret = pb_next(&r, &f)) > 0) {
		if (f.num == CAP_BLOCK) {
			ret = decode_opaque(&f);
			reset_mount(req);
			req->access_type = CSI_ACCESS_BLOCK;
		} else if (f.num == CAP_MOUNT) {
			if (req->access_type != CSI_ACCESS_MOUNT)
				reset_mount(req);
			req->access_type = CSI_ACCESS_MOUNT;
			ret = decode_mount(req, &f);
		} else if (f.num == CAP_ACCESS_MODE) {
			ret = decode_access_mode(req, &f);
		}
		if (ret < 0)
			return ret;
	}
	return ret;
}

/* One top-level NodePublishVolumeRequest field; unknown ones are
 * skipped. */
static int decode_publish_field(struct csi_publish_req *req,
				const struct pb_field *f)
{
	switch (f->num) {
	case PUB_VOLUME_ID:
		return arena_copy(req, f, CSI_ID_MAX, true, &req->volume_id);
	case PUB_PUBLISH_CONTEXT:
		return decode_map_entry(req, &req->publish_context, f);
	case PUB_STAGING_TARGET_PATH:
		return arena_copy(req, f, CSI_PATH_MAX, true,
				  &req->staging_target_path);
	case PUB_TARGET_PATH:
		return arena_copy(req, f, CSI_PATH_MAX, true,
				  &req->target_path);
	case PUB_VOLUME_CAPABILITY:
		return decode_capability(req, f);
	case PUB_READONLY:
		if (want_wire(f, PB_WIRE_VARINT) < 0)
			return -EBADMSG;
		req->readonly = f->u64 != 0;
		return 0;
	case PUB_SECRETS:
		return decode_map_entry(req, &req->secrets, f);
	case PUB_VOLUME_CONTEXT:
		return decode_map_entry(req, &req->volume_context, f);
	}
	return 0;
}

static void publish_req_init(struct csi_publish_req *req)
{
	memset(req, 0, sizeof(*req));
	req->volume_id = empty_str;
	req->staging_target_path = empty_str;
	req->target_path = empty_str;
	req->fs_type = empty_str;
	req->volume_mount_group = empty_str;
}

int csi_publish_req_decode(const uint8_t *buf, size_t len,
			   struct csi_publish_req *req)
{
	struct pb_reader r;
	struct pb_field f;
	int ret;

	publish_req_init(req);
	if (len > 0) {
		req->arena = malloc(len);
		if (req->arena == NULL)
			return -ENOMEM;
		req->arena_cap = len;
	}
	pb_reader_init(&r, buf, len);
	while ((ret = pb_next(&r, &f)) > 0) {
		ret = decode_publish_field(req, &f);
		if (ret < 0)
			break;
	}
	if (ret < 0) {
		csi_publish_req_clear(req);
		return ret;
	}
	return 0;
}

void csi_publish_req_clear(struct csi_publish_req *req)
{
	if (req == NULL)
		return;
	if (req->arena != NULL) {
		explicit_bzero(req->arena, req->arena_cap);
		free(req->arena);
	}
	explicit_bzero(req, sizeof(*req));
	publish_req_init(req);
}

const struct csi_kv *csi_map_get(const struct csi_map *m, const char *key)
{
	size_t i, n = strlen(key);

	for (i = 0; i < m->n; i++) {
		if (m->ent[i].key_len == n &&
		    memcmp(m->ent[i].key, key, n) == 0)
			return &m->ent[i];
	}
	return NULL;
}

const char *csi_volume_context_get(const struct csi_publish_req *req,
				   const char *key, size_t *len)
{
	const struct csi_kv *kv = csi_map_get(&req->volume_context, key);

	if (kv == NULL)
		return NULL;
	if (len != NULL)
		*len = kv->value_len;
	return kv->value;
}

/* Copies a string field into a fixed array of cap + 1 bytes. */
static int copy_fixed(char *dst, size_t cap, const struct pb_field *f)
{
	if (f->wire != PB_WIRE_LEN)
		return -EBADMSG;
	if (f->len > cap)
		return -EMSGSIZE;
	if (memchr(f->data, '\0', f->len) != NULL)
		return -EINVAL;
	memcpy(dst, f->data, f->len);
	dst[f->len] = '\0';
	return 0;
}

int csi_unpublish_req_decode(const uint8_t *buf, size_t len,
			     struct csi_unpublish_req *req)
{
	struct csi_unpublish_req tmp;
	struct pb_reader r;
	struct pb_field f;
	int ret;

	memset(&tmp, 0, sizeof(tmp));
	pb_reader_init(&r, buf, len);
	while ((ret = pb_next(&r, &f)) > 0) {
		if (f.num == UNPUB_VOLUME_ID)
			ret = copy_fixed(tmp.volume_id, CSI_ID_MAX, &f);
		else if (f.num == UNPUB_TARGET_PATH)
			ret = copy_fixed(tmp.target_path, CSI_PATH_MAX, &f);
		if (ret < 0)
			return ret;
	}
	if (ret < 0)
		return ret;
	*req = tmp;
	return 0;
}

int csi_empty_req_decode(const uint8_t *buf, size_t len)
{
	struct pb_reader r;
	struct pb_field f;
	int ret;

	pb_reader_init(&r, buf, len);
	while ((ret = pb_next(&r, &f)) > 0)
		;
	return ret;
}

/* A string field, omitted when empty (the proto3 default). */
static int put_str_opt(struct pb_buf *b, uint32_t num, const char *s)
{
	if (s == NULL || s[0] == '\0')
		return 0;
	return pb_put_string(b, num, s);
}

static int put_pairs(struct pb_buf *b, uint32_t num, const struct csi_pair *p,
		     size_t n)
{
	size_t i;
	int ret;

	if (n > 0 && p == NULL)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (p[i].key == NULL || p[i].value == NULL)
			return -EINVAL;
		ret = pb_put_map_entry(b, num, p[i].key, strlen(p[i].key),
				       p[i].value, strlen(p[i].value));
		if (ret < 0)
			return ret;
	}
	return 0;
}

int csi_plugin_info_encode(struct pb_buf *b, const char *name,
			   const char *vendor_version,
			   const struct csi_pair *manifest, size_t n_manifest)
{
	int ret;

	if (name == NULL || vendor_version == NULL)
		return -EINVAL;
	ret = put_str_opt(b, 1, name);
	if (ret == 0)
		ret = put_str_opt(b, 2, vendor_version);
	if (ret == 0)
		ret = put_pairs(b, 3, manifest, n_manifest);
	return ret;
}

int csi_empty_resp_encode(struct pb_buf *b)
{
	(void)b;
	return 0;
}

int csi_probe_encode(struct pb_buf *b, bool ready)
{
	size_t mark;
	int ret;

	ret = pb_msg_begin(b, 1, &mark);
	if (ret == 0 && ready)
		ret = pb_put_bool(b, 1, true);
	if (ret == 0)
		ret = pb_msg_end(b, mark);
	return ret;
}

int csi_node_info_encode(struct pb_buf *b, const char *node_id,
			 int64_t max_volumes_per_node,
			 const struct csi_pair *topology, size_t n_topology)
{
	size_t mark;
	int ret;

	if (node_id == NULL)
		return -EINVAL;
	ret = put_str_opt(b, 1, node_id);
	if (ret == 0 && max_volumes_per_node != 0)
		ret = pb_put_int64(b, 2, max_volumes_per_node);
	if (ret < 0 || n_topology == 0)
		return ret;
	ret = pb_msg_begin(b, 3, &mark);
	if (ret == 0)
		ret = put_pairs(b, 1, topology, n_topology);
	if (ret == 0)
		ret = pb_msg_end(b, mark);
	return ret;
}

int csi_node_caps_encode(struct pb_buf *b)
{
	size_t cap, rpc;
	int ret;

	ret = pb_msg_begin(b, 1, &cap);
	if (ret == 0)
		ret = pb_msg_begin(b, 1, &rpc);
	if (ret == 0)
		ret = pb_put_enum(b, 1, CSI_NODE_CAP_VOLUME_MOUNT_GROUP);
	if (ret == 0)
		ret = pb_msg_end(b, rpc);
	if (ret == 0)
		ret = pb_msg_end(b, cap);
	return ret;
}

static int put_map(struct pb_buf *b, uint32_t num, const struct csi_map *m)
{
	size_t i;
	int ret;

	for (i = 0; i < m->n; i++) {
		ret = pb_put_map_entry(b, num, m->ent[i].key, m->ent[i].key_len,
				       m->ent[i].value, m->ent[i].value_len);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int put_mount(struct pb_buf *b, const struct csi_publish_req *req)
{
	size_t mark, i;
	int ret;

	ret = pb_msg_begin(b, CAP_MOUNT, &mark);
	if (ret == 0)
		ret = put_str_opt(b, MOUNT_FS_TYPE, req->fs_type);
	for (i = 0; ret == 0 && i < req->n_mount_flags; i++)
		ret = pb_put_string(b, MOUNT_FLAGS, req->mount_flags[i]);
	if (ret == 0)
		ret = put_str_opt(b, MOUNT_VOLUME_MOUNT_GROUP,
				  req->volume_mount_group);
	if (ret == 0)
		ret = pb_msg_end(b, mark);
	return ret;
}

static int put_capability(struct pb_buf *b, const struct csi_publish_req *req)
{
	size_t mark, am;
	int ret;

	ret = pb_msg_begin(b, PUB_VOLUME_CAPABILITY, &mark);
	if (ret == 0 && req->access_type == CSI_ACCESS_BLOCK)
		ret = pb_put_bytes(b, CAP_BLOCK, NULL, 0);
	else if (ret == 0 && req->access_type == CSI_ACCESS_MOUNT)
		ret = put_mount(b, req);
	if (ret == 0 && req->access_mode != 0) {
		ret = pb_msg_begin(b, CAP_ACCESS_MODE, &am);
		if (ret == 0)
			ret =
			    pb_put_enum(b, ACCESS_MODE_MODE, req->access_mode);
		if (ret == 0)
			ret = pb_msg_end(b, am);
	}
	if (ret == 0)
		ret = pb_msg_end(b, mark);
	return ret;
}

int csi_publish_req_encode(struct pb_buf *b, const struct csi_publish_req *req)
{
	int ret;

	ret = put_str_opt(b, PUB_VOLUME_ID, req->volume_id);
	if (ret == 0)
		ret = put_map(b, PUB_PUBLISH_CONTEXT, &req->publish_context);
	if (ret == 0)
		ret = put_str_opt(b, PUB_STAGING_TARGET_PATH,
				  req->staging_target_path);
	if (ret == 0)
		ret = put_str_opt(b, PUB_TARGET_PATH, req->target_path);
	if (ret == 0 && req->has_capability)
		ret = put_capability(b, req);
	if (ret == 0 && req->readonly)
		ret = pb_put_bool(b, PUB_READONLY, true);
	if (ret == 0)
		ret = put_map(b, PUB_SECRETS, &req->secrets);
	if (ret == 0)
		ret = put_map(b, PUB_VOLUME_CONTEXT, &req->volume_context);
	return ret;
}
