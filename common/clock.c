/* clock.c - wall and monotonic milliseconds, RFC 3339 formatting and parsing.
 *
 * Calendar arithmetic is done by hand (days from civil and back, after
 * Howard Hinnant's public-domain algorithms) rather than with gmtime/timegm:
 * it is exact over our whole range, allocation-free, independent of the time
 * zone, and fast enough to stamp every event.
 */
#include "clock.h"

#include <string.h>
#include <sys/timex.h>
#include <time.h>

#define MS_PER_DAY 86400000ull
/* 9999-12-31T23:59:59.999Z: the last instant with a four-digit year. */
#define MS_MAX 253402300799999ull

static uint64_t ts_ms(clockid_t id)
{
	struct timespec ts;
	if (clock_gettime(id, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Wall time (CLOCK_REALTIME) in ms since the epoch. */
uint64_t es_clock_wall_ms(void)
{
	return ts_ms(CLOCK_REALTIME);
}

/* Monotonic time (CLOCK_MONOTONIC) in ms since an arbitrary start. */
uint64_t es_clock_mono_ms(void)
{
	return ts_ms(CLOCK_MONOTONIC);
}

/* True when adjtimex reports the clock synchronised (no TIME_ERROR state and
 * STA_UNSYNC clear). A read-only query: modes = 0 needs no privilege. */
bool es_clock_synced(void)
{
	struct timex tx;
	memset(&tx, 0, sizeof tx);
	int state = adjtimex(&tx);
	return state >= 0 && state != TIME_ERROR && !(tx.status & STA_UNSYNC);
}

/* Days since 1970-01-01 of the proleptic Gregorian date y-m-d (y >= 1). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = y / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* The civil date of day z (days since 1970-01-01, z >= 0). */
static void civil_from_days(uint64_t z, unsigned *y, unsigned *m, unsigned *d)
{
	z += 719468;
	uint64_t era = z / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (unsigned)(yoe + era * 400) + (*m <= 2);
}

/* Writes v as exactly n decimal digits (zero-padded) at p. */
static char *put_digits(char *p, unsigned v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
	return p + n;
}

/* Writes ms as "YYYY-MM-DDTHH:MM:SS.mmmZ". Instants past year 9999 are
 * written as 9999-12-31T23:59:59.999Z so the text keeps its fixed width. */
void es_time_format(uint64_t ms, char out[ES_TIME_STR])
{
	if (ms > MS_MAX)
		ms = MS_MAX;
	unsigned y, mo, d;
	civil_from_days(ms / MS_PER_DAY, &y, &mo, &d);
	unsigned in_day = (unsigned)(ms % MS_PER_DAY);
	char *p = out;
	p = put_digits(p, y, 4);
	*p++ = '-';
	p = put_digits(p, mo, 2);
	*p++ = '-';
	p = put_digits(p, d, 2);
	*p++ = 'T';
	p = put_digits(p, in_day / 3600000, 2);
	*p++ = ':';
	p = put_digits(p, in_day / 60000 % 60, 2);
	*p++ = ':';
	p = put_digits(p, in_day / 1000 % 60, 2);
	*p++ = '.';
	p = put_digits(p, in_day % 1000, 3);
	*p++ = 'Z';
	*p = '\0';
}

/* Reads exactly n digits at *s into *v; advances *s. False if any is not a
 * digit. */
static bool get_digits(const char **s, int n, unsigned *v)
{
	unsigned acc = 0;
	for (int i = 0; i < n; i++) {
		char c = (*s)[i];
		if (c < '0' || c > '9')
			return false;
		acc = acc * 10 + (unsigned)(c - '0');
	}
	*s += n;
	*v = acc;
	return true;
}

static bool expect(const char **s, char a, char b)
{
	if (**s != a && **s != b)
		return false;
	(*s)++;
	return true;
}

static bool is_leap(unsigned y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(unsigned y, unsigned m)
{
	static const unsigned char days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* "YYYY-MM-DD" into days since the epoch; false if malformed or invalid. */
static bool parse_date(const char **s, int64_t *days)
{
	unsigned y, m, d;
	if (!get_digits(s, 4, &y) || !expect(s, '-', '-') || !get_digits(s, 2, &m) ||
	    !expect(s, '-', '-') || !get_digits(s, 2, &d))
		return false;
	if (y == 0 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
		return false;
	*days = days_from_civil(y, m, d);
	return true;
}

/* "HH:MM:SS" into seconds of the day. A leap second (:60) is accepted, as
 * RFC 3339 allows, and lands on the next second. */
static bool parse_hms(const char **s, int64_t *secs)
{
	unsigned h, mi, se;
	if (!get_digits(s, 2, &h) || !expect(s, ':', ':') || !get_digits(s, 2, &mi) ||
	    !expect(s, ':', ':') || !get_digits(s, 2, &se))
		return false;
	if (h > 23 || mi > 59 || se > 60)
		return false;
	*secs = (int64_t)h * 3600 + mi * 60 + se;
	return true;
}

/* Optional ".digits": milliseconds from the first three, the rest ignored. */
static bool parse_fraction(const char **s, int64_t *ms)
{
	*ms = 0;
	if (**s != '.')
		return true;
	(*s)++;
	if (**s < '0' || **s > '9')
		return false;
	int64_t scale = 100;
	for (; **s >= '0' && **s <= '9'; (*s)++) {
		*ms += (**s - '0') * scale;
		scale /= 10;
	}
	return true;
}

/* "Z" or "+hh:mm"/"-hh:mm" into the offset east of UTC, in seconds. */
static bool parse_offset(const char **s, int64_t *off)
{
	if (expect(s, 'Z', 'z')) {
		*off = 0;
		return true;
	}
	char sign = **s;
	if (sign != '+' && sign != '-')
		return false;
	(*s)++;
	unsigned h, m;
	if (!get_digits(s, 2, &h) || !expect(s, ':', ':') || !get_digits(s, 2, &m))
		return false;
	if (h > 23 || m > 59)
		return false;
	*off = (sign == '-' ? -1 : 1) * ((int64_t)h * 3600 + m * 60);
	return true;
}

/* Parses an RFC 3339 date-time into ms since the epoch; see clock.h. */
bool es_time_parse(const char *s, uint64_t *ms)
{
	if (!s || !ms)
		return false;
	int64_t days, secs, frac, off;
	if (!parse_date(&s, &days) || !expect(&s, 'T', 't') || !parse_hms(&s, &secs) ||
	    !parse_fraction(&s, &frac) || !parse_offset(&s, &off) || *s != '\0')
		return false;
	int64_t t = (days * 86400 + secs - off) * 1000 + frac;
	if (t < 0)
		return false;
	*ms = (uint64_t)t;
	return true;
}
