// Errors of the communication layer. A mismatch between ranks that the user can fix (config, parameter
// shapes) is a common::InputError; DistError is a failure of the collective machinery itself (a backend
// call failed, ranks diverged), and CollectiveTimeout a collective that did not finish in dist.timeout_s.
#pragma once

#include <stdexcept>
#include <string>

namespace ijepa::dist {

class DistError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The message names the operation, its sequence number and the ranks that have not arrived.
class CollectiveTimeout : public DistError {
 public:
  using DistError::DistError;
};

}  // namespace ijepa::dist
