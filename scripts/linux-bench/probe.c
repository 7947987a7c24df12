/* The Linux side of `./x bench --vs-linux`: /init of an initramfs, run by
 * Debian's kernel under the same QEMU and instruction counter as
 * tristack's `bench` (-icount shift=0,sleep=off: the TSC counts
 * instructions). Each operation is timed as tristack's user programs time
 * theirs (user-programs/src/lib.rs, `bench_row`): RDTSC before and after
 * one operation, less the cheapest empty measurement, 2000 samples, min
 * and median. Prints `linux: OPERATION MIN MEDIAN` lines, then powers off.
 * Static, against glibc: `gcc -O2 -static -pthread`. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <x86intrin.h>

#define SAMPLES 2000

static uint64_t samples[SAMPLES];
static volatile int run_partner = 1;

static int cmp(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void row(const char *what) {
    uint64_t empty = UINT64_MAX;
    for (int i = 0; i < 64; i++) {
        uint64_t t0 = __rdtsc();
        uint64_t d = __rdtsc() - t0;
        if (d < empty) empty = d;
    }
    for (int i = 0; i < SAMPLES; i++) samples[i] = samples[i] > empty ? samples[i] - empty : 0;
    qsort(samples, SAMPLES, sizeof samples[0], cmp);
    printf("linux: %s %llu %llu\n", what, (unsigned long long)samples[0],
           (unsigned long long)samples[SAMPLES / 2]);
    fflush(stdout);
}

static void *partner(void *arg) {
    (void)arg;
    while (run_partner) sched_yield();
    return NULL;
}

static void *nothing(void *arg) { return arg; }

int main(void) {
    /* PID 1 of an initramfs without /dev: the console comes from devtmpfs. */
    mkdir("/dev", 0755);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    int fd = open("/dev/console", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    printf("linux: probe started\n");

    for (int i = 0; i < SAMPLES; i++) {
        uint64_t t0 = __rdtsc();
        syscall(SYS_getpid); /* the raw syscall: no libc caching */
        samples[i] = __rdtsc() - t0;
    }
    row("null syscall (getpid)");

    pthread_t t;
    if (pthread_create(&t, NULL, partner, NULL) == 0) {
        sched_yield(); /* let the partner reach its loop */
        for (int i = 0; i < SAMPLES; i++) {
            uint64_t t0 = __rdtsc();
            sched_yield();
            samples[i] = __rdtsc() - t0;
        }
        row("yield round trip (2 threads, sched_yield)");
        run_partner = 0;
        pthread_join(t, NULL);
    }

    for (int i = 0; i < SAMPLES; i++) {
        uint64_t t0 = __rdtsc();
        pthread_t c;
        if (pthread_create(&c, NULL, nothing, NULL) == 0) pthread_join(c, NULL);
        samples[i] = __rdtsc() - t0;
    }
    row("thread create + join (pthread)");

    printf("linux: done\n");
    fflush(stdout);
    sync();
    reboot(RB_POWER_OFF);
    return 0;
}
