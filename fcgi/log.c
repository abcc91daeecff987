/* logfmt logging; see log.h. */
#ifdef HAVE_CONFIG_H
#include <config.h>
#endif

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "fcgi/log.h"

static const char *const level_names[] = {
	[LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_WARN] = "warn",
	[LOG_LEVEL_ERROR] = "error",
};

/* Room kept for " truncated=true\n". */
#define LOG_RESERVE 20

static void append(struct log_line *l, const char *s, size_t n)
{
	size_t room = sizeof(l->buf) - LOG_RESERVE - l->len;

	if (n > room) {
		n = room;
		l->truncated = true;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static void append_char(struct log_line *l, char c)
{
	append(l, &c, 1);
}

static bool needs_quotes(const char *s, size_t n)
{
	if (n == 0)
		return true;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= ' ' || c >= 0x7f || c == '"' || c == '=' || c == '\\')
			return true;
	}
	return false;
}

/* Quoted logfmt value: \" \\ \n \t, other control and non-ASCII bytes as \xNN. */
static void append_quoted(struct log_line *l, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	append_char(l, '"');
	for (size_t i = 0; i < n && !l->truncated; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[4] = { '\\', 0, 0, 0 };

		if (c == '"' || c == '\\') {
			esc[1] = (char)c;
			append(l, esc, 2);
		} else if (c == '\n') {
			append(l, "\\n", 2);
		} else if (c == '\t') {
			append(l, "\\t", 2);
		} else if (c < ' ' || c >= 0x7f) {
			esc[1] = 'x';
			esc[2] = hex[c >> 4];
			esc[3] = hex[c & 15];
			append(l, esc, 4);
		} else {
			append_char(l, (char)c);
		}
	}
	append_char(l, '"');
}

static void append_timestamp(struct log_line *l)
{
	struct timespec ts;
	struct tm tm;
	char buf[40];
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(buf, sizeof(buf), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
	append(l, buf, (size_t)n);
}

static enum log_level min_level = LOG_LEVEL_INFO;

void log_set_min_level(enum log_level level)
{
	min_level = level;
}

void log_begin(struct log_line *l, enum log_level level, const char *msg)
{
	l->len = 0;
	l->truncated = false;
	l->level = level;
	append_timestamp(l);
	append(l, " level=", 7);
	append(l, level_names[level], strlen(level_names[level]));
	append(l, " msg=", 5);
	append_quoted(l, msg, strlen(msg));
}

void log_strn(struct log_line *l, const char *key, const char *value, size_t len)
{
	if (!value)
		return;
	append_char(l, ' ');
	append(l, key, strlen(key));
	append_char(l, '=');
	if (needs_quotes(value, len))
		append_quoted(l, value, len);
	else
		append(l, value, len);
}

void log_str(struct log_line *l, const char *key, const char *value)
{
	if (value)
		log_strn(l, key, value, strlen(value));
}

void log_int(struct log_line *l, const char *key, long long value)
{
	char buf[24];
	int n = snprintf(buf, sizeof(buf), "%lld", value);

	log_strn(l, key, buf, (size_t)n);
}

void log_ms(struct log_line *l, const char *key, double ms)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%.1f", ms);

	log_strn(l, key, buf, (size_t)n);
}

void log_end(struct log_line *l)
{
	if (l->level < min_level)
		return;
	if (l->truncated) {
		memcpy(l->buf + l->len, " truncated=true", 15);
		l->len += 15;
	}
	l->buf[l->len++] = '\n';
	/* One write per line; a short write to stderr is not worth retrying. */
	if (write(STDERR_FILENO, l->buf, l->len) < 0)
		return;
}

void log_event(enum log_level level, const char *msg, ...)
{
	struct log_line l;
	va_list ap;
	const char *key;

	log_begin(&l, level, msg);
	va_start(ap, msg);
	while ((key = va_arg(ap, const char *)) != NULL) {
		const char *value = va_arg(ap, const char *);

		log_str(&l, key, value);
	}
	va_end(ap);
	log_end(&l);
}

static bool is_lower_hex(const char *s, size_t n, bool *all_zero)
{
	*all_zero = true;
	for (size_t i = 0; i < n; i++) {
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
		if (s[i] != '0')
			*all_zero = false;
	}
	return true;
}

bool log_trace_id(const char *tp, char out[33])
{
	bool zero_trace, zero_parent, ignored;

	/* version 00 has exactly this shape: 2+1+32+1+16+1+2 = 55 characters */
	if (!tp || strlen(tp) != 55 || strncmp(tp, "00-", 3) || tp[35] != '-' || tp[52] != '-')
		return false;
	if (!is_lower_hex(tp + 3, 32, &zero_trace) || !is_lower_hex(tp + 36, 16, &zero_parent) ||
	    !is_lower_hex(tp + 53, 2, &ignored))
		return false;
	if (zero_trace || zero_parent)
		return false;
	memcpy(out, tp + 3, 32);
	out[32] = '\0';
	return true;
}

static bool is_sane_id(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++) {
		char c = s[n];

		if (n >= 64)
			return false;
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return n > 0;
}

/* Generated ids: a random per-process prefix and a counter. */
static uint64_t id_prefix;

static void pick_id_prefix(void)
{
	if (getrandom(&id_prefix, sizeof(id_prefix), GRND_NONBLOCK) != sizeof(id_prefix))
		id_prefix = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
}

void log_request_id(const char *given, char out[65])
{
	static atomic_uint_fast64_t counter;
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	uint64_t n;

	if (given && is_sane_id(given)) {
		strcpy(out, given);
		return;
	}
	pthread_once(&once, pick_id_prefix);
	n = atomic_fetch_add(&counter, 1) + 1;
	snprintf(out, 65, "%016llx%016llx", (unsigned long long)id_prefix, (unsigned long long)n);
}
