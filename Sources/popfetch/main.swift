import PopfetchCLI

#if canImport(Glibc)
import Glibc
#endif

let status = await Popfetch.run()
exit(status)
