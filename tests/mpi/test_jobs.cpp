// The driver's cases: each starts a real MPI job with mpirun and checks its exit status and what
// its ranks printed. The ranks check placement themselves with the kernel's query (the
// [ranks] cases of this binary, or the test apps' verify.cpp); the driver also reads the hooks'
// own lines. In the QEMU guests (tests/vm, run-guest.sh --mpi) the same cases run on 2 and 4
// NUMA nodes, where the [multinode] rank cases must not skip.
#include <unistd.h>

#include <cstdlib>

#include <string>
#include <vector>

#include <numamove/mpi.hpp>

#include "mpi_support.hpp"
#include "multinode/guest_support.hpp"

namespace {

using numamove_test::job_ranks;
using numamove_test::mpirun;
using numamove_test::run_job;
using numamove_test::test_file;

/// This binary (in the guests it is /numamove_tests).
std::string self() {
  if (const char* path = std::getenv("NUMAMOVE_MPI_TESTS")) return path;
  char exe[4096] = {};
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  return n > 0 ? std::string(exe, static_cast<std::size_t>(n)) : std::string("numamove_mpi_tests");
}

/// Skips a Fortran case, saying why, where mpif90 was missing at configure time.
#define NUMAMOVE_NEEDS_FORTRAN()                                    \
  do {                                                              \
    if (const char* why = std::getenv("NUMAMOVE_MPI_NO_FORTRAN")) { \
      WARN("SKIPPED: " << why);                                     \
      return;                                                       \
    }                                                               \
  } while (false)
std::string preload() {
  return test_file("NUMAMOVE_MPI_PRELOAD", "libnumamove_mpi_preload.so");
}

/// Runs `argv` and checks that the job passed: exit status 0, and each of the `ranks` ranks
/// printed `per_rank` once.
numamove_test::job_result job(const std::vector<std::string>& argv, int ranks,
                              const std::string& per_rank) {
  const numamove_test::job_result r = run_job(argv);
  INFO("$ " << numamove_test::shown(argv) << "\n" << r.output);
  CHECK_FALSE(r.timed_out);
  CHECK(r.status == 0);
  CHECK(r.count(per_rank) == static_cast<std::size_t>(ranks));
  return r;
}

/// The environment of a job through the hooks: NUMAMOVE_* for the hooks, NUMAMOVE_TEST_* for
/// the apps' own checks, LD_PRELOAD when preloading.
std::vector<std::string> hook_environment(const std::string& policy, const std::string& expect,
                                          std::vector<std::string> more = {}) {
  more.push_back("NUMAMOVE_MPI_POLICY=" + policy);
  more.push_back("NUMAMOVE_TEST_EXPECT=" + expect);
  more.push_back("NUMAMOVE_MPI_VERBOSE=1");
  return more;
}

std::vector<std::string> with(std::vector<std::string> line, const std::vector<std::string>& tail) {
  line.insert(line.end(), tail.begin(), tail.end());
  return line;
}

}  // namespace

TEST_CASE("before MPI_Init every call throws std::logic_error", "[jobs]") {
  // The driver itself never initializes MPI.
  CHECK_THROWS_AS(numamove::mpi::place_rank(), std::logic_error);
  CHECK_THROWS_AS(numamove::mpi::rank_affinity(), std::logic_error);
  CHECK_THROWS_AS(numamove::mpi::follow_rank(), std::logic_error);
  CHECK_THROWS_AS(numamove::mpi::place_window_segments(MPI_WIN_NULL), std::logic_error);
  try {
    numamove::mpi::gather_locality();
  } catch (const std::logic_error& e) {
    CHECK(std::string(e.what()) == "numamove::mpi::gather_locality: called before MPI_Init");
  }
}

TEST_CASE("the API under mpirun: ranks bound by the launcher", "[jobs]") {
  const int ranks = job_ranks();
  job(with(mpirun(ranks, {}),
           {self(), "--ranks", "--use-colour", "no", "--durations", "yes", "[ranks]"}),
      ranks, "All tests passed");
}

TEST_CASE("the API under mpirun: unbound ranks", "[jobs]") {
  const int ranks = job_ranks();
  job(with(mpirun(ranks, {}, {"--bind-to", "none"}),
           {self(), "--ranks", "--use-colour", "no", "--durations", "yes", "[ranks]"}),
      ranks, "All tests passed");
}

TEST_CASE("hooks linked into an unmodified C++ program: local, the report at MPI_Finalize",
          "[jobs][linked-cpp]") {
  const int ranks = job_ranks();
  const auto r =
      job(with(mpirun(ranks, hook_environment("local", "local", {"NUMAMOVE_MPI_REPORT=stdout"})),
               {test_file("NUMAMOVE_MPI_APP_HOOKED", "mpi_app_hooked")}),
          ranks, "OK");
  INFO(r.output);
  CHECK(r.count("via kernel") == static_cast<std::size_t>(ranks));
  CHECK(r.count("numamove-mpi: locality at MPI_Finalize (policy local, bind)") == 1);
  CHECK(r.count("numamove-mpi: no problems") == 1);
  CHECK(r.count("FAIL") == 0);
}

TEST_CASE("hooks preloaded into an unmodified C++ program: spread pins unbound ranks",
          "[jobs][preloaded-cpp]") {
  const int ranks = job_ranks();
  const auto r =
      job(with(mpirun(ranks,
                      hook_environment("spread", "spread",
                                       {"NUMAMOVE_MPI_PIN=yes", "LD_PRELOAD=" + preload()}),
                      {"--bind-to", "none"}),
               {test_file("NUMAMOVE_MPI_APP", "mpi_app")}),
          ranks, "OK");
  INFO(r.output);
  CHECK(r.count("policy spread on node") ==
        static_cast<std::size_t>(ranks));  // one line per rank; a note may follow
  CHECK(r.count("FAIL") == 0);
}

TEST_CASE("hooks linked into an unmodified Fortran program: local, preferred",
          "[jobs][linked-fortran]") {
  NUMAMOVE_NEEDS_FORTRAN();
  const int ranks = job_ranks();
  const auto r = job(with(mpirun(ranks, hook_environment("local", "local",
                                                         {"NUMAMOVE_MPI_MODE=preferred",
                                                          "NUMAMOVE_TEST_MODE=preferred"})),
                          {test_file("NUMAMOVE_MPI_FORTRAN_HOOKED", "mpi_fortran_hooked")}),
                     ranks, "OK");
  INFO(r.output);
  CHECK(r.count("policy local on node") == static_cast<std::size_t>(ranks));
  CHECK(r.count("FAIL") == 0);
}

TEST_CASE("hooks preloaded into an unmodified Fortran program: interleave, unbound ranks",
          "[jobs][preloaded-fortran]") {
  NUMAMOVE_NEEDS_FORTRAN();
  const int ranks = job_ranks();
  const auto r = job(
      with(mpirun(ranks, hook_environment("interleave", "interleave", {"LD_PRELOAD=" + preload()}),
                  {"--bind-to", "none"}),
           {test_file("NUMAMOVE_MPI_FORTRAN", "mpi_fortran")}),
      ranks, "OK");
  INFO(r.output);
  CHECK(r.count("policy interleave on node") == static_cast<std::size_t>(ranks));
  CHECK(r.count("FAIL") == 0);
}

TEST_CASE("a bad policy value: the documented message once, the job runs unchanged",
          "[jobs][bad-value]") {
  const int ranks = job_ranks();
  const auto r =
      job(with(mpirun(ranks, hook_environment("sideways", "none", {"LD_PRELOAD=" + preload()})),
               {test_file("NUMAMOVE_MPI_APP", "mpi_app")}),
          ranks, "OK");
  INFO(r.output);
  CHECK(r.count("numamove-mpi: NUMAMOVE_MPI_POLICY=sideways is not one of local, none, spread, "
                "interleave; "
                "the hooks do nothing") == 1);
  CHECK(r.count("via kernel") == 0);
}

TEST_CASE(
    "hooks under the Docker-like seccomp filter take the userspace path and the job completes",
    "[jobs][seccomp]") {
  const int ranks = job_ranks();
  // Docker also refuses process_vm_readv, which vader's single copy uses: Docker users turn it off.
  const auto r =
      job(with(mpirun(ranks, hook_environment("local", "local", {"LD_PRELOAD=" + preload()}),
                      {"--mca", "btl_vader_single_copy_mechanism", "none"}),
               {test_file("NUMAMOVE_MPI_SECCOMP_EXEC", "mpi_seccomp_exec"),
                test_file("NUMAMOVE_MPI_APP", "mpi_app")}),
          ranks, "OK");
  INFO(r.output);
  CHECK(r.count("via userspace") == static_cast<std::size_t>(ranks));
  CHECK(r.count("(numa_maps)") > 0);  // the filter refuses the apps' own move_pages query too
  CHECK(r.count("FAIL") == 0);
}

TEST_CASE("place_rank in a cpuset that leaves out some ranks' nodes: EACCES there",
          "[jobs][multinode][cpuset]") {
  const std::vector<int> nodes = numamove::topology::system().nodes();
  const std::string why = numamove_test::cpuset_unavailable();
  NUMAMOVE_SKIP_UNLESS(nodes.size() >= 2, "cpu-memory-nodes", "needs two nodes");
  NUMAMOVE_SKIP_UNLESS(why.empty(), "cpuset", why);
  numamove_test::cpuset_cgroup cgroup(std::to_string(nodes.front()));
  REQUIRE(cgroup.error().empty());
  const int ranks = job_ranks();
  const std::vector<std::string> argv =
      with(mpirun(ranks, {}), {self(), "--ranks", "--use-colour", "no", "[ranks-cpuset]"});
  const numamove_test::job_result r = run_job(argv, std::chrono::seconds(240), cgroup.path());
  INFO("$ " << numamove_test::shown(argv) << "\n" << r.output);
  CHECK(r.status == 0);
  CHECK(r.count("All tests passed") == static_cast<std::size_t>(ranks));
}
