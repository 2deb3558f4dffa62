// The cases each rank of an MPI job runs (numamove_mpi_tests --ranks "[ranks]", started by the
// [jobs] cases). Every rank runs the same cases in the same order, so the collectives match;
// assertions that could stop a case early come after its last collective. What is checked is
// the kernel's word: a rank's own move_pages query of its pages, get_mempolicy of its threads,
// sched_getaffinity; for a window, the query of a rank that did not place the segment, after it
// has mapped every page.
#include <mpi.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include <numamove/mpi.hpp>

#include "mpi_support.hpp"
#include "multinode/guest_support.hpp"

namespace {

using namespace numamove_test;
namespace mpi = numamove::mpi;

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int world_size() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

/// The calling rank's entry of rank_affinity().
mpi::rank_binding me() {
  for (const mpi::rank_binding& b : mpi::rank_affinity())
    if (b.rank == world_rank()) return b;
  return {};
}

/// Anonymous memory of its own (its pages belong to nothing else).
struct region {
  explicit region(std::size_t pages_) : pages(pages_), bytes(pages_ * page()) {
    data = static_cast<char*>(
        ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  }
  ~region() { ::munmap(data, bytes); }
  region(const region&) = delete;
  region& operator=(const region&) = delete;
  std::size_t pages;
  std::size_t bytes;
  char* data;
};

/// Fills `r` from the calling thread while its policy binds it to `node` (-1: no binding).
void fill_on(region& r, int node, std::uint64_t seed) {
  if (node >= 0) {
    unsigned long mask[16] = {};
    mask[node / 64] |= 1UL << (node % 64);
    ::syscall(SYS_set_mempolicy, mpol_bind, mask, 16 * 64 + 1);
  }
  fill(r.data, r.bytes, seed);
  if (node >= 0) ::syscall(SYS_set_mempolicy, 0, nullptr, 0);
}

/// A node with memory other than `node`, or -1 on a machine with one.
int other_node(int node) {
  for (const int n : numamove::topology::system().nodes())
    if (n != node) return n;
  return -1;
}

std::size_t pages_on(const std::vector<int>& status, int node) {
  return static_cast<std::size_t>(std::count(status.begin(), status.end(), node));
}

/// Every thread back to the default policy, for the next case.
void reset_policy() {
  numamove::detail::mpi::set_policy_everywhere(numamove::detail::mpol_default, {});
}

/// A thread started before the placement (as MPI_Init starts its own): after it, it reports its
/// policy and where a page it first touches lands.
class bystander {
 public:
  bystander()
      : thread_([this] {
          while (!go_.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
          policy_ = policy_of_this_thread();
          region mine(4);
          fill(mine.data, mine.bytes, 7);
          status_ = kernel_query(mine.data, mine.pages);
        }) {}
  ~bystander() {
    if (thread_.joinable()) report();
  }
  bystander(const bystander&) = delete;
  bystander& operator=(const bystander&) = delete;
  void report() {
    go_ = true;
    thread_.join();
  }
  numamove_test::thread_policy policy_;
  std::vector<int> status_;

 private:
  std::atomic<bool> go_{false};
  std::thread thread_;
};

}  // namespace

TEST_CASE("rank_affinity: every rank of this host, from its own affinity mask", "[ranks]") {
  const std::vector<mpi::rank_binding> host = mpi::rank_affinity();
  MPI_Comm shared = MPI_COMM_NULL;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &shared);
  int local_size = 0;
  int local_rank = 0;
  MPI_Comm_size(shared, &local_size);
  MPI_Comm_rank(shared, &local_rank);
  MPI_Comm_free(&shared);
  REQUIRE(host.size() == static_cast<std::size_t>(local_size));
  std::set<int> ranks;
  for (std::size_t i = 0; i < host.size(); ++i) {
    CHECK(host[i].local_rank == static_cast<int>(i));
    ranks.insert(host[i].rank);
  }
  CHECK(ranks.size() == host.size());
  const mpi::rank_binding& mine = host[static_cast<std::size_t>(local_rank)];
  CHECK(mine.rank == world_rank());
  CHECK(mine.cpus == numamove::detail::affinity_of(0));
  const numamove::topology& machine = numamove::topology::system();
  std::set<int> nodes;
  for (const int c : mine.cpus) nodes.insert(machine.node_of_cpu(c));
  if (nodes.size() == 1 && *nodes.begin() >= 0) {
    CHECK(mine.pinned);
    CHECK(mine.node == *nodes.begin());
  } else {
    CHECK_FALSE(mine.pinned);
    CHECK(std::find(mine.cpus.begin(), mine.cpus.end(), mine.cpu) != mine.cpus.end());
  }
  if (!mine.pinned)
    CHECK(mine.node == machine.node_of_cpu(mine.cpu));  // where first touch puts its pages now
}

TEST_CASE("place_rank local: every thread's policy, earlier and later memory on the rank's node",
          "[ranks]") {
  const mpi::rank_binding binding = me();
  const int elsewhere = other_node(binding.node);
  region before(1024);  // 4 MiB touched before the placement, on another node where there is one
  fill_on(before, elsewhere, 1);
  bystander thread;
  mpi::policy_options options;
  options.policy = mpi::policy::local;
  const mpi::rank_placement r = mpi::place_rank(options);
  thread.report();
  region after(256);
  fill(after.data, after.bytes, 2);
  const numamove_test::thread_policy main_policy = policy_of_this_thread();
  reset_policy();
  MPI_Barrier(MPI_COMM_WORLD);

  if (binding.node < 0) {  // a CPU of a node without memory
    CHECK(r.error == std::error_code(ENODEV, std::generic_category()));
    return;
  }
  INFO("rank " << world_rank() << " node " << binding.node << ": " << r.error.message());
  CHECK_FALSE(r.error);
  CHECK(r.mode == mpi::memory_mode::bind);
  CHECK(r.nodes == std::vector<int>{binding.node});
  CHECK(r.threads >= 4);  // this one, the bystander, MPI's own
  CHECK(r.threads_missed == 0);
  CHECK(main_policy.mode == mpol_bind);
  CHECK(main_policy.nodes == std::set<int>{binding.node});
  CHECK(thread.policy_.mode == mpol_bind);
  CHECK(thread.policy_.nodes == std::set<int>{binding.node});
  CHECK(pages_on(thread.status_, binding.node) == thread.status_.size());
  CHECK(pages_on(kernel_query(before.data, before.pages), binding.node) == before.pages);
  CHECK(pages_on(kernel_query(after.data, after.pages), binding.node) == after.pages);
  CHECK(first_mismatch(before.data, before.bytes, 1) == SIZE_MAX);
  CHECK(r.used == numamove::backend::kernel);
  if (elsewhere >= 0) {
    CHECK(r.moved_bytes >= before.bytes);
    CHECK(r.bytes_before.at(elsewhere) >= before.bytes);
  }
  CHECK(r);
}

TEST_CASE("place_rank preferred: MPOL_PREFERRED on the rank's node", "[ranks]") {
  const mpi::rank_binding binding = me();
  mpi::policy_options options;
  options.strict = false;
  const mpi::rank_placement r = mpi::place_rank(options);
  const numamove_test::thread_policy seen = policy_of_this_thread();
  reset_policy();
  MPI_Barrier(MPI_COMM_WORLD);
  if (binding.node < 0) return;
  CHECK_FALSE(r.error);
  CHECK(r.mode == mpi::memory_mode::preferred);
  CHECK(seen.mode == mpol_preferred);
  CHECK(seen.nodes == std::set<int>{binding.node});
}

TEST_CASE("place_rank interleave: pages dealt over the nodes of the rank's CPUs", "[ranks]") {
  const mpi::rank_binding binding = me();
  std::set<int> cpu_nodes;
  for (const int c : binding.cpus)
    if (numamove::topology::system().node_of_cpu(c) >= 0)
      cpu_nodes.insert(numamove::topology::system().node_of_cpu(c));
  mpi::policy_options options;
  options.policy = mpi::policy::interleave;
  const mpi::rank_placement r = mpi::place_rank(options);
  region fresh(64);
  fill(fresh.data, fresh.bytes, 3);
  const numamove_test::thread_policy seen = policy_of_this_thread();
  reset_policy();
  MPI_Barrier(MPI_COMM_WORLD);
  INFO("rank " << world_rank() << " cpus " << to_text(binding.cpus));
  if (cpu_nodes.empty()) {  // CPUs of nodes without memory only (the memoryless guest)
    CHECK(r.error == std::error_code(ENODEV, std::generic_category()));
    CHECK(r.nodes.empty());
    return;
  }
  REQUIRE_FALSE(r.error);
  CHECK(r.mode == mpi::memory_mode::interleave);
  CHECK(std::set<int>(r.nodes.begin(), r.nodes.end()) == cpu_nodes);
  CHECK(seen.mode == mpol_interleave);
  CHECK(seen.nodes == cpu_nodes);
  const std::vector<int> status = kernel_query(fresh.data, fresh.pages);
  std::size_t placed = 0;
  for (const int n : cpu_nodes) {
    CHECK(pages_on(status, n) >= fresh.pages / cpu_nodes.size() - 1);
    placed += pages_on(status, n);
  }
  CHECK(placed == fresh.pages);
}

TEST_CASE(
    "place_rank spread: bound ranks on their node, unbound ranks dealt over the nodes and pinned",
    "[ranks]") {
  const mpi::rank_binding binding = me();
  const std::vector<int> original = binding.cpus;
  mpi::policy_options options;
  options.policy = mpi::policy::spread;
  options.pin_unbound = true;
  const mpi::rank_placement r = mpi::place_rank(options);
  const std::vector<int> cpus_after = numamove::detail::affinity_of(0);
  const int dealt = r.nodes.empty() ? -1 : r.nodes.front();
  const int unbound = binding.pinned ? 0 : 1;
  std::vector<int> all(static_cast<std::size_t>(world_size()));
  std::vector<int> unbound_all(all.size());
  MPI_Allgather(&dealt, 1, MPI_INT, all.data(), 1, MPI_INT, MPI_COMM_WORLD);
  MPI_Allgather(&unbound, 1, MPI_INT, unbound_all.data(), 1, MPI_INT, MPI_COMM_WORLD);
  reset_policy();
  mpi::bind_process(original);
  MPI_Barrier(MPI_COMM_WORLD);
  const numamove::topology& machine = numamove::topology::system();
  if (binding.pinned) {
    CHECK(dealt == binding.node);
    CHECK_FALSE(r.pinned_by_numamove);
    CHECK(cpus_after == original);
    return;
  }
  // The unbound ranks of this host take the nodes in turn: distinct while there are nodes enough.
  std::set<int> dealt_unbound;
  int unbound_ranks = 0;
  for (std::size_t i = 0; i < all.size(); ++i)
    if (unbound_all[i]) {
      dealt_unbound.insert(all[i]);
      ++unbound_ranks;
    }
  CHECK(dealt_unbound.size() ==
        std::min<std::size_t>(static_cast<std::size_t>(unbound_ranks), machine.nodes().size()));
  REQUIRE(dealt >= 0);
  if (!machine.cpus_of(dealt).empty()) {
    CHECK(r.pinned_by_numamove);
    CHECK(cpus_after == machine.cpus_of(dealt));
    CHECK(r.binding.pinned);
    CHECK(r.binding.node == dealt);
  }
}

TEST_CASE("follow_rank: after a rebind, the process's data and policy follow; one array too",
          "[ranks][multinode]") {
  const mpi::rank_binding binding = me();
  const std::vector<int> with_cpus = nodes_with_cpus();
  mpi::place_rank();
  region data(1024);
  fill(data.data, data.bytes, 4);
  const std::vector<int> placed = kernel_query(data.data, data.pages);
  // The next node with CPUs after the rank's own.
  int next = -1;
  for (std::size_t i = 0; i < with_cpus.size(); ++i)
    if (with_cpus[i] == binding.node) next = with_cpus[(i + 1) % with_cpus.size()];
  mpi::rank_placement followed;
  numamove_test::thread_policy seen;
  std::vector<int> after_follow;
  numamove::migration_result back;
  std::vector<int> after_back;
  if (with_cpus.size() >= 2 && next >= 0) {
    CHECK(mpi::bind_process(numamove::topology::system().cpus_of(next)) == 0);
    followed = mpi::follow_rank();
    seen = policy_of_this_thread();
    after_follow = kernel_query(data.data, data.pages);
    mpi::bind_process(binding.cpus);
    back = mpi::follow_rank(data.data, data.bytes);
    after_back = kernel_query(data.data, data.pages);
    mpi::follow_rank();
  }
  reset_policy();
  MPI_Barrier(MPI_COMM_WORLD);
  NUMAMOVE_SKIP_UNLESS(with_cpus.size() >= 2, "cpu-memory-nodes",
                       "needs two nodes with memory and CPUs");
  if (!binding.pinned || binding.node < 0) return;  // an unbound rank has no node to leave
  INFO("rank " << world_rank() << " from node " << binding.node << " to " << next);
  CHECK(pages_on(placed, binding.node) == data.pages);
  CHECK_FALSE(followed.error);
  CHECK(followed.nodes == std::vector<int>{next});
  CHECK(followed.binding.node == next);
  CHECK(followed.moved_bytes >= data.bytes);
  CHECK(seen.mode == mpol_bind);
  CHECK(seen.nodes == std::set<int>{next});
  CHECK(pages_on(after_follow, next) == data.pages);
  CHECK(back);
  CHECK(back.moved == data.pages);
  CHECK(pages_on(after_back, binding.node) == data.pages);
  CHECK(first_mismatch(data.data, data.bytes, 4) == SIZE_MAX);
}

namespace {

/// A shared window of `bytes` per rank on this host's ranks, written whole by rank 0 (so first
/// touch put every page on rank 0's node) before anyone places it.
struct written_window {
  explicit written_window(std::size_t bytes_per_rank) {
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &comm);
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &ranks);
    void* base = nullptr;
    MPI_Win_allocate_shared(static_cast<MPI_Aint>(bytes_per_rank), 1, MPI_INFO_NULL, comm, &base,
                            &win);
    numamove::detail::mpi::query_segments(win, ranks, parts);
    if (rank == 0)
      for (const auto& s : parts) std::memset(reinterpret_cast<void*>(s.base), 0x5a, s.bytes);
    MPI_Barrier(comm);
  }
  ~written_window() {
    MPI_Win_free(&win);
    MPI_Comm_free(&comm);
  }
  written_window(const written_window&) = delete;
  written_window& operator=(const written_window&) = delete;

  /// The whole pages of rank r's segment, mapped here (read) and queried by the kernel.
  std::vector<int> whole_pages_of(int r) const {
    const numamove::detail::mpi::segment& s = parts[static_cast<std::size_t>(r)];
    const std::uintptr_t first = (s.base + page() - 1) / page() * page();
    const std::uintptr_t end = (s.base + s.bytes) / page() * page();
    if (end <= first) return {};
    for (std::uintptr_t p = first; p < end; p += page()) (void)*reinterpret_cast<volatile char*>(p);
    return kernel_query(reinterpret_cast<void*>(first), (end - first) / page());
  }

  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Win win = MPI_WIN_NULL;
  int rank = 0;
  int ranks = 0;
  std::vector<numamove::detail::mpi::segment> parts;
};

}  // namespace

TEST_CASE("place_window_segments: each rank's segment on its node, although rank 0 wrote it all",
          "[ranks]") {
  const std::size_t bytes = 3 * page() + 100;  // segments start mid-page: neighbours share pages
  written_window w(bytes);
  const mpi::window_placement p = mpi::place_window_segments(w.win);
  std::vector<int> nodes(static_cast<std::size_t>(w.ranks));
  MPI_Allgather(&p.node, 1, MPI_INT, nodes.data(), 1, MPI_INT, w.comm);
  MPI_Barrier(w.comm);
  const int next = (w.rank + 1) % w.ranks;
  const std::vector<int> theirs = w.whole_pages_of(next);
  bool intact = true;
  const auto& mine = w.parts[static_cast<std::size_t>(w.rank)];
  for (std::size_t i = 0; i < mine.bytes; ++i)
    intact = intact && reinterpret_cast<const char*>(mine.base)[i] == 0x5a;
  MPI_Barrier(w.comm);

  INFO("rank " << w.rank << " node " << p.node << ": " << p.error.message() << "; rank " << next
               << " on node " << nodes[static_cast<std::size_t>(next)] << ", its pages "
               << to_text(theirs));
  CHECK(intact);
  if (nodes[static_cast<std::size_t>(next)] >= 0) {
    CHECK_FALSE(theirs.empty());
    CHECK(pages_on(theirs, nodes[static_cast<std::size_t>(next)]) == theirs.size());
  }
  if (p.node < 0) {  // a CPU of a node without memory (the memoryless guest): nothing placed
    CHECK(p.error == std::error_code(ENODEV, std::generic_category()));
    CHECK(p.pages == 0);
    return;
  }
  CHECK_FALSE(p.error);
  CHECK(p.rank == w.rank);
  CHECK(p.bytes == bytes);
  CHECK(p.move_all_used == numamove::detail::has_cap_sys_nice());
  CHECK(p.needs_move_all == 0);
  CHECK(p.failed == 0);
  const std::uintptr_t first = mine.base / page() * page();
  const std::size_t spanned = (mine.base + mine.bytes - first + page() - 1) / page();
  CHECK(p.pages + p.boundary_pages.size() == spanned);
  CHECK(p.pages >= 2);  // its whole pages at least
  CHECK(p.pages + p.boundary_pages.size() >
        3);  // a segment of 3 pages and 100 bytes that starts mid-page
}

TEST_CASE(
    "place_window_segments without MPOL_MF_MOVE_ALL: pages rank 0 has mapped stay, and are counted",
    "[ranks][multinode]") {
  written_window w(4 * page());
  mpi::window_options options;
  options.move_shared = false;
  const mpi::window_placement p = mpi::place_window_segments(w.win, options);
  int node_of_0 = p.node;
  MPI_Bcast(&node_of_0, 1, MPI_INT, 0, w.comm);
  MPI_Barrier(w.comm);
  NUMAMOVE_SKIP_UNLESS(nodes_with_cpus().size() >= 2, "cpu-memory-nodes",
                       "needs ranks on two nodes");
  CHECK_FALSE(p.move_all_used);
  if (w.rank == 0 || p.node == node_of_0) {
    CHECK(p.needs_move_all == 0);
    return;
  }
  // Every page of its segment was first touched by rank 0, which maps it: only MOVE_ALL moves it.
  CHECK(p.needs_move_all == p.pages);
  CHECK(p.needs_move_all > 0);
  CHECK_FALSE(p);
}

TEST_CASE("allocate_shared_aligned: page-aligned parts that share no page, each on its rank's node",
          "[ranks]") {
  MPI_Comm comm = MPI_COMM_NULL;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &comm);
  int rank = 0;
  int ranks = 0;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &ranks);
  mpi::aligned_window w = mpi::allocate_shared_aligned(3 * page() + 100, comm);
  std::vector<mpi::window_part> parts;
  for (int r = 0; r < ranks; ++r) parts.push_back(mpi::aligned_part(w.win, r));
  MPI_Barrier(comm);
  if (rank == 0)
    for (const mpi::window_part& part : parts) std::memset(part.base, 0x33, part.bytes);
  std::vector<int> nodes(static_cast<std::size_t>(ranks));
  MPI_Allgather(&w.placement.node, 1, MPI_INT, nodes.data(), 1, MPI_INT, comm);
  MPI_Barrier(comm);
  const int next = (rank + 1) % ranks;
  const mpi::window_part& theirs = parts[static_cast<std::size_t>(next)];
  for (std::size_t i = 0; i < theirs.bytes; i += page())
    (void)static_cast<volatile char*>(theirs.base)[i];
  const std::vector<int> status = kernel_query(theirs.base, theirs.bytes / page());
  MPI_Barrier(comm);
  MPI_Win_free(&w.win);
  MPI_Comm_free(&comm);

  INFO("rank " << rank << ": " << w.error.message() << " / " << w.placement.error.message());
  CHECK_FALSE(w.error);
  CHECK(w.base == parts[static_cast<std::size_t>(rank)].base);
  CHECK(w.bytes == 4 * page());
  CHECK(w.placement.boundary_pages.empty());
  if (w.placement.node >= 0) {
    CHECK(w);
    CHECK(w.placement.pages == 4);
  } else {  // a CPU of a node without memory (the memoryless guest): the window, unplaced
    CHECK(w.placement.error == std::error_code(ENODEV, std::generic_category()));
  }
  for (std::size_t a = 0; a < parts.size(); ++a) {
    CHECK(reinterpret_cast<std::uintptr_t>(parts[a].base) % page() == 0);
    CHECK(parts[a].bytes == 4 * page());
    for (std::size_t b = a + 1; b < parts.size(); ++b) {
      const auto x = reinterpret_cast<std::uintptr_t>(parts[a].base);
      const auto y = reinterpret_cast<std::uintptr_t>(parts[b].base);
      CHECK((x + parts[a].bytes <= y || y + parts[b].bytes <= x));
    }
  }
  if (nodes[static_cast<std::size_t>(next)] >= 0)
    CHECK(pages_on(status, nodes[static_cast<std::size_t>(next)]) == status.size());
}

TEST_CASE("gather_locality: the table of an array and of each process, at the root", "[ranks]") {
  mpi::place_rank();
  region field(512);  // fresh pages: reused heap memory would stay where it was first touched
  fill(field.data, field.bytes, 5);
  const mpi::locality_table table = mpi::gather_locality(field.data, field.bytes);
  const mpi::locality_table processes = mpi::gather_locality();
  reset_policy();
  MPI_Barrier(MPI_COMM_WORLD);
  if (world_rank() != 0) {
    CHECK(table.ranks.empty());
    CHECK(table.to_string().empty());
    return;
  }
  REQUIRE(table.ranks.size() == static_cast<std::size_t>(world_size()));
  bool every_rank_has_a_node = true;
  for (std::size_t r = 0; r < table.ranks.size(); ++r) {
    const mpi::rank_locality& line = table.ranks[r];
    CHECK(line.binding.rank == static_cast<int>(r));
    INFO(table.to_string());
    CHECK(line.bytes == field.bytes);
    if (line.binding.node >= 0)
      CHECK(line.fraction() == 1.0);
    else
      every_rank_has_a_node = false;  // a CPU of a node without memory: no local memory
    CHECK_FALSE(line.host.empty());
    CHECK(processes.ranks[r].bytes > 0);
  }
  if (every_rank_has_a_node)
    CHECK(table.fraction() == 1.0);
  else
    CHECK(table.fraction() < 1.0);
  const std::string text = table.to_string();
  CHECK(text.rfind("rank  host", 0) == 0);
  CHECK(static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) ==
        table.ranks.size() + 1);
}

TEST_CASE("errors: a window that is not shared is EINVAL, MPI's errors keep MPI's words",
          "[ranks]") {
  char memory[64];
  MPI_Win plain = MPI_WIN_NULL;
  MPI_Win_create(memory, sizeof memory, 1, MPI_INFO_NULL, MPI_COMM_WORLD, &plain);
  const mpi::window_placement p = mpi::place_window_segments(plain);
  MPI_Win_free(&plain);
  const mpi::window_placement none = mpi::place_window_segments(MPI_WIN_NULL);

  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  mpi::policy_options bad;
  bad.comm = MPI_COMM_NULL;
  const mpi::rank_placement r = mpi::place_rank(bad);
  std::error_code thrown;
  try {
    mpi::rank_affinity(MPI_COMM_NULL);
  } catch (const std::system_error& e) {
    thrown = e.code();
  }
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
  MPI_Barrier(MPI_COMM_WORLD);

  CHECK(p.error == std::error_code(EINVAL, std::generic_category()));
  CHECK(none.error == std::error_code(EINVAL, std::generic_category()));
  CHECK(&r.error.category() == &mpi::mpi_category());
  CHECK(r.error.value() != MPI_SUCCESS);
  CHECK(thrown.category() == mpi::mpi_category());
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(MPI_ERR_COMM, text, &length);
  CHECK(mpi::mpi_category().message(MPI_ERR_COMM) ==
        std::string(text, static_cast<std::size_t>(length)));
  CHECK(std::string(mpi::mpi_category().name()) == "mpi");
}

TEST_CASE("place_rank in a cpuset without the rank's node: EACCES", "[ranks-cpuset]") {
  const mpi::rank_binding binding = me();
  const std::vector<int> allowed = numamove::detail::mems_allowed();
  const mpi::rank_placement r = mpi::place_rank();
  reset_policy();
  MPI_Barrier(MPI_COMM_WORLD);
  INFO("rank " << world_rank() << " node " << binding.node << ", mems allowed "
               << to_text(allowed));
  if (std::find(allowed.begin(), allowed.end(), binding.node) == allowed.end())
    CHECK(r.error == std::error_code(EACCES, std::generic_category()));
  else
    CHECK_FALSE(r.error);
}
