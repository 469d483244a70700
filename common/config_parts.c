/* config_parts.c - one table made from a program's parts (config.h): each
 * shared part's rows named under its section ("journal" + "path" is
 * "journal.path"), moved to where the part's struct is in the program's,
 * and changed by the program's edits. The result is an ordinary table,
 * validated by config.c like any other.
 */
#include "config_internal.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Bytes for the names of a part's rows ("prefix.key\0" each); 0 if a row
 * has no name (logged). */
static size_t names_size(const es_settings_part *p)
{
	size_t size = 0, pre = p->prefix ? strlen(p->prefix) + 1 : 0;
	for (size_t i = 0; i < p->n; i++) {
		if (!p->rows[i].name) {
			es_error("config", "a row of part %s has no name",
				 p->prefix ? p->prefix : "-");
			return 0;
		}
		size += pre + strlen(p->rows[i].name) + 1;
	}
	return size ? size : 1;
}

/* Applies edit e to the part's rows, now at rows[0..n). */
static bool edit(const es_settings_part *p, const es_setting_edit *e, es_setting *rows)
{
	for (size_t i = 0; e->key && i < p->n; i++) {
		if (strcmp(p->rows[i].name, e->key) != 0)
			continue;
		if (e->def)
			rows[i].def = e->def;
		if (e->help)
			rows[i].help = e->help;
		if (e->hide)
			rows[i].flags |= ES_CFG_HIDDEN;
		return true;
	}
	es_error("config", "part %s has no setting '%s' to edit", p->prefix ? p->prefix : "-",
		 e->key ? e->key : "(null)");
	return false;
}

/* Copies part p into rows[0..p->n), its names into *names (stepped past
 * them). */
static bool place(const es_settings_part *p, es_setting *rows, char **names)
{
	for (size_t i = 0; i < p->n; i++) {
		int len = sprintf(*names, "%s%s%s", p->prefix ? p->prefix : "",
				  p->prefix ? "." : "", p->rows[i].name);
		rows[i] = p->rows[i];
		rows[i].name = *names;
		rows[i].offset += p->base;
		*names += len + 1;
	}
	for (size_t k = 0; k < p->nedits; k++)
		if (!edit(p, &p->edits[k], rows))
			return false;
	return true;
}

/* The size of the table and of its names; false if a part is malformed. */
static bool measure(const es_settings_part *parts, size_t nparts, size_t *n, size_t *size)
{
	*n = *size = 0;
	for (size_t k = 0; k < nparts; k++) {
		const es_settings_part *p = &parts[k];
		size_t more = names_size(p);
		if (!p->rows || more == 0 || (p->nedits && !p->edits))
			return false;
		*n += p->n;
		*size += more;
	}
	return true;
}

/* Contract in config_internal.h. */
es_err es_cfg_flatten(const es_settings_part *parts, size_t nparts, es_setting **table, size_t *n,
		      char **names)
{
	size_t rows, size;
	if (!measure(parts, nparts, &rows, &size))
		return ES_EINVAL;
	es_setting *t = calloc(rows ? rows : 1, sizeof *t);
	char *buf = calloc(size ? size : 1, 1), *at = buf;
	if (!t || !buf) {
		free(t);
		free(buf);
		return ES_ENOMEM;
	}
	for (size_t k = 0, i = 0; k < nparts; i += parts[k].n, k++) {
		if (!place(&parts[k], t + i, &at)) {
			free(t);
			free(buf);
			return ES_EINVAL;
		}
	}
	*table = t;
	*n = rows;
	*names = buf;
	return ES_OK;
}
