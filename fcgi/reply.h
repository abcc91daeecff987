/* Answers: the HTTP status, headers and body of one response, built in
 * memory first (so they can be tested) and then written to libfcgi. */
#ifndef SANDCELL_FCGI_REPLY_H
#define SANDCELL_FCGI_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <fcgiapp.h>

#include "jail/jail.h"

struct reply {
	int status;            /* HTTP status */
	int code;              /* the envelope's code, for the log (0 if none) */
	const char *allow;     /* Allow header (405), or NULL */
	bool json;             /* Content-Type: application/json */
	const char *content_type; /* another Content-Type (static text), or NULL */
	char *body;            /* body bytes (malloc'd unless body_static) */
	size_t body_len;
	bool body_static;
};

/* One Python distribution: name and version, NUL-terminated. */
struct dependency {
	char *name;
	char *version;
};

/* Each builder replaces what r held. They return 0, or -1 if memory ran
 * out, in which case r holds a fixed 500 envelope, so r is always sendable. */
int reply_empty(struct reply *r, int status);
int reply_health(struct reply *r);
int reply_error(struct reply *r, int status, int code, const char *message);
int reply_method_not_allowed(struct reply *r, const char *allow);
int reply_success_empty(struct reply *r);
int reply_run_result(struct reply *r, const struct run_result *res,
		     const char *error_text, size_t error_len);
/* A body of another type; takes ownership of body (malloc'd). */
int reply_text(struct reply *r, int status, const char *content_type, char *body, size_t len);
int reply_dependencies(struct reply *r, const struct dependency *deps, size_t n);

/* The CGI response head ("Status: ...\r\n...\r\n\r\n") into buf; returns its
 * length, or 0 if buf is too small. */
size_t reply_format_head(const struct reply *r, char *buf, size_t buflen);

/* Writes head and body; returns 0, or -1 if the connection failed. */
int reply_send(const struct reply *r, FCGX_Stream *out);

void reply_free(struct reply *r);

#endif
