/* SPDX-License-Identifier: MIT */
/*
 * A small pool of worker threads for blocking work (fsync, file writes),
 * so that a slow disk never stalls the event loop. A job's `work` runs on
 * a worker; its `done` runs on the thread calling workq_complete(), which
 * is woken through an eventfd.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/base.h"

struct workq_job {
	struct workq_job *next;
	workq_fn *work, *done;
	void *arg;
};

struct workq {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct workq_job *todo_head, **todo_tail;
	struct workq_job *done_head, **done_tail;
	pthread_t *threads;
	unsigned nthreads;
	atomic_uint pending;  /* submitted, done not yet run */
	bool stopping;
	int efd;
};

static void *
workq_thread(void *arg)
{
	struct workq *wq = arg;
	struct workq_job *job;

	pthread_mutex_lock(&wq->lock);
	for (;;) {
		while (wq->todo_head == NULL && !wq->stopping)
			pthread_cond_wait(&wq->cond, &wq->lock);
		if (wq->todo_head == NULL)
			break;
		job = wq->todo_head;
		wq->todo_head = job->next;
		if (wq->todo_head == NULL)
			wq->todo_tail = &wq->todo_head;
		pthread_mutex_unlock(&wq->lock);

		if (job->work != NULL)
			job->work(job->arg);

		pthread_mutex_lock(&wq->lock);
		job->next = NULL;
		*wq->done_tail = job;
		wq->done_tail = &job->next;
		uint64_t one = 1;
		(void)!write(wq->efd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&wq->lock);
	return NULL;
}

struct workq *
workq_new(unsigned nthreads)
{
	struct workq *wq = xcalloc(1, sizeof(*wq));

	if (nthreads == 0)
		nthreads = 1;
	pthread_mutex_init(&wq->lock, NULL);
	pthread_cond_init(&wq->cond, NULL);
	wq->todo_tail = &wq->todo_head;
	wq->done_tail = &wq->done_head;
	wq->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (wq->efd < 0)
		log_fatal("workq event=eventfd error=\"%s\"", strerror(errno));
	wq->threads = xcalloc(nthreads, sizeof(*wq->threads));
	wq->nthreads = nthreads;
	for (unsigned i = 0; i < nthreads; i++) {
		if (pthread_create(&wq->threads[i], NULL, workq_thread, wq) != 0)
			log_fatal("workq event=thread_create failed");
	}
	return wq;
}

void
workq_submit(struct workq *wq, workq_fn *work, workq_fn *done, void *arg)
{
	struct workq_job *job = xmalloc(sizeof(*job));

	job->next = NULL;
	job->work = work;
	job->done = done;
	job->arg = arg;
	pthread_mutex_lock(&wq->lock);
	*wq->todo_tail = job;
	wq->todo_tail = &job->next;
	atomic_fetch_add(&wq->pending, 1);
	pthread_cond_signal(&wq->cond);
	pthread_mutex_unlock(&wq->lock);
}

int
workq_fd(const struct workq *wq)
{
	return wq->efd;
}

unsigned
workq_complete(struct workq *wq)
{
	struct workq_job *list, *job;
	unsigned n = 0;
	uint64_t cnt;

	(void)!read(wq->efd, &cnt, sizeof(cnt));
	pthread_mutex_lock(&wq->lock);
	list = wq->done_head;
	wq->done_head = NULL;
	wq->done_tail = &wq->done_head;
	pthread_mutex_unlock(&wq->lock);

	while ((job = list) != NULL) {
		list = job->next;
		if (job->done != NULL)
			job->done(job->arg);
		free(job);
		n++;
		atomic_fetch_sub(&wq->pending, 1);
	}
	return n;
}

unsigned
workq_pending(const struct workq *wq)
{
	return atomic_load(&wq->pending);
}

void
workq_free(struct workq **wqp)
{
	struct workq *wq = *wqp;

	if (wq == NULL)
		return;
	*wqp = NULL;
	/* done callbacks may submit more work: drain until nothing is left */
	while (workq_pending(wq) > 0) {
		struct pollfd pfd = { .fd = wq->efd, .events = POLLIN };
		(void)poll(&pfd, 1, 100);
		workq_complete(wq);
	}
	pthread_mutex_lock(&wq->lock);
	wq->stopping = true;
	pthread_cond_broadcast(&wq->cond);
	pthread_mutex_unlock(&wq->lock);
	for (unsigned i = 0; i < wq->nthreads; i++)
		pthread_join(wq->threads[i], NULL);
	close(wq->efd);
	pthread_cond_destroy(&wq->cond);
	pthread_mutex_destroy(&wq->lock);
	free(wq->threads);
	free(wq);
}
