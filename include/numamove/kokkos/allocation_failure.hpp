// numamove/kokkos/allocation_failure.hpp: what numamove::kokkos::NumaSpace throws when it
// cannot give memory. Needs no Kokkos; reached through numamove/kokkos.hpp.
#pragma once
#include "../detail/public_header_begin.hpp"

#include <cstddef>
#include <new>
#include <string>
#include <system_error>

namespace numamove::kokkos {

/// What NumaSpace throws when it cannot give memory: a std::bad_alloc, as Kokkos users catch
/// for a View that does not fit, with the errno that says why (ENOMEM from mmap, or the error
/// of applying the placement: mbind's errno, EHOSTUNREACH where mbind is refused and a node has
/// no CPU this process may run on).
class allocation_failure : public std::bad_alloc {
 public:
  allocation_failure(int error, const std::string& label, std::size_t bytes)
      : code_(error, std::generic_category()),
        what_("numamove::kokkos::NumaSpace: cannot allocate " + std::to_string(bytes) +
              " bytes for \"" + label + "\": " + code_.message()) {}
  const char* what() const noexcept override { return what_.c_str(); }
  const std::error_code& code() const noexcept { return code_; }

 private:
  std::error_code code_;
  std::string what_;
};

}  // namespace numamove::kokkos

#include "../detail/public_header_end.hpp"
