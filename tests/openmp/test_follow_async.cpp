// numamove::openmp::follow_async: the plan made at the call, the moves done on the mover thread
// in one migration with a target per page, reported as migrate() reports a move; and the pure
// step from a plan to that migration.
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <numamove/migrate.hpp>
#include <numamove/openmp.hpp>
#include <numamove/openmp/follow_async.hpp>

#include "support/catch.hpp"
#include "support/futures.hpp"
#include "support/pages.hpp"

namespace {

using numamove::openmp::static_schedule;

using numamove_test::await;
using numamove_test::home;
using numamove_test::mapping;
using numamove_test::page;

numamove::openmp::team_options forced() {
  numamove::openmp::team_options options;
  options.migrate.path = numamove::backend::userspace;
  options.migrate.force = true;
  return options;
}

}  // namespace

TEST_CASE("follow_async moves what follow_threads moves, in one result, keeping the data",
          "[team][async]") {
  mapping m(32);
  for (std::size_t i = 0; i < m.bytes; ++i) m.data[i] = static_cast<char>(i % 251);
  const static_schedule s{32, 2, 0};
  const numamove::migration_result r =
      await(numamove::openmp::follow_async(m.data, m.bytes, s, forced()));
  CHECK(r);
  CHECK(r.used == numamove::backend::userspace);
  CHECK(r.moved == 32);
  CHECK(r.first_page == m.data);
  CHECK(r.status == std::vector<int>(32, home));
  CHECK(r.moved == numamove::openmp::follow_threads(m.data, m.bytes, s, forced()).moved());
  for (std::size_t i = 0; i < m.bytes; ++i)
    if (m.data[i] != static_cast<char>(i % 251)) FAIL("byte " << i << " changed");
}

TEST_CASE("follow_async reports as migrate() does: placed pages stay, untouched pages stay so",
          "[team][async]") {
  mapping m(16);
  std::memset(m.data, 1, 8 * page());
  const numamove::migration_result r =
      await(numamove::openmp::follow_async(m.data, m.bytes, {16, 2, 0}));
  const numamove::migration_result one = numamove::migrate(m.data, m.bytes, home);
  CHECK(r.status == one.status);
  CHECK(r.already_there == 8);
  CHECK(r.not_present == 8);
  CHECK(r.moved == 0);
  CHECK_FALSE(r.error);
}

TEST_CASE("follow_async throws at the call for a schedule that does not fit the data",
          "[team][async]") {
  mapping m(4);
  CHECK_THROWS_AS(numamove::openmp::follow_async(m.data, m.bytes - 1, {2, 2, 0}),
                  std::invalid_argument);
  CHECK_THROWS_AS(numamove::openmp::follow_async(m.data, m.bytes, {4, 0, 0}),
                  std::invalid_argument);
}

TEST_CASE("follow_async's plan to moves: pages in address order, those of no node stranded",
          "[plan][async]") {
  mapping m(6);
  std::memset(m.data, 3, m.bytes);
  numamove::openmp::schedule_plan plan;
  plan.nodes = {home, -1};
  // Thread 0 owns pages 0, 1 and 4; thread 1 (on a node without memory) pages 2, 3 and 5.
  plan.runs = {{{m.at_page(4), 1}, {m.at_page(0), 2}}, {{m.at_page(2), 2}, {m.at_page(5), 1}}};
  const numamove::detail::openmp::follow_moves moves = numamove::detail::openmp::moves_of(plan);
  CHECK(moves.pages == std::vector<void*>{m.at_page(0), m.at_page(1), m.at_page(4)});
  CHECK(moves.targets == std::vector<int>(3, home));
  CHECK(moves.stranded == std::vector<void*>{m.at_page(2), m.at_page(3), m.at_page(5)});

  const numamove::migration_result r = numamove::detail::openmp::follow(moves, {});
  CHECK(r.first_page == m.data);
  CHECK(r.status == std::vector<int>{home, home, -ENODEV, -ENODEV, home, -ENODEV});
  CHECK(r.already_there == 3);
  CHECK(r.failed == 3);
  CHECK_FALSE(r);
}
