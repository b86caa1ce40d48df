/* A minimal protobuf wire-format codec for the CSI node plugin.
 *
 * Reader: walks the fields of one message held in a caller buffer and
 * returns views into it; nothing is copied or allocated.  Every length is
 * checked against the end of the buffer; a varint longer than 10 bytes (or
 * one whose 10th byte sets bits past 64), a length past the end, field
 * number 0, a field number above 2^29-1, and the group wire types 3 and 4
 * are -EBADMSG.  Unknown fields are skipped simply by the caller ignoring
 * field numbers it does not know: pb_next() returns each field whole.
 *
 * Writer: appends canonical encodings to a struct pb_buf, which either owns
 * a heap buffer that grows up to a hard cap, or wraps fixed caller storage.
 * Past the cap every put returns -EMSGSIZE and leaves the buffer as it
 * was.  Nested messages are written in place and length-prefixed when
 * closed (pb_msg_begin/pb_msg_end), so no second buffer is needed.
 *
 * All functions return 0 or -errno; none logs. */
#ifndef CB_PB_H
#define CB_PB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PB_WARN_UNUSED __attribute__((warn_unused_result))

/* Largest field number protobuf allows (2^29 - 1). */
#define PB_FIELD_MAX 0x1fffffffu
/* Longest varint: ten bytes carry 64 bits. */
#define PB_VARINT_MAX 10

enum pb_wire {
	PB_WIRE_VARINT = 0,
	PB_WIRE_FIXED64 = 1,
	PB_WIRE_LEN = 2,
	PB_WIRE_FIXED32 = 5,
};

struct pb_reader {
	const uint8_t *buf;
	size_t len;
	size_t off;
};

/* One decoded field.  For PB_WIRE_VARINT, FIXED64 and FIXED32 the value is
 * in u64 (fixed32 zero-extended); for PB_WIRE_LEN, data/len view the
 * payload inside the reader's buffer (data is non-NULL even when len is
 * 0). */
struct pb_field {
	uint32_t num;
	enum pb_wire wire;
	uint64_t u64;
	const uint8_t *data;
	size_t len;
};

/* Starts a reader over buf[0..len).  buf may be NULL only if len is 0.  The
 * reader borrows buf; it must outlive every view returned. */
void pb_reader_init(struct pb_reader *r, const uint8_t *buf, size_t len);

/* Reads the next field into *f.  Returns 1 when a field was read, 0 at the
 * clean end of the message, -EBADMSG on malformed input (after which the
 * reader must not be used again).  *f is written only when 1 is returned. */
PB_WARN_UNUSED int pb_next(struct pb_reader *r, struct pb_field *f);

/* Decodes one varint at buf[0..len): 0 with *v and *used set, or -EBADMSG
 * (truncated, longer than 10 bytes, or overflowing 64 bits). */
PB_WARN_UNUSED int pb_varint_decode(const uint8_t *buf, size_t len, uint64_t *v,
				    size_t *used);

/* Number of bytes the canonical varint encoding of v takes (1..10). */
size_t pb_varint_size(uint64_t v);

/* Output buffer.  Fields are private; use the functions below. */
struct pb_buf {
	uint8_t *data;
	size_t len;
	size_t alloc;
	size_t max;
	bool owned;
};

/* Growable heap buffer holding at most max bytes; nothing is allocated
 * until the first put.  Release with pb_buf_free(). */
void pb_buf_init(struct pb_buf *b, size_t max);

/* Fixed buffer over caller storage mem[0..size); never allocates.
 * pb_buf_free() on it only wipes the bytes written. */
void pb_buf_init_fixed(struct pb_buf *b, uint8_t *mem, size_t size);

/* Wipes the written bytes (explicit_bzero) and frees an owned buffer; the
 * buffer is left empty and reusable with the same cap.  NULL-safe. */
void pb_buf_free(struct pb_buf *b);

/* The bytes written so far (NULL when nothing was written) and their
 * count.  The pointer is invalidated by the next put on a growable
 * buffer. */
const uint8_t *pb_buf_data(const struct pb_buf *b);
size_t pb_buf_len(const struct pb_buf *b);

/* Appenders.  Each returns 0, -EMSGSIZE past the cap (buffer unchanged),
 * -ENOMEM if growing failed, or -EINVAL for a field number outside
 * 1..PB_FIELD_MAX. */
PB_WARN_UNUSED int pb_put_raw(struct pb_buf *b, const void *p, size_t n);
PB_WARN_UNUSED int pb_put_varint(struct pb_buf *b, uint64_t v);
PB_WARN_UNUSED int pb_put_tag(struct pb_buf *b, uint32_t num,
			      enum pb_wire wire);
/* A varint field; written even when v is 0 (proto3 omission is the
 * caller's choice). */
PB_WARN_UNUSED int pb_put_uint64(struct pb_buf *b, uint32_t num, uint64_t v);
/* int64 and enum (int32) fields: negative values take ten bytes, as the
 * protobuf encoding sign-extends them to 64 bits. */
PB_WARN_UNUSED int pb_put_int64(struct pb_buf *b, uint32_t num, int64_t v);
PB_WARN_UNUSED int pb_put_enum(struct pb_buf *b, uint32_t num, int32_t v);
PB_WARN_UNUSED int pb_put_bool(struct pb_buf *b, uint32_t num, bool v);
/* A length-delimited field holding p[0..n) (p may be NULL if n is 0). */
PB_WARN_UNUSED int pb_put_bytes(struct pb_buf *b, uint32_t num, const void *p,
				size_t n);
/* pb_put_bytes() of a NUL-terminated string (NULL counts as ""). */
PB_WARN_UNUSED int pb_put_string(struct pb_buf *b, uint32_t num, const char *s);

/* Nested message: pb_msg_begin() writes the tag and stores in *mark where
 * the body starts; append the body; pb_msg_end() inserts the canonical
 * length prefix in front of it.  Marks nest (close inner before outer).
 * On any failure in between, discard the whole buffer. */
PB_WARN_UNUSED int pb_msg_begin(struct pb_buf *b, uint32_t num, size_t *mark);
PB_WARN_UNUSED int pb_msg_end(struct pb_buf *b, size_t mark);

/* One entry of a map<string,string> field num: a nested message with
 * key = 1 and value = 2.  Both are always written, even when empty, so
 * the bytes do not depend on the contents. */
PB_WARN_UNUSED int pb_put_map_entry(struct pb_buf *b, uint32_t num,
				    const void *key, size_t key_len,
				    const void *val, size_t val_len);

#endif
