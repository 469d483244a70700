/* err.h - the one error type of the edgespool library.
 *
 * Every function that can fail returns an es_err; ES_OK is zero, so
 * `if (err)` reads naturally. Foreign codes (SQLite, paho, errno) are
 * translated once, in the adapter that called the foreign library, which also
 * logs the raw code.
 */
#ifndef ES_ERR_H
#define ES_ERR_H

typedef enum es_err {
	ES_OK = 0,
	ES_EINVAL,    /* an argument or an input is invalid */
	ES_ENOMEM,    /* out of memory */
	ES_ETOOBIG,   /* an input exceeds a configured size */
	ES_EFULL,     /* the journal is at its cap, or the disk is full */
	ES_EIO,	      /* a read, write or sync failed */
	ES_ECORRUPT,  /* stored data fails its checks */
	ES_ENOTFOUND, /* the thing asked for does not exist */
	ES_EEXIST,    /* the thing already exists (e.g. a duplicate event id) */
	ES_EBUSY,     /* try again later (a queue is full, a lock is held) */
	ES_ECLOSED,   /* the object is shutting down or closed */
	ES_ENOTCONN,  /* no connection to the broker */
	ES_ETIMEDOUT, /* a deadline passed */
	ES_ESYS,      /* an operating-system call failed (errno is logged) */
	ES_EPROTO,    /* a peer broke the protocol */
	ES_EVERSION,  /* data written by a newer version of edgespool */
	ES_ERR_COUNT_
} es_err;

/* A short, stable, human-readable description of err ("journal full").
 * Never NULL; unknown values give "unknown error". */
const char *es_strerror(es_err err);

#endif
