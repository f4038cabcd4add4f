/* Test shim (LD_PRELOAD): reads of an unlinked regular file, such as popfetch's spool, return at most 4096 bytes per
 * call, as FUSE (direct_io), 9p and network filesystems may: POSIX allows a short count anywhere before the end. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

static size_t limited(int fd, size_t count) {
    struct stat st;
    if (count > 4096 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 0) return 4096;
    return count;
}

ssize_t pread(int fd, void *buf, size_t count, off_t offset) {
    static ssize_t (*next)(int, void *, size_t, off_t);
    if (!next) next = (ssize_t (*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread");
    return next(fd, buf, limited(fd, count), offset);
}

ssize_t pread64(int fd, void *buf, size_t count, off_t offset) {
    static ssize_t (*next)(int, void *, size_t, off_t);
    if (!next) next = (ssize_t (*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread64");
    return next(fd, buf, limited(fd, count), offset);
}

ssize_t read(int fd, void *buf, size_t count) {
    static ssize_t (*next)(int, void *, size_t);
    if (!next) next = (ssize_t (*)(int, void *, size_t))dlsym(RTLD_NEXT, "read");
    return next(fd, buf, limited(fd, count));
}
