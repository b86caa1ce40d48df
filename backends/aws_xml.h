/* A minimal, strict XML reader for the answers of AWS's query protocol
 * (STS): one element's text by its path of local names, with no I/O and no
 * dependency.  It accepts what AWS writes -- an optional XML declaration,
 * one root element, attributes (checked, then ignored), comments, CDATA,
 * the five predefined entities and character references, UTF-8 only -- and
 * refuses the rest: DTDs and every entity they could declare, processing
 * instructions, malformed UTF-8 and characters XML 1.0 forbids.  Decoded
 * text goes straight into struct secret; messages name elements and byte
 * offsets, never text content.  Line ends are not normalised. */
#ifndef CREDBROKER_AWS_XML_H
#define CREDBROKER_AWS_XML_H

#include <stddef.h>

#include "errmsg.h"
#include "secret.h"

#define AWS_XML_MAX_DEPTH 32

/* The text of the one element at path ("A/B/C": element local names from
 * the root, namespace prefixes ignored), into a new secret (*ret,
 * NUL-terminated as struct secret already is; owned by the caller).
 * The whole document is checked first.  Returns 0; -ENOENT when no element
 * is at path; -EBADMSG for a document that is not well-formed or that this
 * reader refuses (err says what and at which byte offset / line, never
 * quoting text content, which may be a secret), or when the element at
 * path has child elements or occurs more than once; -EMSGSIZE for a
 * document deeper than AWS_XML_MAX_DEPTH, an over-long name (128 bytes) or
 * too many attributes on one element (32), or a text longer than
 * SECRET_MAX_LEN; -EINVAL for a path that is
 * empty, has an empty component or could never match (too deep or a
 * component too long); -ENOMEM. */
int aws_xml_text(const void *doc, size_t len, const char *path,
		 struct secret **ret, struct errmsg *err)
    __attribute__((warn_unused_result));

#endif
