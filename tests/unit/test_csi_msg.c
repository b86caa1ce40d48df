/* Unit tests for the protobuf codec (fusefs/csi/pb.c) and the CSI v1
 * messages (fusefs/csi/csi_msg.c).  Expected bytes are assembled by hand;
 * a tag byte is (field number << 3 | wire type), so for example 0x0a is
 * field 1 length-delimited, 0x22 field 4, 0x2a field 5, 0x30 field 6
 * varint and 0x42 field 8; a length of 128 or more takes two varint bytes
 * (272 = 0x90 0x02, 227 = 0xe3 0x01). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "csi_msg.h"
#include "pb.h"

/* The NodePublishVolumeRequest kubelet sends for a CSI inline ephemeral
 * volume with podInfoOnMount and a service-account token request, for a
 * pod with fsGroup 2000 and readOnly: true. */
static const char kubelet_publish[] =
    /* volume_id = 1 (68 bytes) */
    "\x0a\x44"
    "csi-0f3a6c2d9e8b7a6f5e4d3c2b1a0918273645f5e4d3c2b1a09f8e"
    "7d6c5b4a3921"
    /* target_path = 4 (96 bytes) */
    "\x22\x60"
    "/var/lib/kubelet/pods/6f1f0c7e-3b7a-4d2e-9c1a-2b8f5e4d7a"
    "10/volumes/kubernetes.io~csi/creds/mount"
    /* volume_capability = 5 (12 bytes) { mount = 2 (6) { volume_mount_group = 3
       "2000" }, access_mode = 3 (2) { mode = 1: 1 SINGLE_NODE_WRITER } } */
    "\x2a\x0c"
    "\x12\x06\x1a\x04"
    "2000"
    "\x1a\x02\x08\x01"
    /* readonly = 6: true */
    "\x30\x01"
    /* volume_context = 8 (36) { key = 1 (28), value = 2 (4) } */
    "\x42\x24"
    "\x0a\x1c"
    "csi.storage.k8s.io/ephemeral"
    "\x12\x04"
    "true"
    /* volume_context = 8 (50) { key = 1 (27), value = 2 (19) } */
    "\x42\x32"
    "\x0a\x1b"
    "csi.storage.k8s.io/pod.name"
    "\x12\x13"
    "app-7d9f8c6b5-x2k4q"
    /* volume_context = 8 (47) { key = 1 (32), value = 2 (11) } */
    "\x42\x2f"
    "\x0a\x20"
    "csi.storage.k8s.io/pod.namespace"
    "\x12\x0b"
    "workspace-a"
    /* volume_context = 8 (66) { key = 1 (26), value = 2 (36) } */
    "\x42\x42"
    "\x0a\x1a"
    "csi.storage.k8s.io/pod.uid"
    "\x12\x24"
    "6f1f0c7e-3b7a-4d2e-9c1a-2b8f5e4d7a10"
    /* volume_context = 8 (45) { key = 1 (38), value = 2 (3) } */
    "\x42\x2d"
    "\x0a\x26"
    "csi.storage.k8s.io/serviceAccount.name"
    "\x12\x03"
    "app"
    /* volume_context = 8 (272) { key = 1 (40), value = 2 (227) } */
    "\x42\x90\x02"
    "\x0a\x28"
    "csi.storage.k8s.io/serviceAccount.tokens"
    "\x12\xe3\x01"
    "{\"credbroker\":{\"token\":\"eyJhbGciOiJSUzI1NiIsImtpZCI6InRl"
    "c3QifQ.eyJhdWQiOlsiY3JlZGJyb2tlciJdLCJzdWIiOiJzeXN0ZW06c"
    "2VydmljZWFjY291bnQ6d29ya3NwYWNlLWE6YXBwIn0.c2lnbmF0dXJlL"
    "W5vdC1yZWFs\",\"expirationTimestamp\":\"2030-01-01T00:00:00Z"
    "\"}}"
    /* volume_context = 8 (23) { key = 1 (7), value = 2 (12) } */
    "\x42\x17"
    "\x0a\x07"
    "profile"
    "\x12\x0c"
    "postgres-app";
#define KUBELET_LEN (sizeof(kubelet_publish) - 1)
#define TOKEN_LEN 227

/* Encodes into a fresh growable buffer of up to 4 MiB. */
static void buf_new(struct pb_buf *b)
{
	pb_buf_init(b, 4u << 20);
}

static int decode_buf(const struct pb_buf *b, struct csi_publish_req *req)
{
	return csi_publish_req_decode(pb_buf_data(b), pb_buf_len(b), req);
}

static int decode_lit(const char *p, size_t n)
{
	struct csi_publish_req req;
	int r = csi_publish_req_decode((const uint8_t *)p, n, &req);

	csi_publish_req_clear(&req);
	return r;
}
#define DECODE(lit) decode_lit(lit, sizeof(lit) - 1)

static void expect_bytes(const struct pb_buf *b, const char *want, size_t n)
{
	ck_assert_uint_eq(pb_buf_len(b), n);
	if (n > 0)
		ck_assert_mem_eq(pb_buf_data(b), want, n);
}
#define EXPECT(b, lit) expect_bytes(b, lit, sizeof(lit) - 1)

START_TEST(test_csi_msg_kubelet_ephemeral_publish)
{
	static const char *const keys[] = {
	    "csi.storage.k8s.io/ephemeral",
	    "csi.storage.k8s.io/pod.name",
	    "csi.storage.k8s.io/pod.namespace",
	    "csi.storage.k8s.io/pod.uid",
	    "csi.storage.k8s.io/serviceAccount.name",
	    "csi.storage.k8s.io/serviceAccount.tokens",
	    "profile",
	};
	struct csi_publish_req req;
	const char *tok;
	size_t i, n = 0;

	ck_assert_uint_eq(KUBELET_LEN, 738);
	ck_assert_int_eq(
	    csi_publish_req_decode((const uint8_t *)kubelet_publish,
				   KUBELET_LEN, &req),
	    0);
	ck_assert_uint_eq(strlen(req.volume_id), 68);
	ck_assert_str_eq(req.target_path,
			 "/var/lib/kubelet/pods/6f1f0c7e-3b7a-4d2e-9c1a-"
			 "2b8f5e4d7a10/volumes/kubernetes.io~csi/creds/mount");
	ck_assert_str_eq(req.staging_target_path, "");
	ck_assert(req.has_capability);
	ck_assert_int_eq(req.access_type, CSI_ACCESS_MOUNT);
	ck_assert_str_eq(req.fs_type, "");
	ck_assert_str_eq(req.volume_mount_group, "2000");
	ck_assert_uint_eq(req.n_mount_flags, 0);
	ck_assert_int_eq(req.access_mode, CSI_MODE_SINGLE_NODE_WRITER);
	ck_assert(req.readonly);
	ck_assert_uint_eq(req.publish_context.n, 0);
	ck_assert_uint_eq(req.secrets.n, 0);
	ck_assert_uint_eq(req.volume_context.n, 7);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		ck_assert_ptr_nonnull(
		    csi_volume_context_get(&req, keys[i], NULL));
	ck_assert_str_eq(
	    csi_volume_context_get(&req, "csi.storage.k8s.io/ephemeral", NULL),
	    "true");
	ck_assert_str_eq(csi_volume_context_get(
			     &req, "csi.storage.k8s.io/pod.namespace", NULL),
			 "workspace-a");
	tok = csi_volume_context_get(
	    &req, "csi.storage.k8s.io/serviceAccount.tokens", &n);
	ck_assert_uint_eq(n, TOKEN_LEN);
	ck_assert_uint_eq(strlen(tok), TOKEN_LEN);
	ck_assert(strncmp(tok, "{\"credbroker\":{\"token\":\"eyJ", 26) == 0);
	ck_assert_ptr_null(
	    csi_volume_context_get(&req, "csi.storage.k8s.io", NULL));
	ck_assert_ptr_null(csi_volume_context_get(&req, "", NULL));

	csi_publish_req_clear(&req);
	ck_assert_ptr_null(req.arena);
	ck_assert_uint_eq(req.volume_context.n, 0);
	ck_assert_str_eq(req.volume_id, "");
	ck_assert_ptr_null(csi_volume_context_get(&req, "profile", NULL));
	csi_publish_req_clear(&req); /* idempotent */
	csi_publish_req_clear(NULL);
}
END_TEST

/* Re-encoding writes fields in number order and maps in decoded order,
 * which is the order kubelet_publish uses, so the bytes come back
 * unchanged. */
START_TEST(test_csi_msg_publish_round_trip_exact)
{
	struct csi_publish_req req, again;
	struct pb_buf b;

	ck_assert_int_eq(
	    csi_publish_req_decode((const uint8_t *)kubelet_publish,
				   KUBELET_LEN, &req),
	    0);
	buf_new(&b);
	ck_assert_int_eq(csi_publish_req_encode(&b, &req), 0);
	expect_bytes(&b, kubelet_publish, KUBELET_LEN);
	ck_assert_int_eq(decode_buf(&b, &again), 0);
	ck_assert_str_eq(again.volume_id, req.volume_id);
	ck_assert_uint_eq(again.volume_context.n, 7);
	csi_publish_req_clear(&again);
	csi_publish_req_clear(&req);
	pb_buf_free(&b);
}
END_TEST

START_TEST(test_csi_msg_publish_round_trip_all_fields)
{
	struct csi_publish_req req, out;
	struct pb_buf b, b2;
	size_t mark, cap;

	buf_new(&b);
	ck_assert_int_eq(pb_put_string(&b, 1, "vol-1"), 0);
	ck_assert_int_eq(pb_put_map_entry(&b, 2, "pk", 2, "pv", 2), 0);
	ck_assert_int_eq(pb_put_string(&b, 3, "/stage"), 0);
	ck_assert_int_eq(pb_put_string(&b, 4, "/target"), 0);
	ck_assert_int_eq(pb_msg_begin(&b, 5, &cap), 0);
	ck_assert_int_eq(pb_msg_begin(&b, 2, &mark), 0);
	ck_assert_int_eq(pb_put_string(&b, 1, "fuse"), 0);
	ck_assert_int_eq(pb_put_string(&b, 2, "ro"), 0);
	ck_assert_int_eq(pb_put_string(&b, 2, ""), 0);
	ck_assert_int_eq(pb_put_string(&b, 2, "noatime"), 0);
	ck_assert_int_eq(pb_put_string(&b, 3, "1000"), 0);
	ck_assert_int_eq(pb_msg_end(&b, mark), 0);
	ck_assert_int_eq(pb_msg_begin(&b, 3, &mark), 0);
	ck_assert_int_eq(pb_put_enum(&b, 1, CSI_MODE_MULTI_NODE_READER_ONLY),
			 0);
	ck_assert_int_eq(pb_msg_end(&b, mark), 0);
	ck_assert_int_eq(pb_msg_end(&b, cap), 0);
	ck_assert_int_eq(pb_put_bool(&b, 6, true), 0);
	ck_assert_int_eq(pb_put_map_entry(&b, 7, "password", 8, "s3\0cr", 5),
			 0);
	ck_assert_int_eq(pb_put_map_entry(&b, 8, "k", 1, "", 0), 0);

	ck_assert_int_eq(decode_buf(&b, &req), 0);
	ck_assert_str_eq(req.volume_id, "vol-1");
	ck_assert_str_eq(csi_map_get(&req.publish_context, "pk")->value, "pv");
	ck_assert_str_eq(req.staging_target_path, "/stage");
	ck_assert_str_eq(req.target_path, "/target");
	ck_assert_str_eq(req.fs_type, "fuse");
	ck_assert_uint_eq(req.n_mount_flags, 3);
	ck_assert_str_eq(req.mount_flags[0], "ro");
	ck_assert_str_eq(req.mount_flags[1], "");
	ck_assert_str_eq(req.mount_flags[2], "noatime");
	ck_assert_str_eq(req.volume_mount_group, "1000");
	ck_assert_int_eq(req.access_mode, CSI_MODE_MULTI_NODE_READER_ONLY);
	ck_assert(req.readonly);
	ck_assert_uint_eq(csi_map_get(&req.secrets, "password")->value_len, 5);
	ck_assert_mem_eq(csi_map_get(&req.secrets, "password")->value, "s3\0cr",
			 5);
	ck_assert_uint_eq(csi_map_get(&req.volume_context, "k")->value_len, 0);

	buf_new(&b2);
	ck_assert_int_eq(csi_publish_req_encode(&b2, &req), 0);
	expect_bytes(&b2, (const char *)pb_buf_data(&b), pb_buf_len(&b));
	ck_assert_int_eq(decode_buf(&b2, &out), 0);
	ck_assert_str_eq(out.mount_flags[2], "noatime");
	csi_publish_req_clear(&out);
	csi_publish_req_clear(&req);
	pb_buf_free(&b2);
	pb_buf_free(&b);
}
END_TEST

START_TEST(test_csi_msg_varint_vectors)
{
	static const struct {
		uint64_t v;
		const char *bytes;
		size_t n;
	} vec[] = {
	    {0, "\x00", 1},
	    {1, "\x01", 1},
	    {127, "\x7f", 1},
	    {128, "\x80\x01", 2},
	    {300, "\xac\x02", 2}, /* 300 = 0b10_0101100 */
	    {16384, "\x80\x80\x01", 3},
	    {UINT64_MAX, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 10},
	};
	uint8_t mem[16];
	struct pb_buf b;
	uint64_t v;
	size_t i, used;

	for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		pb_buf_init_fixed(&b, mem, sizeof(mem));
		ck_assert_int_eq(pb_put_varint(&b, vec[i].v), 0);
		expect_bytes(&b, vec[i].bytes, vec[i].n);
		ck_assert_uint_eq(pb_varint_size(vec[i].v), vec[i].n);
		ck_assert_int_eq(pb_varint_decode((const uint8_t *)vec[i].bytes,
						  vec[i].n, &v, &used),
				 0);
		ck_assert_uint_eq(v, vec[i].v);
		ck_assert_uint_eq(used, vec[i].n);
		pb_buf_free(&b);
	}
	/* Non-canonical but legal: 1 padded to three bytes. */
	ck_assert_int_eq(
	    pb_varint_decode((const uint8_t *)"\x81\x80\x00", 3, &v, &used), 0);
	ck_assert_uint_eq(v, 1);
	ck_assert_uint_eq(used, 3);
}
END_TEST

START_TEST(test_csi_msg_reader_errors)
{
	/* Each is rejected by the reader itself. */
	static const struct {
		const char *p;
		size_t n;
	} bad[] = {
	    {"\x08\x80", 2}, /* truncated varint value */
	    {"\x80", 1},     /* truncated tag */
	    {"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", 11}, /* >64 bit */
	    {"\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x00", 12}, /* 11 */
	    {"\x0a\x05"
	     "ab",
	     4},			     /* length past the end */
	    {"\x0a\xff\xff\xff\xff\x0f", 6}, /* 4 GiB length */
	    {"\x0b", 1},		     /* start group */
	    {"\x0c", 1},		     /* end group */
	    {"\x0e\x00", 2},		     /* wire type 6 */
	    {"\x0f\x00", 2},		     /* wire type 7 */
	    {"\x00\x00", 2},		     /* field 0, varint */
	    {"\x02\x00", 2},		     /* field 0, length-delimited */
	    {"\x80\x80\x80\x80\x10\x00", 6}, /* field 2^29 */
	    {"\x09"
	     "1234567",
	     8}, /* fixed64 short */
	    {"\x0d"
	     "123",
	     4}, /* fixed32 short */
	};
	struct csi_unpublish_req un;
	struct pb_reader r;
	struct pb_field f;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pb_reader_init(&r, (const uint8_t *)bad[i].p, bad[i].n);
		ck_assert_int_eq(pb_next(&r, &f), -EBADMSG);
		ck_assert_int_eq(decode_lit(bad[i].p, bad[i].n), -EBADMSG);
		ck_assert_int_eq(csi_unpublish_req_decode(
				     (const uint8_t *)bad[i].p, bad[i].n, &un),
				 -EBADMSG);
		ck_assert_int_eq(
		    csi_empty_req_decode((const uint8_t *)bad[i].p, bad[i].n),
		    -EBADMSG);
	}
	/* The largest field number is fine. */
	pb_reader_init(&r, (const uint8_t *)"\xf8\xff\xff\xff\x0f\x01", 6);
	ck_assert_int_eq(pb_next(&r, &f), 1);
	ck_assert_uint_eq(f.num, PB_FIELD_MAX);
	ck_assert_int_eq(pb_next(&r, &f), 0);
}
END_TEST

START_TEST(test_csi_msg_reader_fields)
{
	static const char msg[] = "\x08\x96\x01" /* 1: 150 */
				  "\x11\x01\x02\x03\x04\x05\x06\x07\x08" /* 2 */
				  "\x1a\x03"
				  "abc"			 /* 3: "abc" */
				  "\x25\xff\x00\x00\x80" /* 4 */
				  "\x2a\x00";		 /* 5: "" */
	struct pb_reader r;
	struct pb_field f;

	pb_reader_init(&r, (const uint8_t *)msg, sizeof(msg) - 1);
	ck_assert_int_eq(pb_next(&r, &f), 1);
	ck_assert_uint_eq(f.num, 1);
	ck_assert_int_eq(f.wire, PB_WIRE_VARINT);
	ck_assert_uint_eq(f.u64, 150);
	ck_assert_int_eq(pb_next(&r, &f), 1);
	ck_assert_int_eq(f.wire, PB_WIRE_FIXED64);
	ck_assert_uint_eq(f.u64, 0x0807060504030201ull);
	ck_assert_int_eq(pb_next(&r, &f), 1);
	ck_assert_int_eq(f.wire, PB_WIRE_LEN);
	ck_assert_uint_eq(f.len, 3);
	ck_assert_mem_eq(f.data, "abc", 3);
	ck_assert_int_eq(pb_next(&r, &f), 1);
	ck_assert_int_eq(f.wire, PB_WIRE_FIXED32);
	ck_assert_uint_eq(f.u64, 0x800000ffu);
	ck_assert_int_eq(pb_next(&r, &f), 1);
	ck_assert_uint_eq(f.num, 5);
	ck_assert_uint_eq(f.len, 0);
	ck_assert_ptr_nonnull(f.data);
	ck_assert_int_eq(pb_next(&r, &f), 0);
	ck_assert_int_eq(pb_next(&r, &f), 0);
	pb_reader_init(&r, NULL, 0);
	ck_assert_int_eq(pb_next(&r, &f), 0);
}
END_TEST

/* A malformed nested message fails the whole request. */
START_TEST(test_csi_msg_nested_errors)
{
	/* capability { mount { fs_type: truncated length } } */
	ck_assert_int_eq(DECODE("\x2a\x04\x12\x02\x0a\x05"), -EBADMSG);
	/* capability { block { group } } */
	ck_assert_int_eq(DECODE("\x2a\x03\x0a\x01\x0b"), -EBADMSG);
	/* capability { access_mode { field 0 } } */
	ck_assert_int_eq(DECODE("\x2a\x04\x1a\x02\x00\x01"), -EBADMSG);
	/* volume_context entry { key: overlong varint length } */
	ck_assert_int_eq(DECODE("\x42\x0c\x0a\xff\xff\xff\xff\xff\xff\xff\xff"
				"\xff\xff\x01"),
			 -EBADMSG);
	/* secrets entry whose length runs past the outer message */
	ck_assert_int_eq(DECODE("\x3a\x04\x0a\x01"
				"k"),
			 -EBADMSG);
}
END_TEST

START_TEST(test_csi_msg_wrong_wire_types)
{
	struct csi_unpublish_req un;

	ck_assert_int_eq(DECODE("\x08\x01"), -EBADMSG); /* volume_id varint */
	ck_assert_int_eq(DECODE("\x12\x00"
				"\x10\x01"),
			 -EBADMSG);
	ck_assert_int_eq(DECODE("\x1d\x00\x00\x00\x00"), -EBADMSG); /* 3 */
	ck_assert_int_eq(DECODE("\x21\x00\x00\x00\x00\x00\x00\x00\x00"),
			 -EBADMSG);			/* target_path */
	ck_assert_int_eq(DECODE("\x28\x01"), -EBADMSG); /* capability */
	ck_assert_int_eq(DECODE("\x32\x00"), -EBADMSG); /* readonly LEN */
	ck_assert_int_eq(DECODE("\x38\x01"), -EBADMSG); /* secrets varint */
	ck_assert_int_eq(DECODE("\x40\x01"), -EBADMSG); /* context varint */
	ck_assert_int_eq(DECODE("\x42\x02\x08\x01"), -EBADMSG); /* key */
	ck_assert_int_eq(DECODE("\x42\x02\x10\x01"), -EBADMSG); /* value */
	ck_assert_int_eq(DECODE("\x2a\x02\x08\x00"), -EBADMSG); /* block */
	ck_assert_int_eq(DECODE("\x2a\x02\x10\x00"), -EBADMSG); /* mount */
	ck_assert_int_eq(DECODE("\x2a\x02\x18\x01"), -EBADMSG); /* mode msg */
	ck_assert_int_eq(DECODE("\x2a\x04\x12\x02\x08\x01"), -EBADMSG);
	ck_assert_int_eq(DECODE("\x2a\x04\x12\x02\x10\x01"), -EBADMSG);
	ck_assert_int_eq(DECODE("\x2a\x04\x12\x02\x18\x01"), -EBADMSG);
	ck_assert_int_eq(DECODE("\x2a\x04\x1a\x02\x0a\x00"), -EBADMSG);
	ck_assert_int_eq(
	    csi_unpublish_req_decode((const uint8_t *)"\x08\x01", 2, &un),
	    -EBADMSG);
	ck_assert_int_eq(
	    csi_unpublish_req_decode((const uint8_t *)"\x10\x01", 2, &un),
	    -EBADMSG);
}
END_TEST

START_TEST(test_csi_msg_unknown_fields_skipped)
{
	static const char msg[] =
	    "\xf8\x06\x2a" /* 111: varint 42 */
	    "\x0a\x01"
	    "v"					       /* volume_id */
	    "\x81\x07\x01\x02\x03\x04\x05\x06\x07\x08" /* 112: fixed64 */
	    "\x8d\x07\x01\x02\x03\x04"		       /* 113: fixed32 */
	    "\x8a\x07\x03"
	    "xyz"		       /* 113: bytes */
	    "\x2a\x0c"		       /* capability (12) */
	    "\x20\x07"		       /* 4: unknown varint */
	    "\x12\x04\x38\x01\x1a\x00" /* mount { 7: 1, "" } */
	    "\x1a\x02\x08\x02"	       /* mode 2 */
	    "\x42\x0a"		       /* volume_context (10) */
	    "\x18\x05"		       /* 3: unknown varint */
	    "\x0a\x01"
	    "k"
	    "\x12\x01"
	    "v"		/* k = v */
	    "\x22\x00"; /* 4: unknown bytes */
	struct csi_publish_req req;

	ck_assert_int_eq(
	    csi_publish_req_decode((const uint8_t *)msg, sizeof(msg) - 1, &req),
	    0);
	ck_assert_str_eq(req.volume_id, "v");
	ck_assert_int_eq(req.access_type, CSI_ACCESS_MOUNT);
	ck_assert_int_eq(req.access_mode, CSI_MODE_SINGLE_NODE_READER_ONLY);
	ck_assert_str_eq(csi_volume_context_get(&req, "k", NULL), "v");
	csi_publish_req_clear(&req);
	ck_assert_int_eq(
	    csi_empty_req_decode((const uint8_t *)msg, sizeof(msg) - 1), 0);
	ck_assert_int_eq(csi_empty_req_decode(NULL, 0), 0);
}
END_TEST

START_TEST(test_csi_msg_last_value_wins)
{
	struct csi_publish_req req;
	static const char msg[] = "\x0a\x01"
				  "a"
				  "\x0a\x01"
				  "b"
				  "\x42\x06\x0a\x01"
				  "k\x12\x01"
				  "1"
				  "\x42\x06\x0a\x01"
				  "k\x12\x01"
				  "2"
				  "\x42\x02\x12\x00" /* key and value absent */
				  "\x2a\x04\x12\x02\x0a\x00" /* mount, fs "" */
				  "\x2a\x02\x0a\x00"	     /* then block */
				  "\x30\x01\x30\x00";

	ck_assert_int_eq(
	    csi_publish_req_decode((const uint8_t *)msg, sizeof(msg) - 1, &req),
	    0);
	ck_assert_str_eq(req.volume_id, "b");
	ck_assert_uint_eq(req.volume_context.n, 2);
	ck_assert_str_eq(csi_volume_context_get(&req, "k", NULL), "2");
	ck_assert_str_eq(csi_volume_context_get(&req, "", NULL), "");
	ck_assert_int_eq(req.access_type, CSI_ACCESS_BLOCK);
	ck_assert(!req.readonly);
	csi_publish_req_clear(&req);
}
END_TEST

/* A string field of n bytes of 'x' as the only field num. */
static int decode_long(uint32_t num, size_t n)
{
	struct csi_publish_req req;
	struct pb_buf b;
	char *s = malloc(n + 1);
	int r;

	ck_assert_ptr_nonnull(s);
	memset(s, 'x', n);
	s[n] = '\0';
	buf_new(&b);
	ck_assert_int_eq(pb_put_string(&b, num, s), 0);
	r = decode_buf(&b, &req);
	if (r == 0)
		ck_assert_uint_eq(strlen(num == 1   ? req.volume_id
					 : num == 3 ? req.staging_target_path
						    : req.target_path),
				  n);
	csi_publish_req_clear(&req);
	pb_buf_free(&b);
	free(s);
	return r;
}

/* A volume_context (or secrets, num 7) of entries n, key and value
 * sizes. */
static int decode_map(uint32_t num, size_t entries, size_t klen, size_t vlen)
{
	struct csi_publish_req req;
	char *k = malloc(klen + 8), *v = malloc(vlen + 1);
	struct pb_buf b;
	size_t i;
	int r;

	ck_assert(k != NULL && v != NULL);
	memset(k, 'k', klen + 8);
	memset(v, 'v', vlen + 1);
	buf_new(&b);
	for (i = 0; i < entries; i++) {
		/* Distinct keys: the first bytes carry the index. */
		k[0] = (char)('A' + i % 26);
		k[klen > 1 ? 1 : 0] = (char)('A' + i / 26);
		ck_assert_int_eq(pb_put_map_entry(&b, num, k, klen, v, vlen),
				 0);
	}
	r = decode_buf(&b, &req);
	if (r == 0)
		ck_assert_uint_eq(
		    num == 7 ? req.secrets.n : req.volume_context.n, entries);
	csi_publish_req_clear(&req);
	pb_buf_free(&b);
	free(k);
	free(v);
	return r;
}

START_TEST(test_csi_msg_caps)
{
	ck_assert_int_eq(decode_long(1, CSI_ID_MAX), 0);
	ck_assert_int_eq(decode_long(1, CSI_ID_MAX + 1), -EMSGSIZE);
	ck_assert_int_eq(decode_long(3, CSI_PATH_MAX), 0);
	ck_assert_int_eq(decode_long(3, CSI_PATH_MAX + 1), -EMSGSIZE);
	ck_assert_int_eq(decode_long(4, CSI_PATH_MAX), 0);
	ck_assert_int_eq(decode_long(4, CSI_PATH_MAX + 1), -EMSGSIZE);

	ck_assert_int_eq(decode_map(8, CSI_MAP_MAX_ENTRIES, 2, 1), 0);
	ck_assert_int_eq(decode_map(8, CSI_MAP_MAX_ENTRIES + 1, 2, 1),
			 -EMSGSIZE);
	ck_assert_int_eq(decode_map(7, CSI_MAP_MAX_ENTRIES + 1, 2, 1),
			 -EMSGSIZE);
	ck_assert_int_eq(decode_map(2, CSI_MAP_MAX_ENTRIES + 1, 2, 1),
			 -EMSGSIZE);
	ck_assert_int_eq(decode_map(8, 1, CSI_MAP_KEY_MAX, 1), 0);
	ck_assert_int_eq(decode_map(8, 1, CSI_MAP_KEY_MAX + 1, 1), -EMSGSIZE);
	ck_assert_int_eq(decode_map(8, 1, 4, CSI_MAP_VALUE_MAX), 0);
	ck_assert_int_eq(decode_map(8, 1, 4, CSI_MAP_VALUE_MAX + 1), -EMSGSIZE);
	ck_assert_int_eq(decode_map(7, 1, 4, CSI_MAP_VALUE_MAX + 1), -EMSGSIZE);
	/* The full volume_context at its caps: 64 x (256 + 16 KiB). */
	ck_assert_int_eq(decode_map(8, CSI_MAP_MAX_ENTRIES, CSI_MAP_KEY_MAX,
				    CSI_MAP_VALUE_MAX),
			 0);
}
END_TEST

/* capability { mount { flags... } } with n flags of len bytes, or an
 * fs_type of len bytes when n is 0. */
static int decode_mount_flags(size_t n, size_t len)
{
	struct csi_publish_req req;
	char *s = malloc(len + 1);
	size_t cap, mount, i;
	struct pb_buf b;
	int r;

	ck_assert_ptr_nonnull(s);
	memset(s, 'o', len);
	s[len] = '\0';
	buf_new(&b);
	ck_assert_int_eq(pb_msg_begin(&b, 5, &cap), 0);
	ck_assert_int_eq(pb_msg_begin(&b, 2, &mount), 0);
	if (n == 0)
		ck_assert_int_eq(pb_put_string(&b, 1, s), 0);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(pb_put_string(&b, 2, s), 0);
	ck_assert_int_eq(pb_msg_end(&b, mount), 0);
	ck_assert_int_eq(pb_msg_end(&b, cap), 0);
	r = decode_buf(&b, &req);
	csi_publish_req_clear(&req);
	pb_buf_free(&b);
	free(s);
	return r;
}

START_TEST(test_csi_msg_mount_caps)
{
	ck_assert_int_eq(decode_mount_flags(CSI_MOUNT_FLAGS_MAX, 1), 0);
	ck_assert_int_eq(decode_mount_flags(CSI_MOUNT_FLAGS_MAX + 1, 1),
			 -EMSGSIZE);
	ck_assert_int_eq(decode_mount_flags(4, CSI_MOUNT_FLAGS_BYTES / 4), 0);
	ck_assert_int_eq(decode_mount_flags(5, CSI_MOUNT_FLAGS_BYTES / 4),
			 -EMSGSIZE);
	ck_assert_int_eq(decode_mount_flags(0, CSI_MOUNT_NAME_MAX), 0);
	ck_assert_int_eq(decode_mount_flags(0, CSI_MOUNT_NAME_MAX + 1),
			 -EMSGSIZE);
}
END_TEST

START_TEST(test_csi_msg_nul_in_path_rejected)
{
	struct csi_unpublish_req un;

	ck_assert_int_eq(DECODE("\x0a\x03"
				"a\0b"),
			 -EINVAL);
	ck_assert_int_eq(DECODE("\x22\x03"
				"/\0x"),
			 -EINVAL);
	ck_assert_int_eq(DECODE("\x2a\x05\x12\x03\x12\x01\x00"), -EINVAL);
	ck_assert_int_eq(
	    csi_unpublish_req_decode((const uint8_t *)"\x12\x02/\0", 4, &un),
	    -EINVAL);
	/* Map values are bytes: a NUL is kept. */
	ck_assert_int_eq(DECODE("\x42\x07\x0a\x01"
				"k"
				"\x12\x02"
				"\0v"),
			 0);
}
END_TEST

START_TEST(test_csi_msg_unpublish)
{
	static const char msg[] = "\x0a\x03"
				  "vol"
				  "\x18\x01" /* unknown */
				  "\x12\x05"
				  "/a/b/";
	struct csi_unpublish_req *un = malloc(sizeof(*un));
	struct pb_buf b;
	char *s;

	ck_assert_ptr_nonnull(un);
	ck_assert_int_eq(
	    csi_unpublish_req_decode((const uint8_t *)msg, sizeof(msg) - 1, un),
	    0);
	ck_assert_str_eq(un->volume_id, "vol");
	ck_assert_str_eq(un->target_path, "/a/b/");
	/* On failure *req is untouched. */
	ck_assert_int_eq(
	    csi_unpublish_req_decode((const uint8_t *)"\x0a\x05", 2, un),
	    -EBADMSG);
	ck_assert_str_eq(un->volume_id, "vol");
	ck_assert_int_eq(csi_unpublish_req_decode(NULL, 0, un), 0);
	ck_assert_str_eq(un->volume_id, "");

	s = malloc(CSI_PATH_MAX + 2);
	ck_assert_ptr_nonnull(s);
	memset(s, '/', CSI_PATH_MAX + 1);
	s[CSI_PATH_MAX + 1] = '\0';
	buf_new(&b);
	ck_assert_int_eq(pb_put_string(&b, 2, s), 0);
	ck_assert_int_eq(
	    csi_unpublish_req_decode(pb_buf_data(&b), pb_buf_len(&b), un),
	    -EMSGSIZE);
	pb_buf_free(&b);
	s[CSI_PATH_MAX] = '\0';
	ck_assert_int_eq(pb_put_string(&b, 2, s), 0);
	ck_assert_int_eq(pb_put_string(&b, 1, s), 0);
	ck_assert_int_eq(
	    csi_unpublish_req_decode(pb_buf_data(&b), pb_buf_len(&b), un), 0);
	ck_assert_uint_eq(strlen(un->target_path), CSI_PATH_MAX);
	ck_assert_uint_eq(strlen(un->volume_id), CSI_ID_MAX);
	pb_buf_free(&b);
	free(s);
	free(un);
}
END_TEST

START_TEST(test_csi_msg_encode_identity)
{
	static const struct csi_pair manifest[] = {{"a", "b"}};
	struct pb_buf b;

	buf_new(&b);
	ck_assert_int_eq(
	    csi_plugin_info_encode(&b, "cb.io", "0.1.0", manifest, 1), 0);
	/* name = 1 "cb.io", vendor_version = 2 "0.1.0",
	 * manifest = 3 { key = 1 "a", value = 2 "b" } (6 bytes) */
	EXPECT(&b, "\x0a\x05"
		   "cb.io"
		   "\x12\x05"
		   "0.1.0"
		   "\x1a\x06\x0a\x01"
		   "a"
		   "\x12\x01"
		   "b");
	pb_buf_free(&b);
	ck_assert_int_eq(csi_plugin_info_encode(&b, "cb.io", "", NULL, 0), 0);
	EXPECT(&b, "\x0a\x05"
		   "cb.io");
	pb_buf_free(&b);
	ck_assert_int_eq(csi_plugin_info_encode(&b, NULL, "1", NULL, 0),
			 -EINVAL);

	/* GetPluginCapabilitiesResponse with no capabilities: no bytes. */
	ck_assert_int_eq(csi_empty_resp_encode(&b), 0);
	ck_assert_uint_eq(pb_buf_len(&b), 0);

	/* ready = 1 { value = 1: true } */
	ck_assert_int_eq(csi_probe_encode(&b, true), 0);
	EXPECT(&b, "\x0a\x02\x08\x01");
	pb_buf_free(&b);
	/* ready = 1 {} (BoolValue false: present, empty) */
	ck_assert_int_eq(csi_probe_encode(&b, false), 0);
	EXPECT(&b, "\x0a\x00");
	pb_buf_free(&b);
}
END_TEST

START_TEST(test_csi_msg_encode_node)
{
	static const struct csi_pair topo[] = {{"zone", "z1"}};
	struct pb_buf b;

	buf_new(&b);
	/* capabilities = 1 { rpc = 1 { type = 1: 6 VOLUME_MOUNT_GROUP } } */
	ck_assert_int_eq(csi_node_caps_encode(&b), 0);
	EXPECT(&b, "\x0a\x04\x0a\x02\x08\x06");
	pb_buf_free(&b);

	/* node_id = 1 "node-1" */
	ck_assert_int_eq(csi_node_info_encode(&b, "node-1", 0, NULL, 0), 0);
	EXPECT(&b, "\x0a\x06"
		   "node-1");
	pb_buf_free(&b);
	/* node_id, max_volumes_per_node = 2: 16, accessible_topology = 3
	 * { segments = 1 { key = 1 "zone", value = 2 "z1" } (10) } (12) */
	ck_assert_int_eq(csi_node_info_encode(&b, "node-1", 16, topo, 1), 0);
	EXPECT(&b, "\x0a\x06"
		   "node-1"
		   "\x10\x10"
		   "\x1a\x0c\x0a\x0a\x0a\x04"
		   "zone"
		   "\x12\x02"
		   "z1");
	pb_buf_free(&b);
	/* A negative int64 takes ten bytes (never sent; the encoding
	 * is checked anyway). */
	ck_assert_int_eq(csi_node_info_encode(&b, "", -1, NULL, 0), 0);
	EXPECT(&b, "\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01");
	pb_buf_free(&b);
	ck_assert_int_eq(csi_node_info_encode(&b, NULL, 0, NULL, 0), -EINVAL);
	ck_assert_int_eq(csi_node_info_encode(&b, "n", 0, NULL, 1), -EINVAL);
	pb_buf_free(&b);
}
END_TEST

START_TEST(test_csi_msg_writer_caps)
{
	uint8_t mem[8], big[300];
	struct pb_buf b;
	size_t mark;

	pb_buf_init_fixed(&b, mem, 6);
	ck_assert_int_eq(pb_put_string(&b, 1, "abcde"), -EMSGSIZE);
	ck_assert_uint_eq(pb_buf_len(&b), 0);
	ck_assert_ptr_null(pb_buf_data(&b));
	ck_assert_int_eq(pb_put_string(&b, 1, "abcd"), 0);
	EXPECT(&b, "\x0a\x04"
		   "abcd");
	ck_assert_int_eq(pb_put_bool(&b, 2, true), -EMSGSIZE);
	ck_assert_int_eq(pb_put_raw(&b, "x", 1), -EMSGSIZE);
	ck_assert_uint_eq(pb_buf_len(&b), 6);
	pb_buf_free(&b);
	ck_assert_uint_eq(pb_buf_len(&b), 0);
	ck_assert_uint_eq(mem[0], 0); /* wiped */

	/* A map entry that does not fit leaves nothing behind. */
	pb_buf_init_fixed(&b, mem, 8);
	ck_assert_int_eq(pb_put_map_entry(&b, 3, "k", 1, "val", 3), -EMSGSIZE);
	ck_assert_uint_eq(pb_buf_len(&b), 0);
	/* The length prefix itself may not fit. */
	ck_assert_int_eq(pb_msg_begin(&b, 1, &mark), 0);
	ck_assert_int_eq(pb_put_raw(&b, "1234567", 7), 0);
	ck_assert_int_eq(pb_msg_end(&b, mark), -EMSGSIZE);
	ck_assert_int_eq(pb_msg_end(&b, 9), -EINVAL);
	pb_buf_free(&b);

	/* Field numbers outside 1..2^29-1. */
	pb_buf_init(&b, 64);
	ck_assert_int_eq(pb_put_tag(&b, 0, PB_WIRE_VARINT), -EINVAL);
	ck_assert_int_eq(pb_put_uint64(&b, PB_FIELD_MAX + 1, 1), -EINVAL);
	ck_assert_int_eq(pb_put_bytes(&b, 0, "", 0), -EINVAL);
	ck_assert_int_eq(pb_msg_begin(&b, 0, &mark), -EINVAL);
	ck_assert_int_eq(pb_put_uint64(&b, PB_FIELD_MAX, 1), 0);
	EXPECT(&b, "\xf8\xff\xff\xff\x0f\x01");
	pb_buf_free(&b);

	/* A growable buffer grows to exactly its cap and no further. */
	pb_buf_init(&b, 1000);
	memset(big, 'x', sizeof(big));
	ck_assert_int_eq(pb_put_raw(&b, big, 300), 0);
	ck_assert_int_eq(pb_put_raw(&b, big, 300), 0);
	ck_assert_int_eq(pb_put_raw(&b, big, 300), 0);
	ck_assert_int_eq(pb_put_raw(&b, big, 101), -EMSGSIZE);
	ck_assert_int_eq(pb_put_raw(&b, big, 100), 0);
	ck_assert_uint_eq(pb_buf_len(&b), 1000);
	ck_assert_int_eq(pb_put_raw(&b, big, 1), -EMSGSIZE);
	ck_assert_int_eq(pb_put_raw(&b, big, 0), 0);
	pb_buf_free(&b);
	pb_buf_free(NULL);
	ck_assert_int_eq(csi_node_caps_encode(&b), 0); /* reusable */
	pb_buf_free(&b);
}
END_TEST

/* The length prefix is inserted after the body: a 200-byte body takes a
 * two-byte prefix (200 = 0xc8 0x01). */
START_TEST(test_csi_msg_nested_backpatch)
{
	uint8_t body[197];
	struct pb_buf b;
	size_t outer, inner;

	memset(body, 'b', sizeof(body));
	pb_buf_init(&b, 1024);
	ck_assert_int_eq(pb_msg_begin(&b, 1, &outer), 0);
	ck_assert_int_eq(pb_put_bytes(&b, 1, body, sizeof(body)), 0);
	ck_assert_int_eq(pb_msg_end(&b, outer), 0);
	ck_assert_uint_eq(pb_buf_len(&b), 3 + 200);
	ck_assert_mem_eq(pb_buf_data(&b),
			 "\x0a\xc8\x01\x0a\xc5\x01"
			 "bb",
			 8);
	pb_buf_free(&b);

	/* Empty nested messages, two deep: 0a 02 12 00 */
	ck_assert_int_eq(pb_msg_begin(&b, 1, &outer), 0);
	ck_assert_int_eq(pb_msg_begin(&b, 2, &inner), 0);
	ck_assert_int_eq(pb_msg_end(&b, inner), 0);
	ck_assert_int_eq(pb_msg_end(&b, outer), 0);
	EXPECT(&b, "\x0a\x02\x12\x00");
	pb_buf_free(&b);
}
END_TEST

static Suite *csi_msg_suite(void)
{
	Suite *s = suite_create("csi_msg");
	TCase *tc = tcase_create("fuse");

	tcase_add_test(tc, test_csi_msg_kubelet_ephemeral_publish);
	tcase_add_test(tc, test_csi_msg_publish_round_trip_exact);
	tcase_add_test(tc, test_csi_msg_publish_round_trip_all_fields);
	tcase_add_test(tc, test_csi_msg_varint_vectors);
	tcase_add_test(tc, test_csi_msg_reader_errors);
	tcase_add_test(tc, test_csi_msg_reader_fields);
	tcase_add_test(tc, test_csi_msg_nested_errors);
	tcase_add_test(tc, test_csi_msg_wrong_wire_types);
	tcase_add_test(tc, test_csi_msg_unknown_fields_skipped);
	tcase_add_test(tc, test_csi_msg_last_value_wins);
	tcase_add_test(tc, test_csi_msg_caps);
	tcase_add_test(tc, test_csi_msg_mount_caps);
	tcase_add_test(tc, test_csi_msg_nul_in_path_rejected);
	tcase_add_test(tc, test_csi_msg_unpublish);
	tcase_add_test(tc, test_csi_msg_encode_identity);
	tcase_add_test(tc, test_csi_msg_encode_node);
	tcase_add_test(tc, test_csi_msg_writer_caps);
	tcase_add_test(tc, test_csi_msg_nested_backpatch);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(csi_msg_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
