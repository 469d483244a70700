#include "loop.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock.h"
#include "grow.h"
#include "log.h"

struct post {
	es_loop_fn fn;
	void *arg;
	struct post *next;
};

struct timer {
	es_timer_id id;
	uint64_t due;
	es_loop_fn fn;
	void *arg;
};

struct watch {
	int fd;
	short events;
	es_fd_fn fn;
	void *arg;
};

struct es_async {
	es_loop *loop;
	es_loop_fn fn;
	void *arg;
	bool pending; /* guarded by loop->lock */
	es_async *next;
};

struct es_loop {
	int wake_fd;
	atomic_bool stop;
	pthread_mutex_t lock; /* guards head, tail, asyncs' pending flags */
	struct post *head, *tail;
	bool woken;	  /* guarded by lock: a wake-up is on its way */
	es_async *asyncs; /* the list itself: loop thread only */
	uint64_t now;
	struct timer *timers; /* sorted by due, then id */
	size_t ntimers, captimers;
	struct watch *watches;
	size_t nwatches, capwatches;
	es_timer_id next_id;
};

es_err es_loop_new(es_loop **out)
{
	es_loop *l = calloc(1, sizeof *l);
	if (!l)
		return ES_ENOMEM;
	l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->wake_fd < 0) {
		es_error("loop", "eventfd: %s", strerror(errno));
		free(l);
		return ES_ESYS;
	}
	pthread_mutex_init(&l->lock, NULL);
	l->now = es_clock_mono_ms();
	l->next_id = 1;
	*out = l;
	return ES_OK;
}

void es_loop_free(es_loop *l)
{
	if (!l)
		return;
	for (struct post *p = l->head, *next; p; p = next) {
		next = p->next;
		free(p);
	}
	for (es_async *a = l->asyncs, *next; a; a = next) {
		next = a->next;
		free(a);
	}
	free(l->timers);
	free(l->watches);
	close(l->wake_fd);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

/* Caller holds the lock. Writes the eventfd once per batch of wake-ups. */
static void wake_locked(es_loop *l)
{
	if (l->woken)
		return;
	l->woken = true;
	uint64_t one = 1;
	if (write(l->wake_fd, &one, sizeof one) < 0 && errno != EAGAIN)
		es_error("loop", "eventfd write: %s", strerror(errno));
}

void es_loop_stop(es_loop *l)
{
	atomic_store(&l->stop, true);
	pthread_mutex_lock(&l->lock);
	wake_locked(l);
	pthread_mutex_unlock(&l->lock);
}

es_err es_loop_post(es_loop *l, es_loop_fn fn, void *arg)
{
	struct post *p = malloc(sizeof *p);
	if (!p)
		return ES_ENOMEM;
	*p = (struct post){.fn = fn, .arg = arg};
	pthread_mutex_lock(&l->lock);
	if (l->tail)
		l->tail->next = p;
	else
		l->head = p;
	l->tail = p;
	wake_locked(l);
	pthread_mutex_unlock(&l->lock);
	return ES_OK;
}

es_err es_async_new(es_loop *l, es_loop_fn fn, void *arg, es_async **out)
{
	es_async *a = calloc(1, sizeof *a);
	if (!a)
		return ES_ENOMEM;
	*a = (es_async){.loop = l, .fn = fn, .arg = arg, .next = l->asyncs};
	l->asyncs = a;
	*out = a;
	return ES_OK;
}

void es_async_send(es_async *a)
{
	es_loop *l = a->loop;
	pthread_mutex_lock(&l->lock);
	if (!a->pending) {
		a->pending = true;
		wake_locked(l);
	}
	pthread_mutex_unlock(&l->lock);
}

void es_async_free(es_async *a)
{
	if (!a)
		return;
	es_async **pp = &a->loop->asyncs;
	while (*pp && *pp != a)
		pp = &(*pp)->next;
	if (*pp)
		*pp = a->next;
	free(a);
}

es_err es_loop_timer(es_loop *l, uint64_t delay_ms, es_loop_fn fn, void *arg, es_timer_id *id)
{
	struct timer *grown = es_grow(l->timers, &l->captimers, l->ntimers + 1, sizeof *grown, 16);
	if (!grown)
		return ES_ENOMEM;
	l->timers = grown;
	struct timer t = {
		.id = l->next_id++, .due = es_clock_mono_ms() + delay_ms, .fn = fn, .arg = arg};
	size_t i = l->ntimers;
	while (i > 0 && l->timers[i - 1].due > t.due)
		i--;
	memmove(&l->timers[i + 1], &l->timers[i], (l->ntimers - i) * sizeof t);
	l->timers[i] = t;
	l->ntimers++;
	if (id)
		*id = t.id;
	return ES_OK;
}

void es_loop_timer_cancel(es_loop *l, es_timer_id id)
{
	for (size_t i = 0; i < l->ntimers; i++) {
		if (l->timers[i].id == id) {
			memmove(&l->timers[i], &l->timers[i + 1],
				(l->ntimers - i - 1) * sizeof l->timers[0]);
			l->ntimers--;
			return;
		}
	}
}

es_err es_loop_watch(es_loop *l, int fd, short events, es_fd_fn fn, void *arg)
{
	for (size_t i = 0; i < l->nwatches; i++) {
		if (l->watches[i].fd == fd) {
			l->watches[i] = (struct watch){fd, events, fn, arg};
			return ES_OK;
		}
	}
	struct watch *grown =
		es_grow(l->watches, &l->capwatches, l->nwatches + 1, sizeof *grown, 8);
	if (!grown)
		return ES_ENOMEM;
	l->watches = grown;
	l->watches[l->nwatches++] = (struct watch){fd, events, fn, arg};
	return ES_OK;
}

void es_loop_unwatch(es_loop *l, int fd)
{
	for (size_t i = 0; i < l->nwatches; i++) {
		if (l->watches[i].fd == fd) {
			l->watches[i] = l->watches[--l->nwatches];
			return;
		}
	}
}

uint64_t es_loop_now(const es_loop *l)
{
	return l->now;
}

/* Puts work taken but not run back at the head of the queue. */
static void requeue(es_loop *l, struct post *first)
{
	struct post *last = first;
	while (last->next)
		last = last->next;
	pthread_mutex_lock(&l->lock);
	last->next = l->head;
	l->head = first;
	if (!l->tail)
		l->tail = last;
	wake_locked(l);
	pthread_mutex_unlock(&l->lock);
}

/* Runs the posted work and pending asyncs queued so far, stopping after the
 * callback that called es_loop_stop. */
static void run_posted(es_loop *l)
{
	uint64_t drain;
	if (read(l->wake_fd, &drain, sizeof drain) < 0 && errno != EAGAIN)
		es_error("loop", "eventfd read: %s", strerror(errno));
	pthread_mutex_lock(&l->lock);
	struct post *p = l->head;
	l->head = l->tail = NULL;
	l->woken = false;
	pthread_mutex_unlock(&l->lock);
	while (p) {
		struct post *next = p->next;
		p->fn(p->arg);
		free(p);
		p = next;
		if (p && atomic_load(&l->stop)) {
			requeue(l, p);
			return;
		}
	}
	for (es_async *a = l->asyncs; a && !atomic_load(&l->stop);) {
		es_async *next = a->next; /* fn may free a */
		pthread_mutex_lock(&l->lock);
		bool due = a->pending;
		a->pending = false;
		pthread_mutex_unlock(&l->lock);
		if (due)
			a->fn(a->arg);
		a = next;
	}
}

/* Fires the timers due now; ones armed by those callbacks wait a turn. */
static void run_timers(es_loop *l)
{
	uint64_t now = l->now;
	es_timer_id limit = l->next_id;
	size_t i = 0;
	while (i < l->ntimers && l->timers[i].due <= now && !atomic_load(&l->stop)) {
		struct timer t = l->timers[i];
		if (t.id >= limit) {
			i++;
			continue;
		}
		memmove(&l->timers[i], &l->timers[i + 1], (l->ntimers - i - 1) * sizeof t);
		l->ntimers--;
		t.fn(t.arg);
		i = 0; /* the callback may have changed the array */
	}
}

static int poll_timeout(const es_loop *l)
{
	if (l->ntimers == 0)
		return -1;
	uint64_t due = l->timers[0].due;
	if (due <= l->now)
		return 0;
	uint64_t ms = due - l->now;
	return ms > 60000 ? 60000 : (int)ms;
}

static void run_watches(es_loop *l, const struct pollfd *fds, size_t n)
{
	for (size_t i = 0; i < n && !atomic_load(&l->stop); i++) {
		if (!fds[i].revents)
			continue;
		for (size_t j = 0; j < l->nwatches; j++) {
			if (l->watches[j].fd == fds[i].fd) {
				struct watch w = l->watches[j];
				w.fn(w.arg, w.fd, fds[i].revents);
				break;
			}
		}
	}
}

es_err es_loop_run(es_loop *l)
{
	struct pollfd *fds = NULL;
	es_err err = ES_OK;
	while (!atomic_load(&l->stop)) {
		struct pollfd *grown = realloc(fds, (l->nwatches + 1) * sizeof *fds);
		if (!grown) {
			err = ES_ENOMEM;
			break;
		}
		fds = grown;
		fds[0] = (struct pollfd){.fd = l->wake_fd, .events = POLLIN};
		size_t n = l->nwatches;
		for (size_t i = 0; i < n; i++)
			fds[i + 1] = (struct pollfd){.fd = l->watches[i].fd,
						     .events = l->watches[i].events};
		l->now = es_clock_mono_ms();
		if (poll(fds, n + 1, poll_timeout(l)) < 0 && errno != EINTR) {
			es_error("loop", "poll: %s", strerror(errno));
			err = ES_ESYS;
			break;
		}
		l->now = es_clock_mono_ms();
		run_posted(l);
		run_timers(l);
		run_watches(l, fds + 1, n);
		/* each step above returns at once after a callback that stopped */
	}
	free(fds);
	atomic_store(&l->stop, false);
	return err;
}
