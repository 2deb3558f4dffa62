// numamove/mpi/errors.hpp: MPI's error codes as std::error_code values, in mpi_category(): the
// `error` of numamove::mpi's results and the code of what its calls throw. Reached through
// numamove/mpi.hpp.
#pragma once
#include "../detail/public_header_begin.hpp"

#include <mpi.h>

#include <system_error>

#include "../detail/mpi/errors.hpp"

namespace numamove::mpi {

/// The category of MPI error codes; message() is MPI_Error_string's text.
inline const std::error_category& mpi_category() noexcept {
  return numamove::detail::mpi::category();
}

}  // namespace numamove::mpi

#include "../detail/public_header_end.hpp"
