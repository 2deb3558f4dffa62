// Kokkos is initialized once for the whole test run (around every case, in the runner's
// process), as an application does; the binary uses tests/support/main.cpp as its main.
#define CATCH_CONFIG_EXTERNAL_INTERFACES
#include <Kokkos_Core.hpp>

#include "support/catch.hpp"

namespace {

#if defined(CATCH_VERSION_MAJOR) && CATCH_VERSION_MAJOR >= 3
using listener_base = Catch::EventListenerBase;
#else
using listener_base = Catch::TestEventListenerBase;
#endif

struct kokkos_session : listener_base {
  using listener_base::listener_base;
  void testRunStarting(const Catch::TestRunInfo&) override { Kokkos::initialize(); }
  void testRunEnded(const Catch::TestRunStats&) override { Kokkos::finalize(); }
};

}  // namespace

CATCH_REGISTER_LISTENER(kokkos_session)
