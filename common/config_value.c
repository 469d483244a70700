/* config_value.c - values as text: the parsers of integers, sizes,
 * durations and booleans (with their units), and the text of a value that
 * parses back to it (for --print-config, --help and error messages).
 * Pure functions, no state.
 */
#include "config_internal.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef struct unit {
	const char *name;
	uint64_t mult;
} unit;

#define KIB ((uint64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

static const unit size_units[] = {
	{"", 1},      {"B", 1},		  {"k", KIB},	{"K", KIB},	     {"KB", 1000},
	{"kB", 1000}, {"KiB", KIB},	  {"M", MIB},	{"MB", 1000 * 1000}, {"MiB", MIB},
	{"G", GIB},   {"GB", 1000000000}, {"GiB", GIB}, {NULL, 0},
};
static const unit second_units[] = {
	{"", 1}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}, {NULL, 0},
};
static const unit ms_units[] = {
	{"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {NULL, 0},
};

/* Units for printing, largest first; the last one always divides. */
static const unit size_show[] = {{"GiB", GIB}, {"MiB", MIB}, {"KiB", KIB}, {"", 1}};
static const unit second_show[] = {{"d", 86400}, {"h", 3600}, {"m", 60}, {"s", 1}};
static const unit ms_show[] = {{"m", 60000}, {"s", 1000}, {"ms", 1}};

/* ---- parsers ------------------------------------------------------------ */

/* Reads one or more decimal digits at *s into *out and steps *s past them. */
static es_cfg_num digits(const char **s, uint64_t *out)
{
	const char *p = *s;
	uint64_t v = 0;
	if (!isdigit((unsigned char)*p))
		return ES_NUM_BAD;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return ES_NUM_BIG;
		v = v * 10 + d;
	}
	*s = p;
	*out = v;
	return ES_NUM_OK;
}

/* Contract in config_internal.h. */
es_cfg_num es_cfg_int(const char *s, int64_t *out)
{
	bool neg = *s == '-';
	if (*s == '-' || *s == '+')
		s++;
	uint64_t mag;
	es_cfg_num rc = digits(&s, &mag);
	if (rc != ES_NUM_OK)
		return rc;
	if (*s != '\0')
		return ES_NUM_BAD;
	if (mag > (uint64_t)INT64_MAX + (neg ? 1u : 0u))
		return ES_NUM_BIG;
	/* -(INT64_MAX + 1) cannot be negated in int64_t; go through it. */
	*out = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
	return ES_NUM_OK;
}

/* Digits, optional spaces, then one of units' suffixes; at most limit. */
static es_cfg_num parse_scaled(const char *s, const unit *units, uint64_t limit, uint64_t *out)
{
	uint64_t v;
	es_cfg_num rc = digits(&s, &v);
	if (rc != ES_NUM_OK)
		return rc;
	const char *digits_end = s;
	while (*s == ' ')
		s++;
	if (s != digits_end && *s == '\0')
		return ES_NUM_BAD; /* "64 KiB" reads well, "64 " is a typo */
	for (const unit *u = units; u->name; u++) {
		if (strcmp(s, u->name) != 0)
			continue;
		if (v > limit / u->mult)
			return ES_NUM_BIG;
		*out = v * u->mult;
		return ES_NUM_OK;
	}
	return ES_NUM_BAD;
}

/* Contract in config_internal.h. */
es_cfg_num es_cfg_size(const char *s, uint64_t *out)
{
	return parse_scaled(s, size_units, UINT64_MAX, out);
}

/* Contract in config.h. */
bool es_cfg_parse_size(const char *s, uint64_t *out)
{
	uint64_t v;
	if (!s || !out || parse_scaled(s, size_units, UINT64_MAX, &v) != ES_NUM_OK)
		return false;
	*out = v;
	return true;
}

/* Parses into an int64_t through the units given. */
static es_cfg_num parse_duration(const char *s, const unit *units, int64_t *out)
{
	uint64_t v;
	es_cfg_num rc = parse_scaled(s, units, (uint64_t)INT64_MAX, &v);
	if (rc == ES_NUM_OK)
		*out = (int64_t)v;
	return rc;
}

/* Contract in config_internal.h. */
es_cfg_num es_cfg_duration(const char *s, es_cfg_type t, int64_t *out)
{
	return parse_duration(s, t == ES_CFG_MS ? ms_units : second_units, out);
}

/* Contract in config.h. */
bool es_cfg_parse_seconds(const char *s, int64_t *out)
{
	int64_t v;
	if (!s || !out || parse_duration(s, second_units, &v) != ES_NUM_OK)
		return false;
	*out = v;
	return true;
}

/* Contract in config.h. */
bool es_cfg_parse_ms(const char *s, int64_t *out)
{
	int64_t v;
	if (!s || !out || parse_duration(s, ms_units, &v) != ES_NUM_OK)
		return false;
	*out = v;
	return true;
}

/* Contract in config.h. Case does not matter. */
bool es_cfg_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	if (!s || !out)
		return false;
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
			*out = strcasecmp(s, yes[i]) == 0;
			return true;
		}
	}
	return false;
}

/* ---- text that reads back ---------------------------------------------- */

/* v with the largest unit of show (largest first) that divides it. */
static const char *scaled_text(uint64_t v, const unit *show, char *buf, size_t cap)
{
	const unit *u = show;
	while (v != 0 && v % u->mult != 0)
		u++;
	if (v == 0) /* the smallest unit reads best: "0s", "0ms" */
		while (u->mult != 1)
			u++;
	snprintf(buf, cap, "%" PRIu64 "%s", v / u->mult, u->name);
	return buf;
}

/* Contract in config_internal.h. */
const char *es_cfg_num_text(es_cfg_type t, int64_t v, char *buf, size_t cap)
{
	if (t == ES_CFG_INT || v < 0) {
		snprintf(buf, cap, "%" PRId64, v);
		return buf;
	}
	const unit *show = t == ES_CFG_SIZE	 ? size_show
			   : t == ES_CFG_SECONDS ? second_show
						 : ms_show;
	return scaled_text((uint64_t)v, show, buf, cap);
}

/* Contract in config_internal.h. */
const char *es_cfg_size_text(uint64_t v, char *buf, size_t cap)
{
	return scaled_text(v, size_show, buf, cap);
}

/* Contract in config_internal.h. */
const char *es_cfg_choices_text(const es_setting *row, char *buf, size_t cap)
{
	size_t used = 0;
	buf[0] = '\0';
	for (const char *const *ch = row->choices; *ch && used < cap; ch++) {
		int n = snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", *ch);
		if (n < 0)
			break;
		used += (size_t)n;
	}
	return buf;
}

/* Contract in config_internal.h. */
const char *es_cfg_enum_text(const es_setting *row, int k)
{
	for (int j = 0; row->choices[j]; j++) {
		if (j == k)
			return row->choices[j];
	}
	return "";
}
