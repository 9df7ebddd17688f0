/* SPDX-License-Identifier: MIT */
/*
 * conf dump: a configuration back to config text (`tern dump-config`),
 * and the documented example configuration (etc/tern.conf), both from
 * the key table. Pure: appends to a buffer; no I/O.
 */
#include <string.h>

#include "conf/conf_int.h"

/* the doc text as '#' lines, words wrapped at DOC_WIDTH columns */
#define DOC_WIDTH 72

static void
comment(struct buf *out, const char *doc)
{
	while (*doc != '\0') {
		size_t n = strlen(doc), cut = n;

		if (n > DOC_WIDTH - 2) {
			/* the last blank that keeps the line short enough */
			for (cut = DOC_WIDTH - 2; cut > 0; cut--)
				if (doc[cut] == ' ')
					break;
			if (cut == 0)
				cut = strcspn(doc, " ");
		}
		buf_printf(out, "# %.*s\n", (int)cut, doc);
		doc += cut;
		while (*doc == ' ')
			doc++;
	}
}

/* "key = value" for a scalar key, without a trailing blank */
static void
scalar_line(struct buf *out, const char *prefix, const struct conf_key *k,
	    const struct tern_conf *conf)
{
	size_t start;

	buf_printf(out, "%s%s = ", prefix, k->key);
	start = out->len;
	conf_key_format(k, conf, out);
	if (out->len == start)
		out->len--;	/* empty value: drop the blank */
	buf_append_str(out, "\n");
}

void
conf_dump(const struct tern_conf *conf, struct buf *out)
{
	buf_append_str(out, "# tern configuration: every key with its "
		       "effective value\n");
	for (size_t i = 0; i < conf_nkeys; i++) {
		const struct conf_key *k = &conf_keys[i];

		buf_append_str(out, "\n");
		comment(out, k->doc);
		if (k->type == CONF_T_LIST) {
			if (k->count(conf) == 0)
				buf_printf(out, "# (no %s)\n", k->key);
			else
				k->dump(conf, out);
			continue;
		}
		scalar_line(out, "", k, conf);
	}
}

/* one "key = value" line per line of the example */
static void
example_lines(struct buf *out, const char *key, const char *ex)
{
	while (*ex != '\0') {
		const char *nl = strchr(ex, '\n');
		/* UNSAFE: nl points into ex */
		size_t n = nl != NULL ? (size_t)(nl - ex) : strlen(ex);
		buf_printf(out, "%s = %.*s\n", key, (int)n, ex);
		ex += n + (nl != NULL);
	}
}

void
conf_example(struct buf *out)
{
	struct tern_conf defaults = { 0 };

	comment(out, "tern.conf: configuration of the tern mail server.");
	buf_append_str(out, "#\n");
	comment(out, "One \"key = value\" per line; '#' starts a comment. "
		"The keys listen, domain, user and alias may repeat: each "
		"line adds one item. A line \"#key = value\" shows a "
		"default; remove the '#' and edit the value to change it. "
		"`tern dump-config` prints the configuration in effect.");
	for (size_t i = 0; i < conf_nkeys; i++) {
		const struct conf_key *k = &conf_keys[i];

		buf_append_str(out, "\n");
		comment(out, k->doc);
		if (k->example != NULL) {
			example_lines(out, k->key, k->example);
		} else if (k->type == CONF_T_LIST) {
			TN_ASSERT(k->def != NULL);
			buf_printf(out, "#%s = %s\n", k->key, k->def);
		} else {
			conf_key_set_default(k, &defaults);
			scalar_line(out, "#", k, &defaults);
			if (k->type == CONF_T_STRING)
				free(*(char **)((char *)&defaults + k->offset));
		}
	}
}
