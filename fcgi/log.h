/* logfmt lines on stderr: ts=<RFC 3339, ms> level=... msg="..." key=value ...
 * A line is built in a fixed buffer and written with one write(2), so lines
 * of concurrent threads never interleave. Values are quoted and escaped
 * when needed; over-long lines are cut (and end with truncated=true). */
#ifndef SANDCELL_FCGI_LOG_H
#define SANDCELL_FCGI_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level {
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARN,
	LOG_LEVEL_ERROR,
};

#define LOG_LINE_MAX 2048

struct log_line {
	char buf[LOG_LINE_MAX];
	size_t len;
	bool truncated;
	enum log_level level;
};

/* Lines below level are not written (the CLI keeps the terminal for the
 * program's own output). Default: everything. */
void log_set_min_level(enum log_level level);

void log_begin(struct log_line *l, enum log_level level, const char *msg);
void log_str(struct log_line *l, const char *key, const char *value);
void log_strn(struct log_line *l, const char *key, const char *value, size_t len);
void log_int(struct log_line *l, const char *key, long long value);
void log_ms(struct log_line *l, const char *key, double ms);
void log_end(struct log_line *l);

/* A one-line message with optional key/value pairs given as NULL-terminated
 * list of (key, value) strings: log_event(LOG_LEVEL_INFO, "x", "k", "v", NULL). */
void log_event(enum log_level level, const char *msg, ...) __attribute__((sentinel));

/* Extracts the trace id (32 lowercase hex) of a W3C traceparent header
 * "00-<32 hex>-<16 hex>-<2 hex>" into out[33]; false if the header is
 * missing or malformed (all-zero ids are invalid too). */
bool log_trace_id(const char *traceparent, char out[33]);

/* The request id: nginx's REQUEST_ID if it is sane (1..64 characters of
 * [A-Za-z0-9._-]), else a generated 32-hex id. out must hold 65 bytes. */
void log_request_id(const char *given, char out[65]);

#endif
