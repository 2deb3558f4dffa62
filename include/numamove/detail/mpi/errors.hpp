// MPI's error codes as std::error_code, and the check that MPI is running.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/mpi/errors.hpp is internal: include a public numamove header"
#endif

#include <mpi.h>

#include <stdexcept>
#include <string>
#include <system_error>

namespace numamove::detail::mpi {

/// The category of MPI error codes: messages come from MPI_Error_string.
class mpi_error_category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "mpi"; }
  std::string message(int code) const override {
    char text[MPI_MAX_ERROR_STRING] = {};
    int length = 0;
    if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
      return "MPI error " + std::to_string(code);
    return std::string(text, static_cast<std::size_t>(length));
  }
};

inline const std::error_category& category() noexcept {
  static const mpi_error_category instance;
  return instance;
}

inline std::error_code mpi_error(int code) noexcept {
  return code == MPI_SUCCESS ? std::error_code() : std::error_code(code, category());
}

/// Throws std::system_error in the MPI category when `code` is not MPI_SUCCESS.
inline void check(int code, const char* what) {
  if (code != MPI_SUCCESS) throw std::system_error(mpi_error(code), what);
}

/// Throws std::logic_error, naming `function`, before MPI_Init and after MPI_Finalize.
inline void require_running(const char* function) {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized) throw std::logic_error(std::string(function) + ": called before MPI_Init");
  if (finalized) throw std::logic_error(std::string(function) + ": called after MPI_Finalize");
}

}  // namespace numamove::detail::mpi
