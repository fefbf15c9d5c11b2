/* pool.h — the small thread pool a context owns for the non-BLAS work (norms, RoPE, SiLU·up,
 * residual adds, gather/scatter, weight conversion, attention tiles).
 *
 * n threads including the caller; dk_pool_run(p, n_tasks, fn, arg) runs fn(arg, task, tid) for
 * every task 0..n_tasks-1 (tid in 0..n-1 names the thread, for per-thread scratch) and returns
 * when all are done. The caller takes tasks too and waits only for tasks in progress, never for
 * a worker that has not woken yet (on a busy machine a descheduled worker would otherwise stall
 * every job by a time slice). A worker that finished a job polls for the next one for up to
 * DK_POOL_SPIN_NS (decode runs ~8 jobs per layer microseconds apart), then sleeps on a condition
 * variable (no spinning that would steal a core from OpenBLAS between prefill jobs); a caller
 * whose workers still hold tasks polls for them as long before it sleeps. Work is split by whole
 * rows (or by elements at multiples of 8 for elementwise kernels), so a row's result never depends
 * on the split or the thread count. */
#ifndef DK_POOL_H
#define DK_POOL_H
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

typedef void (*dk_task_fn)(void *arg, int task, int tid);

typedef struct dk_pool dk_pool;
typedef struct {
    dk_pool *p;
    int tid;
} dk_pool_worker_arg;

enum { DK_POOL_SPIN_NS = 50000 };

struct dk_pool {
    int n;                  /* threads including the caller; 1 = no workers */
    pthread_t *th;          /* (n-1) workers */
    dk_pool_worker_arg *wa; /* (n-1) their arguments, tid 1..n-1 */
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    atomic_ulong gen; /* incremented per job (written under mu) */
    bool quit;
    dk_task_fn fn; /* the current job (written under mu before gen changes) */
    void *arg;
    int n_tasks;
    atomic_uint_least64_t ticket; /* (job generation & 0xffffffff) << 32 | next task to hand out */
    atomic_int finished;          /* tasks of the current job completed */
};

/* Starts n-1 workers; on any failure the pool has fewer threads (at least the caller). */
void dk_pool_init(dk_pool *p, int n);
void dk_pool_free(dk_pool *p);
void dk_pool_run(dk_pool *p, int n_tasks, dk_task_fn fn, void *arg);

/* Tasks for n units of work when a task should hold at least min_units: up to 4 per thread. */
int dk_pool_n_tasks(const dk_pool *p, size_t n, size_t min_units);

/* First unit of task `task` when n units are split into n_tasks contiguous runs. */
static inline size_t dk_task_lo(size_t n, int task, int n_tasks) {
    return n * (size_t)task / (size_t)n_tasks;
}

#endif
