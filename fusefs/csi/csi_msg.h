/* The CSI v1 messages the node plugin handles (container-storage-interface/
 * spec, csi.proto, package csi.v1): it decodes the requests and encodes
 * the responses of Identity GetPluginInfo, GetPluginCapabilities, Probe and
 * Node NodeGetInfo, NodeGetCapabilities, NodePublishVolume,
 * NodeUnpublishVolume.  Unknown fields are skipped, as proto3 requires;
 * a known field with the wrong wire type is -EBADMSG; anything past a cap
 * below is -EMSGSIZE.  For repeated occurrences of a singular field the
 * last one wins, and a map key seen twice keeps its last value.
 *
 * volume_context and secrets can carry service-account tokens: nothing
 * here logs, and csi_publish_req_clear() wipes every copied byte. */
#ifndef CB_CSI_MSG_H
#define CB_CSI_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pb.h"

/* Caps on decoded requests (bytes, without the terminating NUL). */
#define CSI_ID_MAX 4095		   /* volume_id */
#define CSI_PATH_MAX 4095	   /* target_path, staging_target_path */
#define CSI_MOUNT_NAME_MAX 256	   /* fs_type, volume_mount_group */
#define CSI_MAP_MAX_ENTRIES 64	   /* per map field */
#define CSI_MAP_KEY_MAX 256	   /* map key */
#define CSI_MAP_VALUE_MAX 16384	   /* map value: a token can be large */
#define CSI_MOUNT_FLAGS_MAX 64	   /* mount_flags entries */
#define CSI_MOUNT_FLAGS_BYTES 4096 /* their total, as the spec allows */

/* NodeServiceCapability.RPC.Type VOLUME_MOUNT_GROUP (csi.proto). */
#define CSI_NODE_CAP_VOLUME_MOUNT_GROUP 6

/* VolumeCapability.AccessMode.Mode values (csi.proto). */
enum csi_access_mode {
	CSI_MODE_UNKNOWN = 0,
	CSI_MODE_SINGLE_NODE_WRITER = 1,
	CSI_MODE_SINGLE_NODE_READER_ONLY = 2,
	CSI_MODE_MULTI_NODE_READER_ONLY = 3,
	CSI_MODE_MULTI_NODE_SINGLE_WRITER = 4,
	CSI_MODE_MULTI_NODE_MULTI_WRITER = 5,
	CSI_MODE_SINGLE_NODE_SINGLE_WRITER = 6,
	CSI_MODE_SINGLE_NODE_MULTI_WRITER = 7,
};

/* Which member of the VolumeCapability access_type oneof was sent. */
enum csi_access_type {
	CSI_ACCESS_NONE = 0,
	CSI_ACCESS_BLOCK,
	CSI_ACCESS_MOUNT,
};

/* A decoded map entry: NUL-terminated copies (a value may itself contain
 * NUL bytes; value_len counts them all). */
struct csi_kv {
	const char *key;
	size_t key_len;
	const char *value;
	size_t value_len;
};

struct csi_map {
	struct csi_kv ent[CSI_MAP_MAX_ENTRIES];
	size_t n;
};

/* A decoded NodePublishVolumeRequest.  Every string is a NUL-terminated
 * copy in one private arena (allocated once per decode, at most the size
 * of the input message); absent strings are "".  volume_id, the paths,
 * fs_type, volume_mount_group and mount_flags may not contain NUL bytes.
 * Owned by the caller's struct; release with csi_publish_req_clear(). */
struct csi_publish_req {
	const char *volume_id;
	const char *staging_target_path;
	const char *target_path;
	bool has_capability;
	enum csi_access_type access_type;
	const char *fs_type;
	const char *volume_mount_group;
	const char *mount_flags[CSI_MOUNT_FLAGS_MAX];
	size_t n_mount_flags;
	int32_t access_mode; /* enum csi_access_mode, or an unknown value */
	bool readonly;
	struct csi_map publish_context;
	struct csi_map secrets;
	struct csi_map volume_context;
	/* private */
	char *arena;
	size_t arena_len;
	size_t arena_cap;
	size_t mount_flags_bytes;
};

/* A decoded NodeUnpublishVolumeRequest: fixed-size copies, no
 * allocation, nothing secret. */
struct csi_unpublish_req {
	char volume_id[CSI_ID_MAX + 1];
	char target_path[CSI_PATH_MAX + 1];
};

/* A key/value pair given to an encoder. */
struct csi_pair {
	const char *key;
	const char *value;
};

/* Decodes a NodePublishVolumeRequest from buf[0..len) into *req (which
 * need not be initialised).  Returns 0; -EBADMSG for malformed protobuf or
 * a wrong wire type; -EMSGSIZE past a cap; -EINVAL for a NUL byte in a
 * field that must not hold one; -ENOMEM.  On failure *req is left cleared
 * (nothing to free); on success release it with csi_publish_req_clear(). */
__attribute__((warn_unused_result)) int
csi_publish_req_decode(const uint8_t *buf, size_t len,
		       struct csi_publish_req *req);

/* Wipes (explicit_bzero) and frees every copy held by req and zeroes the
 * struct.  NULL-safe and idempotent. */
void csi_publish_req_clear(struct csi_publish_req *req);

/* The entry for key in m, or NULL. */
const struct csi_kv *csi_map_get(const struct csi_map *m, const char *key);

/* The volume_context value for key (NUL-terminated, owned by req), with
 * its length in *len if len is non-NULL; NULL when the key is absent. */
const char *csi_volume_context_get(const struct csi_publish_req *req,
				   const char *key, size_t *len);

/* Decodes a NodeUnpublishVolumeRequest; same errors as
 * csi_publish_req_decode() except -ENOMEM.  *req is written only on
 * success. */
__attribute__((warn_unused_result)) int
csi_unpublish_req_decode(const uint8_t *buf, size_t len,
			 struct csi_unpublish_req *req);

/* Validates a request with no fields of its own (GetPluginInfo,
 * GetPluginCapabilities, Probe, NodeGetInfo, NodeGetCapabilities): 0 or
 * -EBADMSG.  Unknown fields are skipped. */
__attribute__((warn_unused_result)) int csi_empty_req_decode(const uint8_t *buf,
							     size_t len);

/* Encoders append one response message to b and return 0, -EMSGSIZE past
 * b's cap, -ENOMEM, or -EINVAL for a NULL required string.  On failure
 * discard b.  Default values are omitted, as proto3 encoders do. */

/* GetPluginInfoResponse { name = 1, vendor_version = 2, manifest = 3 }. */
__attribute__((warn_unused_result)) int
csi_plugin_info_encode(struct pb_buf *b, const char *name,
		       const char *vendor_version,
		       const struct csi_pair *manifest, size_t n_manifest);

/* An empty response: GetPluginCapabilitiesResponse (we offer no plugin
 * capabilities), NodePublishVolumeResponse, NodeUnpublishVolumeResponse.
 * Appends nothing; provided so every RPC has an encoder. */
__attribute__((warn_unused_result)) int csi_empty_resp_encode(struct pb_buf *b);

/* ProbeResponse { ready = 1 (google.protobuf.BoolValue { value = 1 }) };
 * the wrapper is always present, so false is distinguishable from
 * absent. */
__attribute__((warn_unused_result)) int csi_probe_encode(struct pb_buf *b,
							 bool ready);

/* NodeGetInfoResponse { node_id = 1, max_volumes_per_node = 2,
 * accessible_topology = 3 (Topology { segments = 1 map }) }; the topology
 * is omitted when n_topology is 0. */
__attribute__((warn_unused_result)) int
csi_node_info_encode(struct pb_buf *b, const char *node_id,
		     int64_t max_volumes_per_node,
		     const struct csi_pair *topology, size_t n_topology);

/* NodeGetCapabilitiesResponse advertising VOLUME_MOUNT_GROUP only:
 * capabilities = 1 { rpc = 1 { type = 1 } }. */
__attribute__((warn_unused_result)) int csi_node_caps_encode(struct pb_buf *b);

/* Encodes a decoded request back to NodePublishVolumeRequest bytes (for
 * tests and the fuzzer's round trip; fields in field-number order, maps in
 * decoded order). */
__attribute__((warn_unused_result)) int
csi_publish_req_encode(struct pb_buf *b, const struct csi_publish_req *req);

#endif
