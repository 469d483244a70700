/* metrics.c - the metrics registry and its text exposition.
 *
 * Locks: es_metrics.lock guards the family list and the collectors, and
 * serializes renders (so two scrapes never interleave their collectors).
 * es_metric_family.lock guards its children list and nchildren. A child's
 * values are atomics: a double's bits in a uint64_t (counters, gauges, a
 * histogram's sum) and plain counts (a histogram's buckets, not cumulative).
 * Lock order: registry, then family.
 */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "grow.h"
#include "log.h"

#define TAG		     "metrics"
#define MAX_CHILDREN_DEFAULT 1000

struct es_metric {
	es_metric_family *f;
	char **values;
	_Atomic uint64_t bits;	   /* the value, or a histogram's sum, as a double */
	_Atomic uint64_t *buckets; /* histogram: nbuckets + 1 (the last is +Inf) */
	es_metric *next;
};

struct es_metric_family {
	es_metrics *m;
	es_metric_type type;
	char *name, *help;
	char *labels[ES_METRICS_LABELS_MAX];
	size_t nlabels;
	double buckets[ES_METRICS_BUCKETS_MAX];
	size_t nbuckets;
	pthread_mutex_t lock;
	es_metric *children, *tail;
	size_t nchildren;
	es_metric_family *next;
};

struct collector {
	es_metrics_collect_fn fn;
	void *ctx;
};

struct es_metrics {
	size_t max_children;
	pthread_mutex_t lock;
	es_metric_family *families, *tail;
	struct collector *collectors;
	size_t ncollectors;
	es_metric *refused;	 /* the registry's own counter */
	struct process *process; /* es_metrics_add_process's */
};

/* ---- doubles in atomics --------------------------------------------------- */

static uint64_t to_bits(double v)
{
	uint64_t b;
	memcpy(&b, &v, sizeof b);
	return b;
}

static double from_bits(uint64_t b)
{
	double v;
	memcpy(&v, &b, sizeof v);
	return v;
}

static void atomic_add_double(_Atomic uint64_t *p, double v)
{
	uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(p, &old, to_bits(from_bits(old) + v),
						      memory_order_relaxed, memory_order_relaxed))
		;
}

/* ---- names ---------------------------------------------------------------- */

static bool name_char(char c, bool first, bool colon)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':'))
		return true;
	return !first && c >= '0' && c <= '9';
}

static bool ident_ok(const char *s, size_t len, bool colon)
{
	if (!s || !len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!name_char(s[i], i == 0, colon))
			return false;
	return true;
}

int es_metrics_name_ok(const char *name)
{
	return name && ident_ok(name, strlen(name), true);
}

/* ---- the registry ----------------------------------------------------------- */

static void child_free(es_metric *c, size_t nlabels)
{
	for (size_t i = 0; c->values && i < nlabels; i++)
		free(c->values[i]);
	free(c->values);
	free(c->buckets);
	free(c);
}

static void family_free(es_metric_family *f)
{
	for (es_metric *c = f->children, *next; c; c = next) {
		next = c->next;
		child_free(c, f->nlabels);
	}
	for (size_t i = 0; i < f->nlabels; i++)
		free(f->labels[i]);
	free(f->name);
	free(f->help);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

es_err es_metrics_new(size_t max_children, es_metrics **out)
{
	if (!out)
		return ES_EINVAL;
	es_metrics *m = calloc(1, sizeof *m);
	if (!m)
		return ES_ENOMEM;
	m->max_children = max_children ? max_children : MAX_CHILDREN_DEFAULT;
	pthread_mutex_init(&m->lock, NULL);
	es_metric_family *f;
	es_metric_desc d = {
		.type = ES_METRIC_COUNTER,
		.name = "edgespool_metrics_series_refused_total",
		.help = "Label combinations refused because their metric had too many series.",
	};
	es_err err = es_metrics_add(m, &d, &f);
	if (err) {
		es_metrics_free(m);
		return err;
	}
	m->refused = f->children;
	*out = m;
	return ES_OK;
}

void es_metrics_free(es_metrics *m)
{
	if (!m)
		return;
	for (es_metric_family *f = m->families, *next; f; f = next) {
		next = f->next;
		family_free(f);
	}
	free(m->collectors);
	free(m->process);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* Splits "a,b" into f->labels. */
static es_err set_labels(es_metric_family *f, const char *labels)
{
	const char *p = labels ? labels : "";
	while (*p) {
		size_t len = strcspn(p, ",");
		if (f->nlabels == ES_METRICS_LABELS_MAX || !ident_ok(p, len, false) ||
		    (len >= 2 && p[0] == '_' && p[1] == '_') ||
		    (f->type == ES_METRIC_HISTOGRAM && len == 2 && strncmp(p, "le", 2) == 0))
			return ES_EINVAL;
		if (!(f->labels[f->nlabels++] = strndup(p, len)))
			return ES_ENOMEM;
		p += len + (p[len] == ',');
	}
	return ES_OK;
}

static es_err set_buckets(es_metric_family *f, const es_metric_desc *d)
{
	if (d->type != ES_METRIC_HISTOGRAM)
		return ES_OK;
	if (!d->buckets || !d->nbuckets || d->nbuckets > ES_METRICS_BUCKETS_MAX)
		return ES_EINVAL;
	for (size_t i = 0; i < d->nbuckets; i++) {
		if (!isfinite(d->buckets[i]) || (i && d->buckets[i] <= d->buckets[i - 1]))
			return ES_EINVAL;
		f->buckets[i] = d->buckets[i];
	}
	f->nbuckets = d->nbuckets;
	return ES_OK;
}

static bool name_taken(const es_metrics *m, const char *name)
{
	for (const es_metric_family *f = m->families; f; f = f->next)
		if (strcmp(f->name, name) == 0)
			return true;
	return false;
}

static es_err family_new(const es_metric_desc *d, es_metric_family **out)
{
	if (!es_metrics_name_ok(d->name) || d->type > ES_METRIC_HISTOGRAM)
		return ES_EINVAL;
	es_metric_family *f = calloc(1, sizeof *f);
	if (!f)
		return ES_ENOMEM;
	pthread_mutex_init(&f->lock, NULL);
	f->type = d->type;
	f->name = strdup(d->name);
	f->help = strdup(d->help ? d->help : "");
	es_err err = !f->name || !f->help ? ES_ENOMEM : set_labels(f, d->labels);
	if (!err)
		err = set_buckets(f, d);
	if (err) {
		family_free(f);
		return err;
	}
	*out = f;
	return ES_OK;
}

es_err es_metrics_add(es_metrics *m, const es_metric_desc *d, es_metric_family **out)
{
	if (!m || !d || !out)
		return ES_EINVAL;
	es_metric_family *f;
	es_err err = family_new(d, &f);
	if (!err) {
		f->m = m;
		pthread_mutex_lock(&m->lock);
		if (name_taken(m, f->name)) {
			err = ES_EINVAL;
		} else {
			if (m->tail)
				m->tail->next = f;
			else
				m->families = f;
			m->tail = f;
		}
		pthread_mutex_unlock(&m->lock);
		if (err)
			family_free(f);
	}
	if (err == ES_EINVAL)
		es_error(TAG, "metric %s: bad or taken name, labels or buckets",
			 d->name ? d->name : "(null)");
	if (!err && !f->nlabels && !es_metric_childv(f, NULL))
		err = ES_ENOMEM; /* f stays registered; freed with m */
	if (!err)
		*out = f;
	return err;
}

es_err es_metrics_collector(es_metrics *m, es_metrics_collect_fn fn, void *ctx)
{
	if (!m || !fn)
		return ES_EINVAL;
	pthread_mutex_lock(&m->lock);
	struct collector *c = realloc(m->collectors, (m->ncollectors + 1) * sizeof *c);
	if (c) {
		m->collectors = c;
		c[m->ncollectors++] = (struct collector){fn, ctx};
	}
	pthread_mutex_unlock(&m->lock);
	return c ? ES_OK : ES_ENOMEM;
}

/* ---- process metrics ---------------------------------------------------------- */

struct process {
	es_metric *rss, *start;
};

static void collect_process(void *ctx)
{
	struct process *p = ctx;
	unsigned long long size, resident;
	FILE *f = fopen("/proc/self/statm", "r");
	if (f && fscanf(f, "%llu %llu", &size, &resident) == 2)
		es_metric_set(p->rss, (double)resident * (double)sysconf(_SC_PAGESIZE));
	if (f)
		fclose(f);
}

es_err es_metrics_add_process(es_metrics *m)
{
	es_metric_desc rss = {.type = ES_METRIC_GAUGE,
			      .name = "process_resident_memory_bytes",
			      .help = "Resident memory size in bytes."};
	es_metric_desc start = {.type = ES_METRIC_GAUGE,
				.name = "process_start_time_seconds",
				.help = "Start time of the process since unix epoch in seconds."};
	es_metric_family *fr, *fs;
	es_err err = es_metrics_add(m, &rss, &fr);
	if (!err)
		err = es_metrics_add(m, &start, &fs);
	if (err)
		return err;
	/* p lives as long as m (freed by es_metrics_free), like the children. */
	struct process *p = calloc(1, sizeof *p);
	if (!p)
		return ES_ENOMEM;
	p->rss = fr->children;
	p->start = fs->children;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	es_metric_set(p->start, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
	err = es_metrics_collector(m, collect_process, p);
	if (err)
		free(p);
	else
		m->process = p;
	return err;
}

/* ---- children ------------------------------------------------------------------ */

static bool same_values(const es_metric *c, const char *const *values, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(c->values[i], values[i] ? values[i] : "") != 0)
			return false;
	return true;
}

static es_metric *child_new(const es_metric_family *f, const char *const *values)
{
	es_metric *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->f = (es_metric_family *)f;
	bool ok = !f->nlabels || (c->values = calloc(f->nlabels, sizeof *c->values));
	for (size_t i = 0; ok && i < f->nlabels; i++)
		ok = (c->values[i] = strdup(values[i] ? values[i] : "")) != NULL;
	if (ok && f->type == ES_METRIC_HISTOGRAM)
		ok = (c->buckets = calloc(f->nbuckets + 1, sizeof *c->buckets)) != NULL;
	if (!ok) {
		child_free(c, f->nlabels);
		return NULL;
	}
	return c;
}

es_metric *es_metric_childv(es_metric_family *f, const char *const *values)
{
	if (!f || (f->nlabels && !values))
		return NULL;
	pthread_mutex_lock(&f->lock);
	es_metric *c = f->children;
	while (c && !same_values(c, values, f->nlabels))
		c = c->next;
	bool refused = false;
	if (!c && f->nchildren >= f->m->max_children)
		refused = true;
	else if (!c && (c = child_new(f, values))) {
		if (f->tail)
			f->tail->next = c;
		else
			f->children = c;
		f->tail = c;
		f->nchildren++;
	}
	pthread_mutex_unlock(&f->lock);
	if (refused || !c)
		es_metric_inc(f->m->refused);
	return c;
}

es_metric *es_metric_child(es_metric_family *f, ...)
{
	const char *values[ES_METRICS_LABELS_MAX] = {0};
	if (!f)
		return NULL;
	va_list ap;
	va_start(ap, f);
	for (size_t i = 0; i < f->nlabels; i++)
		values[i] = va_arg(ap, const char *);
	va_end(ap);
	return es_metric_childv(f, values);
}

/* ---- updates ------------------------------------------------------------------- */

void es_metric_inc(es_metric *c)
{
	es_metric_add(c, 1.0);
}

void es_metric_add(es_metric *c, double v)
{
	if (!c || c->f->type == ES_METRIC_HISTOGRAM || (c->f->type == ES_METRIC_COUNTER && v < 0))
		return;
	atomic_add_double(&c->bits, v);
}

void es_metric_set(es_metric *c, double v)
{
	if (c && c->f->type != ES_METRIC_HISTOGRAM)
		atomic_store_explicit(&c->bits, to_bits(v), memory_order_relaxed);
}

double es_metric_value(const es_metric *c)
{
	return c ? from_bits(atomic_load_explicit(&c->bits, memory_order_relaxed)) : 0.0;
}

void es_metric_observe(es_metric *h, double v)
{
	if (!h || h->f->type != ES_METRIC_HISTOGRAM)
		return;
	size_t i = 0;
	while (i < h->f->nbuckets && !(v <= h->f->buckets[i]))
		i++;
	atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
	atomic_add_double(&h->bits, v);
}

uint64_t es_metric_count(const es_metric *h)
{
	uint64_t n = 0;
	for (size_t i = 0; h && h->buckets && i <= h->f->nbuckets; i++)
		n += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
	return n;
}

/* ---- exposition -------------------------------------------------------------------- */

void es_metrics_format_double(double v, char *buf, size_t cap)
{
	if (isnan(v)) {
		snprintf(buf, cap, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(buf, cap, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	/* The shortest of %.15g and %.17g that reads back as v. */
	snprintf(buf, cap, "%.15g", v);
	if (strtod(buf, NULL) != v)
		snprintf(buf, cap, "%.17g", v);
	for (char *p = buf; *p; p++)
		if (*p == ',')
			*p = '.'; /* a locale's decimal comma */
}

struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	char *p = n < SIZE_MAX - b->len ? es_grow(b->p, &b->cap, b->len + n + 1, 1, 4096) : NULL;
	if (!p) {
		b->oom = true;
		return;
	}
	b->p = p;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

/* s with \ and newline escaped, and " too when quote. */
static void put_escaped(struct buf *b, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			puts_(b, "\\\\");
		else if (*s == '\n')
			puts_(b, "\\n");
		else if (quote && *s == '"')
			puts_(b, "\\\"");
		else
			put(b, s, 1);
	}
}

static void put_double(struct buf *b, double v)
{
	char num[40];
	es_metrics_format_double(v, num, sizeof num);
	puts_(b, num);
}

static void put_uint(struct buf *b, uint64_t v)
{
	char num[24];
	snprintf(num, sizeof num, "%llu", (unsigned long long)v);
	puts_(b, num);
}

/* name{labels[,le="x"]} with suffix; le is NULL outside histogram buckets. */
static void put_series(struct buf *b, const es_metric *c, const char *suffix, const char *le)
{
	const es_metric_family *f = c->f;
	puts_(b, f->name);
	puts_(b, suffix);
	if (!f->nlabels && !le) {
		puts_(b, " ");
		return;
	}
	puts_(b, "{");
	for (size_t i = 0; i < f->nlabels; i++) {
		puts_(b, i ? "," : "");
		puts_(b, f->labels[i]);
		puts_(b, "=\"");
		put_escaped(b, c->values[i], true);
		puts_(b, "\"");
	}
	if (le) {
		puts_(b, f->nlabels ? ",le=\"" : "le=\"");
		puts_(b, le);
		puts_(b, "\"");
	}
	puts_(b, "} ");
}

static void render_histogram(struct buf *b, const es_metric *c)
{
	const es_metric_family *f = c->f;
	uint64_t cumulative = 0;
	char le[40];
	for (size_t i = 0; i <= f->nbuckets; i++) {
		cumulative += atomic_load_explicit(&c->buckets[i], memory_order_relaxed);
		if (i < f->nbuckets)
			es_metrics_format_double(f->buckets[i], le, sizeof le);
		else
			snprintf(le, sizeof le, "+Inf");
		put_series(b, c, "_bucket", le);
		put_uint(b, cumulative);
		puts_(b, "\n");
	}
	put_series(b, c, "_sum", NULL);
	put_double(b, es_metric_value(c));
	puts_(b, "\n");
	put_series(b, c, "_count", NULL);
	put_uint(b, cumulative); /* equal to the +Inf bucket, whatever ran meanwhile */
	puts_(b, "\n");
}

static void render_family(struct buf *b, es_metric_family *f)
{
	static const char *const types[] = {"counter", "gauge", "histogram"};
	puts_(b, "# HELP ");
	puts_(b, f->name);
	puts_(b, " ");
	put_escaped(b, f->help, false);
	puts_(b, "\n# TYPE ");
	puts_(b, f->name);
	puts_(b, " ");
	puts_(b, types[f->type]);
	puts_(b, "\n");
	pthread_mutex_lock(&f->lock);
	for (const es_metric *c = f->children; c; c = c->next) {
		if (f->type == ES_METRIC_HISTOGRAM) {
			render_histogram(b, c);
			continue;
		}
		put_series(b, c, "", NULL);
		put_double(b, es_metric_value(c));
		puts_(b, "\n");
	}
	pthread_mutex_unlock(&f->lock);
}

es_err es_metrics_render(es_metrics *m, char **text, size_t *len)
{
	if (!m || !text || !len)
		return ES_EINVAL;
	struct buf b = {0};
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->ncollectors; i++)
		m->collectors[i].fn(m->collectors[i].ctx);
	for (es_metric_family *f = m->families; f; f = f->next)
		render_family(&b, f);
	pthread_mutex_unlock(&m->lock);
	put(&b, "", 0);
	if (b.oom) {
		free(b.p);
		return ES_ENOMEM;
	}
	*text = b.p;
	*len = b.len;
	return ES_OK;
}
