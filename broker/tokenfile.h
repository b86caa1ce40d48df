/* The projected service-account token a backend logs in with.  It is read
 * again at every login, because the kubelet rotates the file, and only into
 * secret memory. */
#ifndef CREDBROKER_TOKENFILE_H
#define CREDBROKER_TOKENFILE_H

#include "errmsg.h"
#include "secret.h"

#define TOKEN_FILE_MAX (64 * 1024)

/* The JWT in the regular file at path (trailing whitespace dropped) into a
 * new secret.  what names the config key in messages ("auth.token_file").
 * Returns 0, -errno from open(2), or -EINVAL for a file that is too large,
 * unreadable, empty or not three base64url parts. */
int token_file_read(const char *path, const char *what, struct secret **ret,
		    struct errmsg *err) __attribute__((warn_unused_result));

#endif
