/* One pass over the document with a fixed stack of open element names (no
 * recursion, no allocation) checks well-formedness and notes where the
 * element at path starts and ends.  Only then, and only for that span, a
 * second pass decodes the text straight into secret memory sized from the
 * raw span: entities, character references, CDATA markup and comments all
 * shrink or vanish when decoded, so the text never outgrows it.  No DTD is
 * read, so no entity can expand. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "aws_xml.h"

#define AXML_MAX_NAME 128
#define AXML_MAX_ATTRS 32

/* A name in the document or the path: bytes [off, off + len). */
struct axml_name {
	size_t off, len;
};

struct axml {
	const unsigned char *doc;
	size_t len, pos;
	struct errmsg *err;
	const char *path;
	struct axml_name comp[AWS_XML_MAX_DEPTH]; /* path components */
	size_t ncomp;
	struct axml_name open[AWS_XML_MAX_DEPTH]; /* open elements' names */
	size_t depth;
	size_t match;		   /* open[0..match) match comp[0..match) */
	size_t count;		   /* elements found at path */
	size_t text_off, text_end; /* the first one's raw content */
	size_t dup_at, child_at;   /* offsets, 0 for none (never a tag's) */
	bool root_seen;
	unsigned char *out; /* secret memory while decoding, else NULL */
	size_t out_len, out_cap;
};

static size_t axml_line(const struct axml *x, size_t at)
{
	const unsigned char *p = x->doc, *end = x->doc + at;
	size_t line = 1;

	if (at == 0) /* doc may be NULL when len is 0 */
		return line;
	while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		line++;
		p++;
	}
	return line;
}

/* Prefixes the message already in x->err with where it happened. */
static int axml_at(const struct axml *x, size_t at, int r)
{
	return errmsg_prefix(x->err, r, "xml: byte %zu (line %zu)", at,
			     axml_line(x, at));
}

static int axml_fail(const struct axml *x, size_t at, int r, const char *what)
{
	(void)errmsg_set(x->err, r, "%s", what);
	return axml_at(x, at, r);
}

/* What the byte at x->pos should have been, or that the document ended. */
static int axml_expected(const struct axml *x, const char *what)
{
	if (x->pos >= x->len)
		(void)errmsg_set(x->err, -EBADMSG, "truncated: %s", what);
	else
		(void)errmsg_set(x->err, -EBADMSG, "%s", what);
	return axml_at(x, x->pos, -EBADMSG);
}

static bool axml_has(const struct axml *x, const char *s)
{
	size_t n = strlen(s);

	return x->len - x->pos >= n && memcmp(x->doc + x->pos, s, n) == 0;
}

static bool axml_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void axml_skip_space(struct axml *x)
{
	while (x->pos < x->len && axml_space(x->doc[x->pos]))
		x->pos++;
}

/* XML 1.0's Char production. */
static bool axml_is_char(uint32_t c)
{
	return c == 0x9 || c == 0xa || c == 0xd || (c >= 0x20 && c <= 0xd7ff) ||
	       (c >= 0xe000 && c <= 0xfffd) || (c >= 0x10000 && c <= 0x10ffff);
}

/* The character at x->pos (x->pos < x->len): well-formed UTF-8 (no
 * overlong forms, surrogates or cut sequences) and an XML Char, so no C0
 * control but TAB, LF and CR.  Returns its length in bytes or -EBADMSG. */
static int axml_char(const struct axml *x, uint32_t *cp)
{
	const unsigned char *p = x->doc + x->pos;
	uint32_t c = p[0], min = 0;
	int n = 1, i;

	if (c >= 0xf0 && c < 0xf8)
		n = 4, c &= 0x07, min = 0x10000;
	else if (c >= 0xe0 && c < 0xf0)
		n = 3, c &= 0x0f, min = 0x800;
	else if (c >= 0xc0 && c < 0xe0)
		n = 2, c &= 0x1f, min = 0x80;
	else if (c >= 0x80)
		return axml_fail(x, x->pos, -EBADMSG, "invalid UTF-8");
	if ((size_t)n > x->len - x->pos)
		return axml_fail(x, x->pos, -EBADMSG, "truncated UTF-8");
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return axml_fail(x, x->pos, -EBADMSG, "invalid UTF-8");
		c = c << 6 | (p[i] & 0x3f);
	}
	if (c < min)
		return axml_fail(x, x->pos, -EBADMSG, "overlong UTF-8");
	if (!axml_is_char(c))
		return axml_fail(x, x->pos, -EBADMSG,
				 "character not allowed in XML 1.0");
	*cp = c;
	return n;
}

/* Whether c is one of the bytes in set (never NUL, which strchr finds). */
static bool axml_in(const char *set, unsigned char c)
{
	return c != '\0' && strchr(set, c) != NULL;
}

/* Checks characters up to the first byte in stop (or the end). */
static int axml_chars_until(struct axml *x, const char *stop)
{
	uint32_t cp;
	int n;

	while (x->pos < x->len && !axml_in(stop, x->doc[x->pos])) {
		n = axml_char(x, &cp);
		if (n < 0)
			return n;
		x->pos += (size_t)n;
	}
	return 0;
}

/* Appends decoded text when decoding; the capacity check only guards the
 * "decoding never grows" argument at the head of this file. */
static int axml_put(struct axml *x, const void *p, size_t n)
{
	if (x->out == NULL)
		return 0;
	if (n > x->out_cap - x->out_len)
		return -EMSGSIZE;
	memcpy(x->out + x->out_len, p, n);
	x->out_len += n;
	return 0;
}

/* Encodes cp as UTF-8 directly into the secret. */
static int axml_put_cp(struct axml *x, uint32_t cp)
{
	static const unsigned char lead[] = {0, 0, 0xc0, 0xe0, 0xf0};
	size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
	unsigned char *o;
	size_t i;

	if (x->out == NULL)
		return 0;
	if (n > x->out_cap - x->out_len)
		return -EMSGSIZE;
	o = x->out + x->out_len;
	x->out_len += n;
	if (n == 1) {
		o[0] = (unsigned char)cp;
		return 0;
	}
	/* The lead byte takes the high bits, each next byte 6 more. */
	o[0] = (unsigned char)(lead[n] | (cp >> (6 * (n - 1))));
	for (i = 1; i < n; i++)
		o[i] =
		    (unsigned char)(0x80 | ((cp >> (6 * (n - 1 - i))) & 0x3f));
	return 0;
}

static unsigned axml_digit(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return 16;
}

/* "&#N;" or "&#xH;" (x->pos after "&#"), at most U+10FFFF and a Char. */
static int axml_charref(struct axml *x, size_t at)
{
	unsigned base = 10, d;
	size_t digits = 0;
	uint32_t cp = 0;

	if (x->pos < x->len && x->doc[x->pos] == 'x') {
		base = 16;
		x->pos++;
	}
	for (; x->pos < x->len && x->doc[x->pos] != ';'; x->pos++, digits++) {
		d = axml_digit(x->doc[x->pos]);
		if (d >= base)
			return axml_fail(x, at, -EBADMSG,
					 "malformed character reference");
		cp = cp * base + d; /* cp <= 0x10ffff: no overflow */
		if (cp > 0x10ffff)
			return axml_fail(x, at, -EBADMSG,
					 "character reference past U+10FFFF");
	}
	if (x->pos >= x->len || digits == 0)
		return axml_fail(x, at, -EBADMSG,
				 "malformed character reference");
	if (!axml_is_char(cp))
		return axml_fail(x, at, -EBADMSG,
				 "character reference to a character not "
				 "allowed in XML 1.0");
	x->pos++;
	return axml_put_cp(x, cp);
}

/* A reference ('&' at x->pos): one of the five predefined entities or a
 * character reference.  There is no DTD, so any other name is undeclared;
 * the message does not quote it (it sits in text). */
static int axml_ref(struct axml *x)
{
	static const struct {
		const char *name;
		char c;
	} ents[] = {{"&amp;", '&'},
		    {"&lt;", '<'},
		    {"&gt;", '>'},
		    {"&quot;", '"'},
		    {"&apos;", '\''}};
	size_t at = x->pos, i;

	if (axml_has(x, "&#")) {
		x->pos += 2;
		return axml_charref(x, at);
	}
	for (i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
		if (axml_has(x, ents[i].name)) {
			x->pos += strlen(ents[i].name);
			return axml_put(x, &ents[i].c, 1);
		}
	}
	return axml_fail(x, at, -EBADMSG,
			 "'&' starts neither a predefined entity nor a "
			 "character reference");
}

/* Character data up to the next '<' or '&'; "]]>" may only end CDATA. */
static int axml_chardata(struct axml *x)
{
	size_t start = x->pos;
	int r;

	while (x->pos < x->len && !axml_in("<&", x->doc[x->pos])) {
		if (x->doc[x->pos] != ']') {
			r = axml_chars_until(x, "<&]");
			if (r < 0)
				return r;
			continue;
		}
		if (axml_has(x, "]]>"))
			return axml_fail(x, x->pos, -EBADMSG,
					 "']]>' outside a CDATA section");
		x->pos++;
	}
	return axml_put(x, x->doc + start, x->pos - start);
}

/* "<!--" at x->pos; "--" may only end it, as XML says. */
static int axml_comment(struct axml *x)
{
	size_t at = x->pos;
	int r;

	x->pos += 4;
	for (;;) {
		r = axml_chars_until(x, "-");
		if (r < 0)
			return r;
		if (x->pos >= x->len)
			return axml_fail(x, at, -EBADMSG,
					 "truncated: comment not closed");
		if (axml_has(x, "-->")) {
			x->pos += 3;
			return 0;
		}
		if (axml_has(x, "--"))
			return axml_fail(x, x->pos, -EBADMSG,
					 "'--' inside a comment");
		x->pos++;
	}
}

/* "<![CDATA[" at x->pos: the text up to "]]>" as is. */
static int axml_cdata(struct axml *x)
{
	size_t at = x->pos, start;
	int r;

	x->pos += 9;
	start = x->pos;
	for (;;) {
		r = axml_chars_until(x, "]");
		if (r < 0)
			return r;
		if (x->pos >= x->len)
			return axml_fail(x, at, -EBADMSG,
					 "truncated: CDATA section not closed");
		if (axml_has(x, "]]>"))
			break;
		x->pos++;
	}
	r = axml_put(x, x->doc + start, x->pos - start);
	x->pos += 3;
	return r;
}

static bool axml_name_byte(unsigned char c, bool first)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	    c == ':')
		return true;
	return !first && ((c >= '0' && c <= '9') || c == '-' || c == '.');
}

/* Where a name's local part starts: after its one ':', if any. */
static struct axml_name axml_local(const struct axml *x,
				   const struct axml_name *n)
{
	const unsigned char *colon = memchr(x->doc + n->off, ':', n->len);
	size_t skip = colon ? (size_t)(colon - (x->doc + n->off)) + 1 : 0;
	struct axml_name local = {n->off + skip, n->len - skip};

	return local;
}

/* A name at x->pos: ASCII letters, '_', ':' or any non-ASCII character
 * first, then also digits, '-' and '.'; at most AXML_MAX_NAME bytes and
 * at most one ':' with something either side (a namespace prefix). */
static int axml_name(struct axml *x, struct axml_name *name)
{
	size_t start = x->pos, colons = 0;
	unsigned char c;
	uint32_t cp;
	int n;

	while (x->pos < x->len) {
		c = x->doc[x->pos];
		n = 1;
		if (c >= 0x80)
			n = axml_char(x, &cp);
		else if (!axml_name_byte(c, x->pos == start))
			break;
		if (n < 0)
			return n;
		colons += c == ':';
		x->pos += (size_t)n;
		if (x->pos - start > AXML_MAX_NAME)
			return axml_fail(x, start, -EMSGSIZE,
					 "name longer than 128 bytes");
	}
	if (x->pos == start)
		return axml_expected(x, "name expected");
	if (colons > 1 || x->doc[start] == ':' || x->doc[x->pos - 1] == ':')
		return axml_fail(x, start, -EBADMSG,
				 "malformed namespace prefix");
	name->off = start;
	name->len = x->pos - start;
	return 0;
}

static bool axml_same(const struct axml *x, const struct axml_name *a,
		      const struct axml_name *b)
{
	return a->len == b->len &&
	       memcmp(x->doc + a->off, x->doc + b->off, a->len) == 0;
}

/* A quoted attribute value (quote at x->pos): no '<', references checked
 * (attributes are never decoded: only element content is). */
static int axml_attvalue(struct axml *x)
{
	const char *stop = x->doc[x->pos] == '"' ? "\"<&" : "'<&";
	size_t at = x->pos;
	int r;

	if (x->doc[x->pos] != '"' && x->doc[x->pos] != '\'')
		return axml_expected(x, "quoted attribute value expected");
	x->pos++;
	for (;;) {
		r = axml_chars_until(x, stop);
		if (r < 0)
			return r;
		if (x->pos >= x->len)
			return axml_fail(x, at, -EBADMSG,
					 "truncated: attribute value not "
					 "closed");
		if (x->doc[x->pos] == '<')
			return axml_fail(x, x->pos, -EBADMSG,
					 "'<' in an attribute value");
		if (x->doc[x->pos] != '&')
			break;
		r = axml_ref(x);
		if (r < 0)
			return r;
	}
	x->pos++;
	return 0;
}

/* One "name = value" at x->pos, its name not among seen[0..n). */
static int axml_attr(struct axml *x, struct axml_name *seen, size_t n)
{
	size_t i;
	int r;

	r = axml_name(x, &seen[n]);
	if (r < 0)
		return r;
	for (i = 0; i < n; i++) {
		if (axml_same(x, &seen[i], &seen[n])) {
			(void)errmsg_set(x->err, -EBADMSG,
					 "duplicate attribute %.*s",
					 (int)seen[n].len,
					 (const char *)x->doc + seen[n].off);
			return axml_at(x, seen[n].off, -EBADMSG);
		}
	}
	axml_skip_space(x);
	if (!axml_has(x, "="))
		return axml_expected(x, "'=' expected after an attribute name");
	x->pos++;
	axml_skip_space(x);
	if (x->pos >= x->len)
		return axml_expected(x, "attribute value expected");
	return axml_attvalue(x);
}

/* Attributes, each after white space, up to the first byte that starts
 * none: '>', '/' or '?', which the caller checks. */
static int axml_attrs(struct axml *x)
{
	struct axml_name seen[AXML_MAX_ATTRS];
	size_t n, ws;
	int r;

	for (n = 0;; n++) {
		ws = x->pos;
		axml_skip_space(x);
		if (x->pos >= x->len)
			return axml_expected(x, "'>' expected");
		if (axml_in(">/?", x->doc[x->pos]))
			return 0;
		if (x->pos == ws)
			return axml_expected(x, "white space expected before "
						"an attribute");
		if (n == AXML_MAX_ATTRS)
			return axml_fail(x, x->pos, -EMSGSIZE,
					 "more than 32 attributes");
		r = axml_attr(x, seen, n);
		if (r < 0)
			return r;
	}
}

/* Opens an element (its start tag at at, content from x->pos) and notes
 * whether it is the element at path, another one there, or a child of
 * one. */
static void axml_push(struct axml *x, const struct axml_name *name, size_t at)
{
	struct axml_name local = axml_local(x, name);
	const struct axml_name *c = &x->comp[x->depth];
	size_t d = x->depth;

	x->open[x->depth++] = *name;
	if (x->match != d)
		return;
	if (d == x->ncomp) {
		if (x->child_at == 0)
			x->child_at = at;
		return;
	}
	if (local.len != c->len ||
	    memcmp(x->doc + local.off, x->path + c->off, c->len) != 0)
		return;
	x->match++;
	if (x->match < x->ncomp)
		return;
	if (++x->count == 1)
		x->text_off = x->text_end = x->pos;
	else if (x->count == 2)
		x->dup_at = at;
}

/* Closes the innermost element, whose content ends at end. */
static void axml_pop(struct axml *x, size_t end)
{
	if (x->match == x->depth) {
		if (x->match == x->ncomp && x->count == 1)
			x->text_end = end;
		x->match--;
	}
	x->depth--;
}

/* "<?", "<!DOCTYPE", "<!ENTITY" and the like, which no AWS answer has and
 * which would bring entity declarations (and their expansion). */
static int axml_refuse_markup(const struct axml *x)
{
	if (axml_has(x, "<?"))
		return axml_fail(x, x->pos, -EBADMSG,
				 "processing instructions are refused");
	if (axml_has(x, "<!DOCTYPE"))
		return axml_fail(x, x->pos, -EBADMSG,
				 "DOCTYPE is refused: no DTDs");
	if (axml_has(x, "<!"))
		return axml_fail(x, x->pos, -EBADMSG,
				 "markup declarations are refused: no DTDs");
	return 0;
}

/* A start tag ('<' at x->pos, not "</", "<!" or "<?"); an empty-element
 * tag ("<a/>") opens and closes at once. */
static int axml_start_tag(struct axml *x)
{
	struct axml_name name;
	size_t at = x->pos;
	bool empty;
	int r;

	x->pos++;
	r = axml_name(x, &name);
	if (r < 0)
		return r;
	if (x->depth == AWS_XML_MAX_DEPTH)
		return axml_fail(x, at, -EMSGSIZE,
				 "elements nested deeper than 32");
	r = axml_attrs(x);
	if (r < 0)
		return r;
	empty = x->doc[x->pos] == '/';
	if (!axml_has(x, empty ? "/>" : ">"))
		return axml_expected(x, "'>' expected");
	x->pos += empty ? 2 : 1;
	axml_push(x, &name, at);
	if (empty)
		axml_pop(x, x->pos);
	return 0;
}

/* "</" at x->pos: must name the innermost open element exactly. */
static int axml_end_tag(struct axml *x)
{
	const struct axml_name *open = &x->open[x->depth - 1];
	struct axml_name name;
	size_t at = x->pos;
	int r;

	x->pos += 2;
	r = axml_name(x, &name);
	if (r < 0)
		return r;
	axml_skip_space(x);
	if (!axml_has(x, ">"))
		return axml_expected(x, "'>' expected");
	if (!axml_same(x, &name, open)) {
		(void)errmsg_set(
		    x->err, -EBADMSG, "end tag </%.*s> does not match <%.*s>",
		    (int)name.len, (const char *)x->doc + name.off,
		    (int)open->len, (const char *)x->doc + open->off);
		return axml_at(x, at, -EBADMSG);
	}
	x->pos++;
	axml_pop(x, at);
	return 0;
}

/* One item of element content at x->pos. */
static int axml_content(struct axml *x)
{
	int r;

	if (x->doc[x->pos] == '&')
		return axml_ref(x);
	if (x->doc[x->pos] != '<')
		return axml_chardata(x);
	if (axml_has(x, "<!--"))
		return axml_comment(x);
	if (axml_has(x, "<![CDATA["))
		return axml_cdata(x);
	if (axml_has(x, "</"))
		return axml_end_tag(x);
	r = axml_refuse_markup(x);
	return r < 0 ? r : axml_start_tag(x);
}

/* One item before or after the root element: white space or a comment,
 * or the root's start tag. */
static int axml_misc(struct axml *x)
{
	int r;

	if (axml_space(x->doc[x->pos])) {
		x->pos++;
		return 0;
	}
	if (axml_has(x, "<!--"))
		return axml_comment(x);
	if (x->doc[x->pos] != '<')
		return axml_fail(x, x->pos, -EBADMSG,
				 "text outside the root element");
	r = axml_refuse_markup(x);
	if (r < 0)
		return r;
	if (axml_has(x, "</"))
		return axml_fail(x, x->pos, -EBADMSG,
				 "end tag outside the root element");
	if (x->root_seen)
		return axml_fail(x, x->pos, -EBADMSG, "a second root element");
	x->root_seen = true;
	return axml_start_tag(x);
}

/* An optional UTF-8 byte order mark, then an optional "<?xml ...?>" whose
 * pseudo-attributes are checked like attributes. */
static int axml_prolog(struct axml *x)
{
	int r;

	if (axml_has(x, "\xef\xbb\xbf"))
		x->pos += 3;
	if (!axml_has(x, "<?xml") || x->len - x->pos < 6 ||
	    (!axml_space(x->doc[x->pos + 5]) && x->doc[x->pos + 5] != '?'))
		return 0;
	x->pos += 5;
	r = axml_attrs(x);
	if (r < 0)
		return r;
	if (!axml_has(x, "?>"))
		return axml_expected(x, "'?>' expected");
	x->pos += 2;
	return 0;
}

static int axml_parse(struct axml *x)
{
	const struct axml_name *open;
	int r;

	if (x->len == 0)
		return axml_fail(x, 0, -EBADMSG, "empty document");
	r = axml_prolog(x);
	while (r == 0 && x->pos < x->len)
		r = x->depth > 0 ? axml_content(x) : axml_misc(x);
	if (r < 0)
		return r;
	if (x->depth > 0) {
		open = &x->open[x->depth - 1];
		(void)errmsg_set(x->err, -EBADMSG,
				 "truncated: <%.*s> not closed", (int)open->len,
				 (const char *)x->doc + open->off);
		return axml_at(x, x->len, -EBADMSG);
	}
	if (!x->root_seen)
		return axml_fail(x, x->len, -EBADMSG, "no root element");
	return 0;
}

/* Splits path into components; a path no element could match is a
 * caller's mistake. */
static int axml_split(struct axml *x, const char *path, struct errmsg *err)
{
	size_t off = 0, n;

	for (;;) {
		n = strcspn(path + off, "/");
		if (n == 0 || n > AXML_MAX_NAME ||
		    x->ncomp == AWS_XML_MAX_DEPTH)
			return errmsg_set(err, -EINVAL, "xml: bad path %.200s",
					  path);
		x->comp[x->ncomp].off = off;
		x->comp[x->ncomp++].len = n;
		off += n;
		if (path[off] == '\0')
			return 0;
		off++;
	}
}

/* After a well-formed document: exactly one leaf at path. */
static int axml_found(const struct axml *x)
{
	if (x->count == 0)
		return errmsg_set(x->err, -ENOENT, "xml: no element %.200s",
				  x->path);
	if (x->count > 1) {
		(void)errmsg_set(x->err, -EBADMSG, "%.200s occurs twice",
				 x->path);
		return axml_at(x, x->dup_at, -EBADMSG);
	}
	if (x->child_at != 0) {
		(void)errmsg_set(x->err, -EBADMSG, "%.200s has child elements",
				 x->path);
		return axml_at(x, x->child_at, -EBADMSG);
	}
	return 0;
}

/* Decodes the checked span [text_off, text_end) into a new secret. */
static int axml_decode(struct axml *x, struct secret **ret)
{
	struct secret *text = NULL;
	int r;

	r = secret_new(x->text_end - x->text_off, &text);
	if (r < 0)
		return errmsg_set(x->err, r, "xml: cannot keep %.200s",
				  x->path);
	x->out = secret_expose(text, NULL);
	x->out_cap = secret_capacity(text);
	x->out_len = 0;
	x->pos = x->text_off;
	x->len = x->text_end;
	while (r == 0 && x->pos < x->len)
		r = axml_content(x);
	if (r == 0)
		r = secret_set_len(text, x->out_len);
	x->out = NULL;
	if (r < 0) {
		secret_free(text);
		return errmsg_set(x->err, r, "xml: cannot decode %.200s",
				  x->path);
	}
	*ret = text;
	return 0;
}

int aws_xml_text(const void *doc, size_t len, const char *path,
		 struct secret **ret, struct errmsg *err)
{
	struct axml x;
	int r;

	memset(&x, 0, sizeof(x));
	x.doc = doc;
	x.len = len;
	x.err = err;
	x.path = path;
	if (path == NULL)
		return errmsg_set(err, -EINVAL, "xml: no path");
	r = axml_split(&x, path, err);
	if (r == 0)
		r = axml_parse(&x);
	if (r == 0)
		r = axml_found(&x);
	if (r == 0)
		r = axml_decode(&x, ret);
	return r;
}
