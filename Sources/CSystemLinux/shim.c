#define _GNU_SOURCE
#include "CSystemLinux.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

int c_system_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int c_system_pipe_cloexec_nonblock(int fds[2]) {
    return pipe2(fds, O_CLOEXEC | O_NONBLOCK);
}

int c_system_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

ssize_t c_system_splice_to_pipe(int fd, off_t *offset, int pipe_write, size_t length) {
    loff_t position = *offset;
    ssize_t n = splice(fd, &position, pipe_write, NULL, length, SPLICE_F_NONBLOCK);
    if (n > 0) {
        *offset = (off_t)position;
    }
    return n;
}
