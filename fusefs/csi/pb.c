/* Protobuf wire format: see pb.h for the contract. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pb.h"

/* A heap buffer starts at this size and doubles up to its cap. */
#define PB_BUF_INITIAL 256

void pb_reader_init(struct pb_reader *r, const uint8_t *buf, size_t len)
{
	static const uint8_t empty[1];

	r->buf = buf != NULL ? buf : empty;
	r->len = buf != NULL ? len : 0;
	r->off = 0;
}

int pb_varint_decode(const uint8_t *buf, size_t len, uint64_t *v, size_t *used)
{
	uint64_t x = 0;
	size_t i;

	for (i = 0; i < len && i < PB_VARINT_MAX; i++) {
		uint8_t c = buf[i];

		/* The tenth byte holds bit 63 only. */
		if (i == PB_VARINT_MAX - 1 && c > 1)
			return -EBADMSG;
		x |= (uint64_t)(c & 0x7f) << (7 * i);
		if ((c & 0x80) == 0) {
			*v = x;
			*used = i + 1;
			return 0;
		}
	}
	return -EBADMSG; /* truncated, or an eleventh byte would follow */
}

size_t pb_varint_size(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* Reads a varint at the reader's offset and advances past it. */
static int reader_varint(struct pb_reader *r, uint64_t *v)
{
	size_t used;
	int ret;

	ret = pb_varint_decode(r->buf + r->off, r->len - r->off, v, &used);
	if (ret < 0)
		return ret;
	r->off += used;
	return 0;
}

/* Reads the fixed-size little-endian value of n bytes (4 or 8). */
static int reader_fixed(struct pb_reader *r, size_t n, uint64_t *v)
{
	uint64_t x = 0;
	size_t i;

	if (r->len - r->off < n)
		return -EBADMSG;
	for (i = 0; i < n; i++)
		x |= (uint64_t)r->buf[r->off + i] << (8 * i);
	r->off += n;
	*v = x;
	return 0;
}

/* Reads the value that follows a tag of the given wire type. */
static int reader_value(struct pb_reader *r, struct pb_field *f)
{
	uint64_t n;
	int ret;

	switch (f->wire) {
	case PB_WIRE_VARINT:
		return reader_varint(r, &f->u64);
	case PB_WIRE_FIXED64:
		return reader_fixed(r, 8, &f->u64);
	case PB_WIRE_FIXED32:
		return reader_fixed(r, 4, &f->u64);
	case PB_WIRE_LEN:
		ret = reader_varint(r, &n);
		if (ret < 0)
			return ret;
		if (n > r->len - r->off)
			return -EBADMSG;
		f->data = r->buf + r->off;
		f->len = (size_t)n;
		r->off += (size_t)n;
		return 0;
	}
	return -EBADMSG; /* groups (3, 4) and the undefined 6, 7 */
}

int pb_next(struct pb_reader *r, struct pb_field *out)
{
	struct pb_field f = {0};
	uint64_t tag;
	int ret;

	if (r->off >= r->len)
		return 0;
	ret = reader_varint(r, &tag);
	if (ret < 0)
		return ret;
	if ((tag >> 3) == 0 || (tag >> 3) > PB_FIELD_MAX)
		return -EBADMSG;
	f.num = (uint32_t)(tag >> 3);
	f.wire = (enum pb_wire)(tag & 7);
	ret = reader_value(r, &f);
	if (ret < 0)
		return ret;
	*out = f;
	return 1;
}

void pb_buf_init(struct pb_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
	b->owned = true;
}

void pb_buf_init_fixed(struct pb_buf *b, uint8_t *mem, size_t size)
{
	memset(b, 0, sizeof(*b));
	b->data = mem;
	b->alloc = size;
	b->max = size;
	b->owned = false;
}

void pb_buf_free(struct pb_buf *b)
{
	if (b == NULL)
		return;
	if (b->data != NULL && b->len > 0)
		explicit_bzero(b->data, b->len);
	if (b->owned) {
		free(b->data);
		b->data = NULL;
		b->alloc = 0;
	}
	b->len = 0;
}

const uint8_t *pb_buf_data(const struct pb_buf *b)
{
	return b->len > 0 ? b->data : NULL;
}

size_t pb_buf_len(const struct pb_buf *b)
{
	return b->len;
}

/* Makes room for n more bytes.  Growing copies into a new allocation and
 * wipes the old one, so no stale copy of the contents is left behind in
 * freed memory. */
static int buf_reserve(struct pb_buf *b, size_t n)
{
	size_t want, sz;
	uint8_t *p;

	if (n > b->max || b->len > b->max - n)
		return -EMSGSIZE;
	want = b->len + n;
	if (want <= b->alloc)
		return 0;
	if (!b->owned)
		return -EMSGSIZE;
	sz = b->alloc > 0 ? b->alloc : PB_BUF_INITIAL;
	while (sz < want)
		sz = sz > b->max / 2 ? b->max : sz * 2;
	if (sz > b->max)
		sz = b->max;
	p = malloc(sz);
	if (p == NULL)
		return -ENOMEM;
	if (b->data != NULL) {
		memcpy(p, b->data, b->len);
		explicit_bzero(b->data, b->len);
		free(b->data);
	}
	b->data = p;
	b->alloc = sz;
	return 0;
}

int pb_put_raw(struct pb_buf *b, const void *p, size_t n)
{
	int ret;

	if (n == 0)
		return 0;
	ret = buf_reserve(b, n);
	if (ret < 0)
		return ret;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

/* Writes the varint encoding of v to out (PB_VARINT_MAX bytes of room);
 * returns its length. */
static size_t varint_encode(uint64_t v, uint8_t *out)
{
	size_t n = 0;

	while (v >= 0x80) {
		out[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	out[n++] = (uint8_t)v;
	return n;
}

int pb_put_varint(struct pb_buf *b, uint64_t v)
{
	uint8_t tmp[PB_VARINT_MAX];

	return pb_put_raw(b, tmp, varint_encode(v, tmp));
}

int pb_put_tag(struct pb_buf *b, uint32_t num, enum pb_wire wire)
{
	if (num == 0 || num > PB_FIELD_MAX)
		return -EINVAL;
	return pb_put_varint(b, (uint64_t)num << 3 | (uint64_t)wire);
}

/* Writes tag and varint together, so a failure leaves the buffer as it
 * was. */
static int put_varint_field(struct pb_buf *b, uint32_t num, uint64_t v)
{
	uint8_t tmp[2 * PB_VARINT_MAX];
	size_t n;

	if (num == 0 || num > PB_FIELD_MAX)
		return -EINVAL;
	n = varint_encode((uint64_t)num << 3 | PB_WIRE_VARINT, tmp);
	n += varint_encode(v, tmp + n);
	return pb_put_raw(b, tmp, n);
}

int pb_put_uint64(struct pb_buf *b, uint32_t num, uint64_t v)
{
	return put_varint_field(b, num, v);
}

int pb_put_int64(struct pb_buf *b, uint32_t num, int64_t v)
{
	return put_varint_field(b, num, (uint64_t)v);
}

int pb_put_enum(struct pb_buf *b, uint32_t num, int32_t v)
{
	return put_varint_field(b, num, (uint64_t)(int64_t)v);
}

int pb_put_bool(struct pb_buf *b, uint32_t num, bool v)
{
	return put_varint_field(b, num, v ? 1 : 0);
}

int pb_put_bytes(struct pb_buf *b, uint32_t num, const void *p, size_t n)
{
	uint8_t tmp[2 * PB_VARINT_MAX];
	size_t h;
	int ret;

	if (num == 0 || num > PB_FIELD_MAX)
		return -EINVAL;
	h = varint_encode((uint64_t)num << 3 | PB_WIRE_LEN, tmp);
	h += varint_encode((uint64_t)n, tmp + h);
	if (n > b->max || h > b->max - n)
		return -EMSGSIZE;
	ret = buf_reserve(b, h + n);
	if (ret < 0)
		return ret;
	memcpy(b->data + b->len, tmp, h);
	if (n > 0)
		memcpy(b->data + b->len + h, p, n);
	b->len += h + n;
	return 0;
}

int pb_put_string(struct pb_buf *b, uint32_t num, const char *s)
{
	return pb_put_bytes(b, num, s, s != NULL ? strlen(s) : 0);
}

int pb_msg_begin(struct pb_buf *b, uint32_t num, size_t *mark)
{
	int ret;

	ret = pb_put_tag(b, num, PB_WIRE_LEN);
	if (ret < 0)
		return ret;
	*mark = b->len;
	return 0;
}

int pb_msg_end(struct pb_buf *b, size_t mark)
{
	uint8_t tmp[PB_VARINT_MAX];
	size_t body, k;
	int ret;

	if (mark > b->len)
		return -EINVAL;
	body = b->len - mark;
	k = varint_encode((uint64_t)body, tmp);
	ret = buf_reserve(b, k);
	if (ret < 0)
		return ret;
	memmove(b->data + mark + k, b->data + mark, body);
	memcpy(b->data + mark, tmp, k);
	b->len += k;
	return 0;
}

int pb_put_map_entry(struct pb_buf *b, uint32_t num, const void *key,
		     size_t key_len, const void *val, size_t val_len)
{
	size_t mark, start = b->len;
	int ret;

	ret = pb_msg_begin(b, num, &mark);
	if (ret == 0)
		ret = pb_put_bytes(b, 1, key, key_len);
	if (ret == 0)
		ret = pb_put_bytes(b, 2, val, val_len);
	if (ret == 0)
		ret = pb_msg_end(b, mark);
	if (ret < 0 && b->len > start) {
		/* Drop the partial entry so the buffer stays well formed. */
		explicit_bzero(b->data + start, b->len - start);
		b->len = start;
	}
	return ret;
}
