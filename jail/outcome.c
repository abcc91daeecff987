/* The result of a run as the API describes it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jail/jail.h"

/* The markers of API.md, in a fixed order. */
static const struct {
	unsigned hit;
	const char *line;
} markers[] = {
	{ JAIL_HIT_TIMEOUT, "error: timeout\n" },
	{ JAIL_HIT_SECCOMP, "error: operation not permitted\n" },
	{ JAIL_HIT_MEMORY, "error: memory limit exceeded\n" },
	{ JAIL_HIT_OUTPUT, "error: output limit exceeded\n" },
	{ JAIL_HIT_PIDS, "error: process limit exceeded\n" },
	{ JAIL_HIT_FSIZE, "error: file size limit exceeded\n" },
};

char *run_result_error_text(const struct run_result *res, size_t *len)
{
	char head[64];

	if (res->exit_code == 0 && res->hits == 0) {
		*len = 0;
		return strdup("");
	}
	int n = snprintf(head, sizeof(head), "process exited with code %d\n", res->exit_code);
	size_t total = (size_t)n + res->err_len;
	for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++)
		if (res->hits & markers[i].hit)
			total += strlen(markers[i].line);

	char *text = malloc(total + 1);
	if (!text)
		return NULL;
	char *p = text;
	memcpy(p, head, n);
	p += n;
	for (size_t i = 0; i < sizeof(markers) / sizeof(markers[0]); i++)
		if (res->hits & markers[i].hit)
			p = stpcpy(p, markers[i].line);
	if (res->err_len)
		memcpy(p, res->err, res->err_len);
	p += res->err_len;
	*p = '\0';
	*len = total;
	return text;
}

void run_result_free(struct run_result *res)
{
	free(res->out);
	free(res->err);
	res->out = res->err = NULL;
	res->out_len = res->err_len = 0;
}
