// Why io_uring is or is not usable here; shared by the readiness backend
// (backend_uring.cc) and the completion engine (ring.cc).
#pragma once
#include <string>

namespace iomux {
// true when a ring can be set up; otherwise false and a human reason.
bool UringAvailable(std::string* reason);
// Turns a failed io_uring_setup into a reason (reads kernel.io_uring_disabled).
std::string UringSetupReason(int neg_errno);
}  // namespace iomux
