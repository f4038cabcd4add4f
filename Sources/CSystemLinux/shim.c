// Nothing to compile: the target only exposes the headers in include/ to Swift.
#include "CSystemLinux.h"
