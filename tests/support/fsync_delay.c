/*
 * An LD_PRELOAD shim that makes every flush as slow as an SD card's:
 * fsync, fdatasync and sync_file_range sleep PINCLAW_FSYNC_DELAY_MS
 * milliseconds, then do the real call. PINCLAW_FSYNC_COUNT_FILE, when set,
 * names a file that gets one byte appended per delayed flush (so a test
 * can count fsyncs without trusting the process under test).
 *
 *   cc -shared -fPIC -O2 -o fsync_delay.so fsync_delay.c -ldl
 *   LD_PRELOAD=./fsync_delay.so PINCLAW_FSYNC_DELAY_MS=50 pinclaw
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static void delay(void) {
    const char *ms = getenv("PINCLAW_FSYNC_DELAY_MS");
    long n = ms ? strtol(ms, NULL, 10) : 0;
    if (n > 0) {
        struct timespec ts = {n / 1000, (n % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0) {
        }
    }
    const char *count = getenv("PINCLAW_FSYNC_COUNT_FILE");
    if (count && *count) {
        int fd = open(count, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0) {
            ssize_t w = write(fd, "x", 1);
            (void)w;
            close(fd);
        }
    }
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    delay();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    delay();
    return real(fd);
}

int sync_file_range(int fd, off64_t offset, off64_t nbytes, unsigned int flags) {
    static int (*real)(int, off64_t, off64_t, unsigned int);
    if (!real) real = (int (*)(int, off64_t, off64_t, unsigned int))dlsym(RTLD_NEXT, "sync_file_range");
    delay();
    return real(fd, offset, nbytes, flags);
}
