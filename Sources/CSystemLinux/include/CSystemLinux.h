// Linux interfaces Swift's Glibc module leaves out (they sit behind headers or feature macros it does not map, or are
// variadic): epoll, pipe2 and pidfd_open, for SystemSupport's ChildWaiter, which waits on the pidfds of every running
// child in one thread; splice, to fill an MDA's input pipe from its spool file without copying.
#ifndef C_SYSTEM_LINUX_H
#define C_SYSTEM_LINUX_H

#include <sys/epoll.h>
#include <sys/types.h>

/// pidfd_open(2) through syscall(2), so that it works with any glibc (the wrapper came in 2.36); -1 with errno
/// ENOSYS on a kernel before 5.3. The descriptor is close-on-exec.
int c_system_pidfd_open(pid_t pid);

/// pipe2(2) with O_CLOEXEC | O_NONBLOCK on both ends.
int c_system_pipe_cloexec_nonblock(int fds[2]);

/// pipe2(2) with O_CLOEXEC on both ends (blocking: the read end becomes a child's standard input).
int c_system_pipe_cloexec(int fds[2]);

/// splice(2) of up to `length` bytes from the file `fd` at `*offset` (advanced by what moved) into the pipe
/// `pipe_write`, without blocking (SPLICE_F_NONBLOCK). The pipe takes references to the file's pages instead of a
/// copy; the caller never writes the file again.
ssize_t c_system_splice_to_pipe(int fd, off_t *offset, int pipe_write, size_t length);

#endif
