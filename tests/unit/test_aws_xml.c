/* The STS XML reader, on AWS's published AssumeRoleWithWebIdentity sample
 * (../shared/testdata/cloud-api/, kept byte for byte in the fuzz corpus
 * tests/fuzz/corpus/aws_xml/ so a clone without ../shared runs it too), on
 * the ErrorResponse shape, and on one document per refusal rule.  Every
 * document is handed over in a buffer of exactly its length, so ASan sees
 * any read past len. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "aws_xml.h"

#define STS "AssumeRoleWithWebIdentityResponse/AssumeRoleWithWebIdentityResult"

/* A document that may hold NUL bytes. */
struct doc {
	const char *text;
	size_t len;
};
#define DOC(s)                                                                 \
	{                                                                      \
		s, sizeof(s) - 1                                               \
	}

static char *load_sample(const char *name, size_t *len)
{
	char path[1024];
	char *buf;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/%s", CB_SAMPLES_DIR, name);
	f = fopen(path, "re");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

/* aws_xml_text on a copy of doc[0..len) with nothing after it. */
static int xml_n(const char *doc, size_t len, const char *path,
		 struct secret **ret, struct errmsg *err)
{
	char *copy = malloc(len > 0 ? len : 1);
	int r;

	ck_assert_ptr_nonnull(copy);
	memcpy(copy, doc, len);
	r = aws_xml_text(copy, len, path, ret, err);
	free(copy);
	return r;
}

/* The result only, the text freed; err receives the message. */
static int xml_err(const char *doc, size_t len, const char *path,
		   struct errmsg *err)
{
	struct secret *text = NULL;
	int r = xml_n(doc, len, path, &text, err);

	ck_assert(r == 0 || text == NULL);
	secret_free(text);
	return r;
}

static int xml(const char *doc, const char *path)
{
	struct errmsg err = {{0}};

	return xml_err(doc, strlen(doc), path, &err);
}

/* Asserts that path in doc[0..len) reads as want[0..want_len). */
static void expect_n(const char *doc, size_t len, const char *path,
		     const char *want, size_t want_len)
{
	struct errmsg err = {{0}};
	struct secret *text = NULL;
	size_t got;
	const char *p;
	int r;

	r = xml_n(doc, len, path, &text, &err);
	ck_assert_msg(r == 0, "%s in %.*s: %d %s", path, (int)len, doc, r,
		      err.text);
	p = secret_expose(text, &got);
	ck_assert_uint_eq(got, want_len);
	ck_assert_mem_eq(p, want, want_len);
	ck_assert_int_eq(p[got], '\0');
	secret_free(text);
}

static void expect(const char *doc, const char *path, const char *want)
{
	expect_n(doc, strlen(doc), path, want, strlen(want));
}

/* Each document must fail with r, and say so with an "xml: " message. */
static void expect_all(const struct doc *docs, size_t n, const char *path,
		       int r)
{
	struct errmsg err;
	size_t i;
	int got;

	for (i = 0; i < n; i++) {
		err.text[0] = '\0';
		got = xml_err(docs[i].text, docs[i].len, path, &err);
		ck_assert_msg(got == r, "case %zu (%s): %d, not %d (%s)", i,
			      docs[i].text, got, r, err.text);
		ck_assert_msg(strncmp(err.text, "xml: ", 5) == 0,
			      "case %zu: message \"%s\"", i, err.text);
	}
}

START_TEST(test_aws_xml_sample_credentials)
{
	size_t len;
	char *body =
	    load_sample("aws-sts-AssumeRoleWithWebIdentity.response.xml", &len);

	expect_n(body, len, STS "/Credentials/AccessKeyId", "sts_access_key",
		 14);
	expect_n(body, len, STS "/Credentials/SecretAccessKey",
		 "secret_access_key", 17);
	expect_n(body, len, STS "/Credentials/SessionToken",
		 "sts_session_token", 17);
	expect_n(body, len, STS "/Credentials/Expiration",
		 "2014-10-24T23:00:23Z", 20);
	expect_n(body, len, STS "/AssumedRoleUser/AssumedRoleId",
		 "AROACLKWSDQRAOEXAMPLE:app1", 26);
	expect_n(body, len,
		 "AssumeRoleWithWebIdentityResponse/ResponseMetadata/RequestId",
		 "ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE", 36);
	free(body);
}
END_TEST

START_TEST(test_aws_xml_sample_non_leaf)
{
	struct errmsg err = {{0}};
	size_t len;
	char *body =
	    load_sample("aws-sts-AssumeRoleWithWebIdentity.response.xml", &len);

	ck_assert_int_eq(xml_err(body, len, STS "/Credentials", &err),
			 -EBADMSG);
	ck_assert_str_eq(err.text, "xml: byte 521 (line 10): " STS
				   "/Credentials has child elements");
	ck_assert_int_eq(
	    xml_err(body, len, "AssumeRoleWithWebIdentityResponse", &err),
	    -EBADMSG);
	free(body);
}
END_TEST

/* Every prefix that cuts the root element short is refused, and none
 * crashes or leaks; the prefixes that hold the whole root (the sample ends
 * in a newline) still read. */
START_TEST(test_aws_xml_sample_truncated)
{
	const char *path = STS "/Credentials/SessionToken";
	struct errmsg err;
	size_t len, n, end;
	char *body =
	    load_sample("aws-sts-AssumeRoleWithWebIdentity.response.xml", &len);
	int r;

	end = (size_t)(strrchr(body, '>') - body) + 1;
	for (n = 0; n < len; n++) {
		err.text[0] = '\0';
		r = xml_err(body, n, path, &err);
		ck_assert_msg(r == (n < end ? -EBADMSG : 0), "prefix %zu: %d",
			      n, r);
		ck_assert_ptr_null(strstr(err.text, "sts_session"));
		ck_assert_ptr_null(strstr(err.text, "secret_access"));
	}
	free(body);
}
END_TEST

START_TEST(test_aws_xml_error_response)
{
	static const char doc[] =
	    "<ErrorResponse "
	    "xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n"
	    "  <Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>"
	    "<Message>Token&apos;s signature is bad</Message></Error>\n"
	    "  <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>\n"
	    "</ErrorResponse>\n";
	size_t len;
	char *body = load_sample("aws-sts-error.response.xml", &len);

	expect(doc, "ErrorResponse/Error/Type", "Sender");
	expect(doc, "ErrorResponse/Error/Code", "InvalidIdentityToken");
	expect(doc, "ErrorResponse/Error/Message", "Token's signature is bad");
	expect(doc, "ErrorResponse/RequestId",
	       "c6104cbe-af31-11e0-8154-cbc7ccf896c7");
	ck_assert_int_eq(xml(doc, STS "/Credentials/SessionToken"), -ENOENT);
	expect_n(body, len, "ErrorResponse/Error/Code", "InvalidIdentityToken",
		 20);
	free(body);
}
END_TEST

START_TEST(test_aws_xml_not_found)
{
	static const char doc[] = "<r><a><b>x</b></a><c/></r>";
	struct errmsg err = {{0}};

	ck_assert_int_eq(xml_err(doc, strlen(doc), "r/b", &err), -ENOENT);
	ck_assert_str_eq(err.text, "xml: no element r/b");
	ck_assert_int_eq(xml(doc, "a/b"), -ENOENT);
	ck_assert_int_eq(xml(doc, "r/a/b/c"), -ENOENT);
	ck_assert_int_eq(xml(doc, "r/c/d"), -ENOENT);
	ck_assert_int_eq(xml(doc, "R/a/b"), -ENOENT);
	ck_assert_int_eq(xml(doc, "r/a/bb"), -ENOENT);
	ck_assert_int_eq(xml(doc, "r/a/x:b"), -ENOENT);
	expect(doc, "r/a/b", "x");
	/* The document is checked before the path is looked up. */
	ck_assert_int_eq(xml("<r><a>x</a></r><", "r/b"), -EBADMSG);
}
END_TEST

START_TEST(test_aws_xml_bad_path)
{
	static const char *const bad[] = {"", "/", "a/", "/a", "a//b"};
	struct errmsg err = {{0}};
	struct secret *text = NULL;
	char path[200];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_int_eq(xml("<a/>", bad[i]), -EINVAL);
	ck_assert_int_eq(aws_xml_text("<a/>", 4, NULL, &text, &err), -EINVAL);
	for (i = 0; i < 33; i++)
		memcpy(path + 2 * i, "a/", 2);
	path[2 * 33 - 1] = '\0';
	ck_assert_int_eq(xml("<a/>", path), -EINVAL);
	memset(path, 'a', 129);
	path[129] = '\0';
	ck_assert_int_eq(xml("<a/>", path), -EINVAL);
}
END_TEST

START_TEST(test_aws_xml_prefixes)
{
	static const struct doc bad[] = {
	    DOC("<a:r></b:r>"),	  DOC("<a:r></r>"), DOC("<r></a:r>"),
	    DOC("<:r/>"),	  DOC("<r:/>"),	    DOC("<a:b:c/>"),
	    DOC("<r a:=\"1\"/>"),
	};

	expect("<sts:R xmlns:sts=\"urn:x\"><sts:Credentials>v"
	       "</sts:Credentials></sts:R>",
	       "R/Credentials", "v");
	expect("<a:R xmlns:a=\"urn:x\"><b:C xmlns:b=\"urn:y\">v</b:C></a:R>",
	       "R/C", "v");
	/* Local names must match in full. */
	ck_assert_int_eq(xml("<R><xC>v</xC></R>", "R/C"), -ENOENT);
	ck_assert_int_eq(xml("<R><C:x>v</C:x></R>", "R/C"), -ENOENT);
	/* Two prefixes, one local name: still the same path. */
	ck_assert_int_eq(xml("<R><a:C>1</a:C><b:C>2</b:C></R>", "R/C"),
			 -EBADMSG);
	expect_all(bad, sizeof(bad) / sizeof(bad[0]), "r", -EBADMSG);
}
END_TEST

START_TEST(test_aws_xml_cdata)
{
	static const struct doc bad[] = {
	    DOC("<r><![CDATA[x</r>"),	    DOC("<r><![CDATA[x]]</r>"),
	    DOC("<![CDATA[x]]><r/>"),	    DOC("<r/><![CDATA[x]]>"),
	    DOC("<r><![CDATA[\x01]]></r>"), DOC("<r><![CDATA[\xc0\x80]]></r>"),
	    DOC("<r><![cdata[x]]></r>"),
	};

	expect("<r><![CDATA[a<b>&amp;]]></r>", "r", "a<b>&amp;");
	expect("<r>x<![CDATA[]]>y</r>", "r", "xy");
	expect("<r><![CDATA[]]]]><![CDATA[>]]></r>", "r", "]]>");
	expect("<r><![CDATA[]]]></r>", "r", "]");
	expect("<r>&lt;<![CDATA[&lt;]]>&lt;</r>", "r", "<&lt;<");
	expect_all(bad, sizeof(bad) / sizeof(bad[0]), "r", -EBADMSG);
}
END_TEST

START_TEST(test_aws_xml_comments)
{
	static const struct doc bad[] = {
	    DOC("<r><!-- a -- b --></r>"), DOC("<r><!-- a ---></r>"),
	    DOC("<r><!-- a </r>"),	   DOC("<r><!--></r>"),
	    DOC("<r><!---></r>"),	   DOC("<r/><!-- a"),
	    DOC("<r><!-- \x02 --></r>"),   DOC("<r><!- a --></r>"),
	};

	expect("<!-- before --><r>a<!-- <in> & -->b<!---->c</r><!-- after -->"
	       "\n",
	       "r", "abc");
	expect("<r><!-- - a - --><!--x-y-->v</r>", "r", "v");
	expect("<r><a><!-- only --></a></r>", "r/a", "");
	expect_all(bad, sizeof(bad) / sizeof(bad[0]), "r", -EBADMSG);
}
END_TEST

START_TEST(test_aws_xml_entities)
{
	static const struct doc bad[] = {
	    DOC("<r>&foo;</r>"), DOC("<r>&amp</r>"),	  DOC("<r>a & b</r>"),
	    DOC("<r>&</r>"),	 DOC("<r>&AMP;</r>"),	  DOC("<r>&nbsp;</r>"),
	    DOC("<r>&lt</r>"),	 DOC("<r>&amp ;</r>"),	  DOC("<r>&;</r>"),
	    DOC("<r>&a"),	 DOC("<r x=\"&foo;\"/>"),
	};

	expect("<r>&amp;&lt;&gt;&quot;&apos;</r>", "r", "&<>\"'");
	expect("<r>&amp;lt;</r>", "r", "&lt;");
	expect("<r>a&amp;b&amp;&amp;c</r>", "r", "a&b&&c");
	expect_all(bad, sizeof(bad) / sizeof(bad[0]), "r", -EBADMSG);
}
END_TEST

START_TEST(test_aws_xml_char_refs)
{
	static const struct doc bad[] = {
	    DOC("<r>&#0;</r>"),	      DOC("<r>&#x0;</r>"),
	    DOC("<r>&#xD800;</r>"),   DOC("<r>&#xDFFF;</r>"),
	    DOC("<r>&#55296;</r>"),   DOC("<r>&#x110000;</r>"),
	    DOC("<r>&#1114112;</r>"), DOC("<r>&#99999999999999999999;</r>"),
	    DOC("<r>&#1;</r>"),	      DOC("<r>&#x1F;</r>"),
	    DOC("<r>&#x8;</r>"),      DOC("<r>&#xFFFE;</r>"),
	    DOC("<r>&#xFFFF;</r>"),   DOC("<r>&#;</r>"),
	    DOC("<r>&#x;</r>"),	      DOC("<r>&#X41;</r>"),
	    DOC("<r>&#12a;</r>"),     DOC("<r>&#x4g;</r>"),
	    DOC("<r>&#65</r>"),	      DOC("<r>&#-1;</r>"),
	    DOC("<r>&# 65;</r>"),     DOC("<r>&#x"),
	};

	expect("<r>&#65;&#x42;&#x43;&#0000068;</r>", "r", "ABCD");
	expect("<r>&#9;&#10;&#13;&#x20;</r>", "r", "\t\n\r ");
	expect("<r>&#xe9;&#233;&#x7FF;&#x800;&#x20AC;&#xFFFD;</r>", "r",
	       "\xc3\xa9\xc3\xa9\xdf\xbf\xe0\xa0\x80\xe2\x82\xac\xef\xbf\xbd");
	expect("<r>&#x10000;&#x1F600;&#x10FFFF;&#xD7FF;&#xE000;</r>", "r",
	       "\xf0\x90\x80\x80\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf"
	       "\xed\x9f\xbf\xee\x80\x80");
	expect("<r>&#x7f;&#x85;</r>", "r", "\x7f\xc2\x85");
	expect_all(bad, sizeof(bad) / sizeof(bad[0]), "r", -EBADMSG);
}
END_TEST

START_TEST(test_aws_xml_bad_utf8)
{
	static const struct doc bad[] = {
	    DOC("<r>\x80</r>"),
	    DOC("<r>\xbf</r>"),
	    DOC("<r>\xc0\x80</r>"),
	    DOC("<r>\xc1\xbf</r>"),
	    DOC("<r>\xe0\x80\x80</r>"),
	    DOC("<r>\xe0\x9f\xbf</r>"),
	    DOC("<r>\xf0\x80\x80\x80</r>"),
	    DOC("<r>\xf0\x8f\xbf\xbf</r>"),
	    DOC("<r>\xed\xa0\x80</r>"),
	    DOC("<r>\xed\xbf\xbf</r>"),
	    DOC("<r>\xf4\x90\x80\x80</r>"),
	    DOC("<r>\xf5\x80\x80\x80</r>"),
	    DOC("<r>\xf8\x88\x80\x80\x80</r>"),
	    DOC("<r>\xfe</r>"),
	    DOC("<r>\xff</r>"),
	    DOC("<r>\xe2\x82</r>"),
	    DOC("<r>\xc3</r>"),
	    DOC("<r>\xc3\xc3\xa9</r>"),
	    DOC("<r>\xef\xbf\xbe</r>"),
	    DOC("<r>\xef\xbf\xbf</r>"),
	    DOC("<r>\xe2\x82"),
	    DOC("<r>\xf0\x9f\x98"),
	    DOC("<r a=\"\xc0\x80\"/>"),
	    DOC("<r\xc0\x80/>"),
	    DOC("<r/><!--\xff-->"),
	};

	expect("<r>\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf</r>",
	       "r", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf");
	expect("<r>\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbd</r>", "r",
	       "\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbd");
	expect_all(bad, sizeof(bad) / sizeof(bad[0]), "r", -EBADMSG);
}
END_TEST

START_TEST(test_aws_xml_control_chars)
{
	static const struct doc bad[] = {
	    DOC("<r>\x01</r>"),
	    DOC("<r>a\x00</r>"),
	    DOC("<r>\x1f</r>"),
	    DOC("<r>\x0b</r>"),
	    DOC("<r>\x0c</r>"),
	    DOC("<r>\x1b[0m</r>"),
	    DOC("<r/>\x00"),
	    DOC("\x00<r/>"),
	    DOC("<r a=\"\x01\"/>"),
	    DOC("<r\x00/>"),
	    DOC("<r><a>\x7f\x08</a></r>"),
	};

	expect("<r>\t\n\r x\x7f</r>", "r", "\t\n\r x\x7f");
	expect_all(bad, sizeof(bad) / sizeof(bad[0]), "r", -EBADMSG);
}
END_TEST

START_TEST(test_aws_xml_cdata_end_in_text)
{
	static const struct doc bad[] = {
	    DOC("<r>]]></r>"),
	    DOC("<r>a]]>b</r>"),
	    DOC("<r>]]]></r>"),
	    DOC("<r><a/>]]></r>"),
	};

	expect("<r>]]]</r>", "r", "]]]");
	expect("<r>]] ></r>", "r", "]] >");
	expect("<r>]]&gt;</r>", "r", "]]>");
	expect("<r>a]</r>", "r", "a]");
	expect_all(bad, sizeof(bad) / sizeof(bad[0]), "r", -EBADMSG);
}
END_TEST

START_TEST(test_aws_xml_declaration)
{
	static const struct doc bad[] = {
	    DOC(" <?xml version=\"1.0\"?><r/>"),
	    DOC("\n<?xml version=\"1.0\"?><r/>"),
	    DOC("<?xml version=\"1.0\"?><?xml version=\"1.0\"?><r/>"),
	    DOC("<r/><?xml version=\"1.0\"?>"),
	    DOC("<r><?xml version=\"1.0\"?></r>"),
	    DOC("<?xml-stylesheet href=\"a\"?><r/>"),
	    DOC("<?XML version=\"1.0\"?><r/>"),
	    DOC("<?php echo 1; ?><r/>"),
	    DOC("<r><?pi x?></r>"),
	    DOC("<r/><?pi x?>"),
	    DOC("<?xml version=\"1.0\"><r/>"),
	    DOC("<?xml version=1.0?><r/>"),
	    DOC("<?xml version=\"1.0\""),
	    DOC("<?xml"),
	    DOC("\xef\xbb\xbf\xef\xbb\xbf<r/>"),
	    DOC("<r/>\xef\xbb\xbf"),
	};

	expect("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<r>v</r>", "r",
	       "v");
	expect("<?xml version='1.0' standalone='yes' ?><r>v</r>", "r", "v");
	expect("\xef\xbb\xbf<?xml version=\"1.0\"?><r>v</r>", "r", "v");
	expect("\xef\xbb\xbf<r>v</r>", "r", "v");
	expect_all(bad, sizeof(bad) / sizeof(bad[0]), "r", -EBADMSG);
}
END_TEST

START_TEST(test_aws_xml_no_dtd)
{
	static const struct doc bad[] = {
	    DOC("<!DOCTYPE r><r/>"),
	    DOC("<?xml version=\"1.0\"?>\n<!DOCTYPE r [\n"
		"<!ENTITY a \"aaaaaaaaaa\">\n"
		"<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">\n"
		"<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">\n"
		"]>\n<r>&c;</r>"),
	    DOC("<!DOCTYPE r SYSTEM \"file:///etc/passwd\"><r>&x;</r>"),
	    DOC("<r><!ENTITY a \"b\"></r>"),
	    DOC("<r><!DOCTYPE r></r>"),
	    DOC("<r/><!DOCTYPE r>"),
	    DOC("<!ELEMENT r ANY><r/>"),
	    DOC("<!doctype r><r/>"),
	    DOC("<r><!></r>"),
	};
	struct errmsg err = {{0}};

	expect_all(bad, sizeof(bad) / sizeof(bad[0]), "r", -EBADMSG);
	ck_assert_int_eq(xml_err(bad[1].text, bad[1].len, "r", &err), -EBADMSG);
	ck_assert_str_eq(err.text,
			 "xml: byte 22 (line 2): DOCTYPE is refused: no DTDs");
}
END_TEST

START_TEST(test_aws_xml_structure)
{
	static const struct doc bad[] = {
	    DOC(""),
	    DOC(" \n\t"),
	    DOC("<!-- only a comment -->"),
	    DOC("<r>"),
	    DOC("<r"),
	    DOC("<"),
	    DOC("<r><a></r>"),
	    DOC("<r><a></b></r>"),
	    DOC("<r><a><b></a></b></r>"),
	    DOC("<r></r></r>"),
	    DOC("</r>"),
	    DOC("<r/><r/>"),
	    DOC("<r></r><a></a>"),
	    DOC("<r/>x"),
	    DOC("x<r/>"),
	    DOC("<r/>&amp;"),
	    DOC("<r></ r>"),
	    DOC("<r></r x>"),
	    DOC("<r></r"),
	    DOC("<r>< a/></r>"),
	    DOC("<r><1/></r>"),
	    DOC("<r><-a/></r>"),
	    DOC("<r><.a/></r>"),
	    DOC("<r><a/ ></r>"),
	    DOC("<r><a b></r>"),
	    DOC("<r\x00></r>"),
	};

	expect("<r></r >", "r", "");
	expect("<r\n>v</r\t\n>", "r", "v");
	expect("<_r.1-x>v</_r.1-x>", "_r.1-x", "v");
	expect_all(bad, sizeof(bad) / sizeof(bad[0]), "r", -EBADMSG);
}
END_TEST

START_TEST(test_aws_xml_duplicate)
{
	static const char two[] = "<r><c>1</c>\n<c>2</c></r>";
	struct errmsg err = {{0}};

	ck_assert_int_eq(xml_err(two, strlen(two), "r/c", &err), -EBADMSG);
	ck_assert_str_eq(err.text, "xml: byte 12 (line 2): r/c occurs twice");
	ck_assert_int_eq(xml("<r><p><c>1</c></p><p><c>2</c></p></r>", "r/p/c"),
			 -EBADMSG);
	ck_assert_int_eq(xml("<r><c>1</c><c/></r>", "r/c"), -EBADMSG);
	ck_assert_int_eq(xml("<r><c>1</c><c>1</c><c>1</c></r>", "r/c"),
			 -EBADMSG);
	/* Repeats elsewhere in the document are no concern. */
	expect("<r><x/><x>1</x><p><c>2</c></p><c>v</c></r>", "r/c", "v");
	expect("<r><p><c>1</c></p><q><c>2</c></q></r>", "r/q/c", "2");
	expect("<r><c><c>1</c></c></r>", "r/c/c", "1");
}
END_TEST

START_TEST(test_aws_xml_non_leaf)
{
	struct errmsg err = {{0}};
	static const char doc[] = "<r><c>a<b/>c</c></r>";

	ck_assert_int_eq(xml_err(doc, strlen(doc), "r/c", &err), -EBADMSG);
	ck_assert_str_eq(err.text, "xml: byte 7 (line 1): r/c has child "
				   "elements");
	ck_assert_int_eq(xml("<r><c><b>x</b></c></r>", "r/c"), -EBADMSG);
	ck_assert_int_eq(xml("<r><c><b/></c></r>", "r/c"), -EBADMSG);
	ck_assert_int_eq(xml("<r><c><c/></c></r>", "r/c"), -EBADMSG);
	expect("<r><c>a<!-- b -->c<![CDATA[d]]>&amp;</c></r>", "r/c",
	       "ac"
	       "d&");
}
END_TEST

START_TEST(test_aws_xml_attributes)
{
	static const struct doc bad[] = {
	    DOC("<r a=\"1\" a=\"2\"/>"),
	    DOC("<r p:a='1' p:a='2'/>"),
	    DOC("<r a=\"<\"/>"),
	    DOC("<r a='<'/>"),
	    DOC("<r a=1/>"),
	    DOC("<r a=\"1\"b=\"2\"/>"),
	    DOC("<r a/>"),
	    DOC("<r a=/>"),
	    DOC("<r a=\"1/>"),
	    DOC("<r a='1\"/>"),
	    DOC("<r a=\"&\"/>"),
	    DOC("<r a=\"&#0;\"/>"),
	    DOC("<r =\"1\"/>"),
	    DOC("<r a=\"1\""),
	    DOC("<r a=\"1\" ?>"),
	    DOC("<r a=\"1\"></r a=\"1\">"),
	};
	char doc[1024];
	size_t n = 0, i;

	expect("<r a=\"1\" b='2' c = \"x'y\" d='x\"y' e=\"&amp;&#65;>\" "
	       "xmlns:p=\"urn:x\" p:a=\"3\">v</r>",
	       "r", "v");
	expect("<r><c a=\"1\"/></r>", "r/c", "");
	expect("<r\ta=''\n\tb=\"\"\r\n>v</r>", "r", "v");
	expect_all(bad, sizeof(bad) / sizeof(bad[0]), "r", -EBADMSG);
	/* 32 attributes are fine, a 33rd is past the cap. */
	n += (size_t)snprintf(doc + n, sizeof(doc) - n, "<r");
	for (i = 0; i < 32; i++)
		n += (size_t)snprintf(doc + n, sizeof(doc) - n, " a%zu=''", i);
	snprintf(doc + n, sizeof(doc) - n, ">v</r>");
	expect(doc, "r", "v");
	snprintf(doc + n, sizeof(doc) - n, " b=''>v</r>");
	ck_assert_int_eq(xml(doc, "r"), -EMSGSIZE);
}
END_TEST

START_TEST(test_aws_xml_names)
{
	char name[200], doc[512];
	struct errmsg err = {{0}};

	expect("<r><\xc3\xa9l\xc3\xa9ment>v</\xc3\xa9l\xc3\xa9ment></r>",
	       "r/\xc3\xa9l\xc3\xa9ment", "v");
	memset(name, 'n', 128);
	name[128] = '\0';
	snprintf(doc, sizeof(doc), "<%s>v</%s>", name, name);
	expect(doc, name, "v");
	snprintf(doc, sizeof(doc), "<r><%sx/></r>", name);
	ck_assert_int_eq(xml_err(doc, strlen(doc), "r", &err), -EMSGSIZE);
	ck_assert_str_eq(err.text,
			 "xml: byte 4 (line 1): name longer than 128 bytes");
	snprintf(doc, sizeof(doc), "<r %sx='1'/>", name);
	ck_assert_int_eq(xml(doc, "r"), -EMSGSIZE);
	snprintf(doc, sizeof(doc), "<r></r%s>", name);
	ck_assert_int_eq(xml(doc, "r"), -EMSGSIZE);
	/* A prefix counts against the limit: the name is what is bounded. */
	snprintf(doc, sizeof(doc), "<p:%s/>", name);
	ck_assert_int_eq(xml(doc, "r"), -EMSGSIZE);
}
END_TEST

START_TEST(test_aws_xml_depth)
{
	char path[2 * AWS_XML_MAX_DEPTH], *doc;
	size_t i, n = 100000;

	doc = malloc(4 * n + 2);
	ck_assert_ptr_nonnull(doc);
	for (i = 0; i < AWS_XML_MAX_DEPTH; i++)
		memcpy(path + 2 * i, "a/", 2);
	path[2 * AWS_XML_MAX_DEPTH - 1] = '\0';
	/* Exactly AWS_XML_MAX_DEPTH levels are fine. */
	for (i = 0; i < AWS_XML_MAX_DEPTH; i++)
		memcpy(doc + 3 * i, "<a>", 3);
	doc[3 * i] = 'x';
	for (i = 0; i < AWS_XML_MAX_DEPTH; i++)
		memcpy(doc + 3 * AWS_XML_MAX_DEPTH + 1 + 4 * i, "</a>", 4);
	expect_n(doc, 7 * AWS_XML_MAX_DEPTH + 1, path, "x", 1);
	/* One more is refused, and so is a bomb of 100000, unclosed. */
	for (i = 0; i < n; i++)
		memcpy(doc + 3 * i, "<a>", 3);
	ck_assert_int_eq(xml_err(doc, 3 * (AWS_XML_MAX_DEPTH + 1), "a", NULL),
			 -EMSGSIZE);
	ck_assert_int_eq(xml_err(doc, 3 * n, "a", NULL), -EMSGSIZE);
	for (i = 0; i < n; i++)
		memcpy(doc + 4 * i, "<a/>", 4);
	ck_assert_int_eq(xml_err(doc, 4 * n, "a", NULL), -EBADMSG);
	free(doc);
}
END_TEST

/* A text longer than a secret can hold fails where it is allocated. */
START_TEST(test_aws_xml_too_long_for_a_secret)
{
	size_t n = SECRET_MAX_LEN + 1;
	struct errmsg err = {{0}};
	char *doc = malloc(n + 7);

	ck_assert_ptr_nonnull(doc);
	memcpy(doc, "<r>", 3);
	memset(doc + 3, 'x', n);
	memcpy(doc + 3 + n, "</r>", 4);
	ck_assert_int_eq(xml_err(doc, n + 7, "r", &err), -EMSGSIZE);
	ck_assert_str_eq(err.text, "xml: cannot keep r");
	/* One byte less fits. */
	memcpy(doc + 2 + n, "</r>", 4);
	expect_n(doc, n + 6, "r", doc + 3, n - 1);
	free(doc);
}
END_TEST

START_TEST(test_aws_xml_self_closing)
{
	expect("<r/>", "r", "");
	expect("<r />", "r", "");
	expect("<r a=\"1\"/>", "r", "");
	expect("<r><a/><b>x</b></r>", "r/a", "");
	expect("<r><a/><b>x</b></r>", "r/b", "x");
	expect("<r><c></c></r>", "r/c", "");
	ck_assert_int_eq(xml("<r/>", "r/a"), -ENOENT);
}
END_TEST

START_TEST(test_aws_xml_text_as_is)
{
	expect("<r>  a b \n\t</r>", "r", "  a b \n\t");
	expect("<r>\r\n</r>", "r", "\r\n");
	expect("<r>a>b\"c'd</r>", "r", "a>b\"c'd");
	expect("\n\n<r>\n<a> x </a></r>\n\n", "r/a", " x ");
}
END_TEST

/* Messages say where and what, quote element names, never the text. */
START_TEST(test_aws_xml_messages)
{
	static const char doc[] = "<r>\n<Credentials>\n"
				  "<SessionToken>tok</Credentials>\n";
	static const char text[] = "<r>\n<a>hunter2\x01</a></r>";
	struct secret *text_out = NULL;
	struct errmsg err = {{0}};

	ck_assert_int_eq(xml_err(doc, strlen(doc), "r", &err), -EBADMSG);
	ck_assert_str_eq(err.text,
			 "xml: byte 35 (line 3): end tag </Credentials> does "
			 "not match <SessionToken>");
	ck_assert_int_eq(xml_err(text, strlen(text), "r", &err), -EBADMSG);
	ck_assert_str_eq(err.text, "xml: byte 14 (line 2): character not "
				   "allowed in XML 1.0");
	ck_assert_int_eq(xml_err("<r>hunter2&pw;</r>", 18, "r", &err),
			 -EBADMSG);
	ck_assert_ptr_null(strstr(err.text, "pw"));
	ck_assert_ptr_null(strstr(err.text, "hunter2"));
	ck_assert_int_eq(xml_err("<r><a>", 6, "r", &err), -EBADMSG);
	ck_assert_str_eq(err.text,
			 "xml: byte 6 (line 1): truncated: <a> not closed");
	ck_assert_int_eq(xml_err("", 0, "r", &err), -EBADMSG);
	ck_assert_str_eq(err.text, "xml: byte 0 (line 1): empty document");
	ck_assert_int_eq(aws_xml_text(NULL, 0, "r", &text_out, &err), -EBADMSG);
}
END_TEST

/* Output only on success; nothing read past len. */
START_TEST(test_aws_xml_bounds)
{
	static const char doc[] = "<r>x</r>trailing garbage <<<";
	struct secret *text = (struct secret *)&text;
	struct errmsg err = {{0}};

	ck_assert_int_eq(aws_xml_text("<r>x</r>", 7, "r", &text, &err),
			 -EBADMSG);
	ck_assert_ptr_eq(text, (struct secret *)&text);
	ck_assert_int_eq(aws_xml_text("<r>x</r>", 8, "r/a", &text, &err),
			 -ENOENT);
	ck_assert_ptr_eq(text, (struct secret *)&text);
	expect_n(doc, 8, "r", "x", 1);
	ck_assert_int_eq(aws_xml_text(doc, 8, "r", &text, NULL), 0);
	ck_assert_uint_eq(secret_len(text), 1);
	secret_free(text);
}
END_TEST

static Suite *aws_xml_suite(void)
{
	Suite *s = suite_create("aws_xml");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_aws_xml_sample_credentials);
	tcase_add_test(tc, test_aws_xml_sample_non_leaf);
	tcase_add_test(tc, test_aws_xml_sample_truncated);
	tcase_add_test(tc, test_aws_xml_error_response);
	tcase_add_test(tc, test_aws_xml_not_found);
	tcase_add_test(tc, test_aws_xml_bad_path);
	tcase_add_test(tc, test_aws_xml_prefixes);
	tcase_add_test(tc, test_aws_xml_cdata);
	tcase_add_test(tc, test_aws_xml_comments);
	tcase_add_test(tc, test_aws_xml_entities);
	tcase_add_test(tc, test_aws_xml_char_refs);
	tcase_add_test(tc, test_aws_xml_bad_utf8);
	tcase_add_test(tc, test_aws_xml_control_chars);
	tcase_add_test(tc, test_aws_xml_cdata_end_in_text);
	tcase_add_test(tc, test_aws_xml_declaration);
	tcase_add_test(tc, test_aws_xml_no_dtd);
	tcase_add_test(tc, test_aws_xml_structure);
	tcase_add_test(tc, test_aws_xml_duplicate);
	tcase_add_test(tc, test_aws_xml_non_leaf);
	tcase_add_test(tc, test_aws_xml_attributes);
	tcase_add_test(tc, test_aws_xml_names);
	tcase_add_test(tc, test_aws_xml_depth);
	tcase_add_test(tc, test_aws_xml_too_long_for_a_secret);
	tcase_add_test(tc, test_aws_xml_self_closing);
	tcase_add_test(tc, test_aws_xml_text_as_is);
	tcase_add_test(tc, test_aws_xml_messages);
	tcase_add_test(tc, test_aws_xml_bounds);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	sr = srunner_create(aws_xml_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
