// Linux interfaces Swift's Glibc module leaves out (they sit behind headers it does not map): epoll, for
// SystemSupport's ChildWaiter, which waits on the pidfds of every running child in one thread.
#ifndef C_SYSTEM_LINUX_H
#define C_SYSTEM_LINUX_H

#include <sys/epoll.h>

#endif
