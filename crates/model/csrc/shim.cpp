// The shim's error channel: the message of the last C++ exception on the calling thread.

#include "shim.h"

namespace fgstp {
thread_local std::string last_error;
}  // namespace fgstp

extern "C" {

const char* fgstp_last_error() { return fgstp::last_error.c_str(); }

}  // extern "C"
