/* SPDX-License-Identifier: MIT */
/* housekeep.c: fugue-logd's compressor and retention threads, and startup recovery of interrupted archiving. */
#define _GNU_SOURCE
#include "housekeep.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "drain.h"
#include "fuguelog.h"
#include "retention.h"
#include "rings.h"
#include "sink.h"
#include "sysutil.h"

#define KICK_GAP_NS 1000000000ll /* at most one kicked pass a second, however fast sessions rotate */

struct fl_housekeep {
	int root_fd;
	char shm_prefix[72];
	struct fl_archiver *arch;
	pthread_t thread;
	pthread_t watcher; /* valid when inotify_fd >= 0 */
	int inotify_fd;
	int stop_fd; /* eventfd: the watcher sleeps on inotify and this, without a timer */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct fl_retention_policy policy; /* under mu */
	int stop, kicked;		   /* under mu */
	int64_t period_ns;
};

/* A session whose ring is still in shm is live, whatever its manifest says. */
static int live_by_shm(void *arg, const char *id)
{
	struct fl_housekeep *h = arg;
	char path[256];
	snprintf(path, sizeof path, FL_SHM_DIR "/%s%s", h->shm_prefix, id);
	return access(path, F_OK) == 0 ? 1 : -1;
}

static void on_archived(void *arg, uint64_t tag, const char *plain, int rc, const struct fl_archive_stats *st)
{
	(void)tag;
	(void)st;
	struct fl_housekeep *h = arg;
	if (rc < 0 && rc != -ENOENT)
		fl_drain_log("archiving %s failed: %s; it stays plain and is retried at the next start", plain,
			     strerror(-rc));
	else
		fl_housekeep_kick(h);
}

static void *housekeep_main(void *p)
{
	struct fl_housekeep *h = p;
	pthread_setname_np(pthread_self(), "fl-housekeep");
	struct fl_retention_hooks hooks = {.live = live_by_shm, .arg = h, .by = "fugue-logd"};
	int64_t last_pass = 0;
	pthread_mutex_lock(&h->mu);
	while (!h->stop) {
		int64_t now = fl_now_ns(CLOCK_MONOTONIC);
		int64_t due = last_pass + h->period_ns;
		if (h->kicked)
			due = last_pass + KICK_GAP_NS < due ? last_pass + KICK_GAP_NS : due;
		if (now < due) {
			struct timespec ts;
			int64_t wake = fl_now_ns(CLOCK_REALTIME) + (due - now);
			ts.tv_sec = wake / 1000000000ll;
			ts.tv_nsec = wake % 1000000000ll;
			pthread_cond_timedwait(&h->cv, &h->mu, &ts);
			continue;
		}
		h->kicked = 0;
		struct fl_retention_policy pol = h->policy;
		pthread_mutex_unlock(&h->mu);

		int rc = fl_retention_run(h->root_fd, &pol, fl_now_ns(CLOCK_REALTIME), &hooks, NULL);
		if (rc < 0)
			fl_drain_log("retention pass failed: %s", strerror(-rc));
		last_pass = fl_now_ns(CLOCK_MONOTONIC);
		pthread_mutex_lock(&h->mu);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

/*
 * A ring unlinked from shm is a session that just ended: a pass soon makes
 * cleanup_on_exit (and "ended sessions older than retention") act within about
 * a second instead of at the next timer tick.
 */
static void *watch_main(void *p)
{
	struct fl_housekeep *h = p;
	pthread_setname_np(pthread_self(), "fl-watch");
	size_t plen = strlen(h->shm_prefix);
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		pthread_mutex_lock(&h->mu);
		int stop = h->stop;
		pthread_mutex_unlock(&h->mu);
		if (stop)
			break;
		struct pollfd pf[2] = {{h->inotify_fd, POLLIN, 0}, {h->stop_fd, POLLIN, 0}};
		if (poll(pf, 2, -1) <= 0 || !(pf[0].revents & POLLIN))
			continue;
		ssize_t n = read(h->inotify_fd, buf, sizeof buf);
		int ours = 0;
		for (ssize_t off = 0; n > 0 && off + (ssize_t)sizeof(struct inotify_event) <= n;) {
			const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
			if (ev->len && !strncmp(ev->name, h->shm_prefix, plen))
				ours = 1;
			off += (ssize_t)(sizeof *ev + ev->len);
		}
		if (ours)
			fl_housekeep_kick(h);
	}
	return NULL;
}

static void queue_plain(const char *plain, void *arg)
{
	void **a = arg;
	fl_archiver_enqueue(a[0], *(int *)a[1], plain, 0);
}

/* Finishes archiving a previous run left undone: only segments the session's checkpoint covers. */
static void recover_root(struct fl_housekeep *h)
{
	int fd = openat(h->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		if (fl_id_check(e->d_name) < 0)
			continue;
		int sd = openat(h->root_fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sd < 0)
			continue;
		struct fl_ckpt ck;
		/* segments at or past the checkpoint's counter were rotated after it: the sink undoes those */
		uint64_t skip_from = fl_ckpt_load(sd, &ck) == 0 ? ck.sink.next_segment : 0;
		void *a[2] = {h->arch, &sd};
		fl_archive_recover(sd, skip_from, queue_plain, a);
		close(sd);
	}
	closedir(d);
}

int fl_housekeep_start(struct fl_housekeep **out, const struct fl_config *cfg)
{
	struct fl_housekeep *h = calloc(1, sizeof *h);
	if (!h)
		return -ENOMEM;
	char why[512];
	h->root_fd = fl_sink_open_root(cfg->root, why, sizeof why);
	if (h->root_fd < 0) {
		int rc = h->root_fd;
		fl_drain_log("%s", why);
		free(h);
		return rc;
	}
	snprintf(h->shm_prefix, sizeof h->shm_prefix, "%s", cfg->shm_prefix);
	fl_retention_policy_from_config(&h->policy, cfg);
	h->inotify_fd = -1;
	h->stop_fd = -1;
	h->period_ns = FL_HOUSEKEEP_PERIOD_S * 1000000000ll;
	const char *iv = getenv("FUGUE_GC_INTERVAL");
	uint64_t s;
	if (iv && fl_parse_duration(iv, &s) == 0 && s > 0)
		h->period_ns = (int64_t)s * 1000000000ll;
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	int rc = fl_archiver_start(&h->arch, on_archived, h);
	if (rc < 0)
		goto fail;
	recover_root(h);
	fl_sink_set_rotation(cfg->max_file_size, h->arch);
	rc = -pthread_create(&h->thread, NULL, housekeep_main, h);
	if (rc < 0) {
		fl_sink_set_rotation(cfg->max_file_size, NULL);
		fl_archiver_stop(h->arch, 0);
		goto fail;
	}
	/* optional: without it, ended sessions are noticed at the next timer tick */
	h->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	h->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (h->inotify_fd >= 0 && (h->stop_fd < 0 || inotify_add_watch(h->inotify_fd, FL_SHM_DIR, IN_DELETE) < 0 ||
				   pthread_create(&h->watcher, NULL, watch_main, h) != 0)) {
		close(h->inotify_fd);
		h->inotify_fd = -1;
	}
	*out = h;
	return 0;
fail:
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	close(h->root_fd);
	free(h);
	return rc;
}

struct fl_archiver *fl_housekeep_archiver(struct fl_housekeep *h)
{
	return h ? h->arch : NULL;
}

void fl_housekeep_reconfigure(struct fl_housekeep *h, const struct fl_config *cfg)
{
	pthread_mutex_lock(&h->mu);
	fl_retention_policy_from_config(&h->policy, cfg);
	h->kicked = 1;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	fl_sink_set_rotation(cfg->max_file_size, h->arch);
}

void fl_housekeep_kick(struct fl_housekeep *h)
{
	pthread_mutex_lock(&h->mu);
	h->kicked = 1;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

void fl_housekeep_stop(struct fl_housekeep *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->mu);
	h->stop = 1;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->thread, NULL);
	if (h->inotify_fd >= 0) {
		eventfd_write(h->stop_fd, 1); /* cannot fail on a fresh counter */
		pthread_join(h->watcher, NULL);
		close(h->inotify_fd);
	}
	if (h->stop_fd >= 0)
		close(h->stop_fd);
	/* sinks opened from now on rotate but leave their segments plain for the next start */
	uint64_t max = 0;
	fl_sink_get_rotation(&max, NULL);
	fl_sink_set_rotation(max, NULL);
	fl_archiver_stop(h->arch, 1);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cv);
	close(h->root_fd);
	free(h);
}
