#include "err.h"

static const char *const messages[ES_ERR_COUNT_] = {
	[ES_OK] = "ok",
	[ES_EINVAL] = "invalid argument",
	[ES_ENOMEM] = "out of memory",
	[ES_ETOOBIG] = "too big",
	[ES_EFULL] = "journal full",
	[ES_EIO] = "I/O error",
	[ES_ECORRUPT] = "data corrupt",
	[ES_ENOTFOUND] = "not found",
	[ES_EEXIST] = "already exists",
	[ES_EBUSY] = "busy",
	[ES_ECLOSED] = "closed",
	[ES_ENOTCONN] = "not connected",
	[ES_ETIMEDOUT] = "timed out",
	[ES_ESYS] = "system call failed",
	[ES_EPROTO] = "protocol error",
	[ES_EVERSION] = "written by a newer version",
};

const char *es_strerror(es_err err)
{
	if ((unsigned)err >= ES_ERR_COUNT_ || !messages[err])
		return "unknown error";
	return messages[err];
}
