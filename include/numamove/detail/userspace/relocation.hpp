// How the userspace migrator moves private pages: fresh pages on the target node (mbind where
// allowed, else first touch by a worker pinned to the node), the data copied, and the fresh pages
// put atomically at the original virtual addresses with mremap(MREMAP_FIXED). See
// docs/userspace.md for the whole story; in short:
//
//   plan      (relocation_plan.hpp) consecutive pages of one mapping with one target form a run
//             (never-touched pages and the zero page may ride inside: the fresh pages leave them
//             untouched); runs are cut into chunks at huge-page boundaries. Each copy run gets
//             one fresh mapping, at the same offset modulo the huge-page size, so huge pages
//             survive the mremap, and committed chunks merge back into one mapping.
//   phase A   workers populate the fresh pages (first touch places them); the caller checks
//             where they landed (query, or numa_maps) and gives up runs that are not on target.
//             Huge chunks THP backs are late: phase B populates them (see chunk::late).
//   phase B   batch by batch, with the program's other threads stopped (fence.hpp): read the
//             address space again (live_maps.hpp; a page whose mapping the program unmapped or
//             changed is not touched), read pagemap again (the program may have written or
//             dropped a page meanwhile), copy, mremap into place (chunk_moves.hpp); then let
//             the threads go.
//
// Nothing the workers write during phase B lies in memory a request could name (the arena and
// the workers' control pages are mapped after the request was examined, and are never taken
// for the program's pages), and nothing allocates there: a stopped thread may hold the malloc
// lock.
#pragma once

#ifndef NUMAMOVE_PUBLIC_INCLUDE
#error "numamove/detail/userspace/relocation.hpp is internal: include a public numamove header"
#endif

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include "../../capabilities.hpp"
#include "../linux/fd.hpp"
#include "../linux/huge_pages.hpp"
#include "../linux/maps.hpp"
#include "../linux/pagemap.hpp"
#include "../linux/proc.hpp"
#include "../linux/syscalls.hpp"
#include "../linux/sys.hpp"
#include "../page_batches.hpp"
#include "arena.hpp"
#include "chunk_moves.hpp"
#include "fault_injection.hpp"
#include "fence.hpp"
#include "live_maps.hpp"
#include "own_mappings.hpp"
#include "page_rules.hpp"
#include "relocation_plan.hpp"
#include "workers.hpp"

namespace numamove::detail::userspace {

/// How the userspace path moves pages; the defaults are move_pages(2)'s behaviour.
struct relocation_options {
  bool force = false;          ///< move pages already on their target too
  bool protect_writes = true;  ///< stop the other threads while pages are copied and committed
  unsigned workers = 0;        ///< threads per target node; 0 picks by size and the node's CPUs
};

/// Calls, once per process, every function that phase B calls, so that lazy binding has
/// resolved them before any page is protected (resolving writes the GOT, which may share a page
/// with a global array being moved).
inline void resolve_phase_b_calls() {
  static const bool done = [] {
    void* page =
        ::mmap(nullptr, page_size(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) return false;
    unsigned char byte = 0;
    ::mprotect(page, page_size(), PROT_READ | PROT_WRITE);
    ::madvise(page, page_size(), MADV_NORMAL);
    ::mremap(page, page_size(), page_size(), 0);
    ::msync(page, page_size(), MS_ASYNC);
    ::mincore(page, page_size(), &byte);
    if (const unique_fd pagemap = open_proc(0, "pagemap")) {
      std::uint64_t entry = 0;
      ::pread(pagemap.get(), &entry, sizeof entry, 0);
      ::posix_fadvise(pagemap.get(), 0, 0, POSIX_FADV_NORMAL);
    }
    iovec local{&byte, 1};
    iovec remote{page, 1};
    ::process_vm_readv(::getpid(), &local, 1, &remote, 1, 0);
    std::memcpy(&byte, page, 1);
    // The fence's and live_maps' calls.
    if (const unique_fd maps = open_proc(0, "maps")) {
      char text[64];
      ::lseek(maps.get(), 0, SEEK_SET);
      (void)!::read(maps.get(), text, sizeof text);
      (void)std::memchr(text, '\n', sizeof text);
    }
    (void)std::atol("1");
    const timespec no_time{0, 0};
    ::nanosleep(&no_time, nullptr);
    timespec t{};
    ::clock_gettime(CLOCK_MONOTONIC, &t);
    ::syscall(SYS_tgkill, ::getpid(), this_thread_id(), 0);
    ::munmap(page, page_size());
    return true;
  }();
  (void)done;
}

/// The file mapping `m` maps, opened for reading: through /proc/self/map_files (the mapped file
/// itself, unlinked or renamed too; needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE), else by its
/// path when that still names the mapped file. Returns the descriptor, or none.
inline unique_fd open_mapped_file(const mapping& m) {
  char name[64];
  std::snprintf(name, sizeof name, "map_files/%lx-%lx", static_cast<unsigned long>(m.start),
                static_cast<unsigned long>(m.end));
  const auto is_mapped_file = [&](const unique_fd& fd) {
    struct stat st {};
    return fd && ::fstat(fd.get(), &st) == 0 && static_cast<std::uint64_t>(st.st_ino) == m.inode &&
           (static_cast<std::uint64_t>(major(st.st_dev)) << 32 | minor(st.st_dev)) == m.device;
  };
  unique_fd file = open_proc(0, name);
  if (is_mapped_file(file)) return file;
  file.reset(::open(m.path.c_str(), O_RDONLY | O_CLOEXEC));
  if (is_mapped_file(file)) return file;
  return unique_fd{};
}

/// Gives the fresh mapping of `r` (`bytes` at r.fresh) the madvise flags and the name of the
/// original mapping `m`.
inline void copy_mapping_advice(const run& r, const mapping& m, std::size_t bytes) {
  void* fresh = reinterpret_cast<void*>(r.fresh);
  if (m.has_flag("hg")) ::madvise(fresh, bytes, MADV_HUGEPAGE);
  if (m.has_flag("nh")) ::madvise(fresh, bytes, MADV_NOHUGEPAGE);
  if (m.has_flag("dd")) ::madvise(fresh, bytes, MADV_DONTDUMP);
#ifdef MADV_WIPEONFORK
  if (m.has_flag("wf")) ::madvise(fresh, bytes, MADV_WIPEONFORK);
#endif
  if (m.has_flag("mg")) ::madvise(fresh, bytes, MADV_MERGEABLE);
#ifdef PR_SET_VMA
  if (m.path.rfind("[anon:", 0) == 0 && m.path.back() == ']') {
    const std::string name = m.path.substr(6, m.path.size() - 7);
    ::prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, r.fresh, bytes, name.c_str());
  }
#endif
}

/// Maps the fresh pages of copy run `r` (whose original pages start at `begin` in mapping `m`)
/// inside a reservation, at the run's offset modulo the huge-page size, with the original
/// mapping's madvise flags, placed on the run's node by mbind where allowed. Returns 0, or
/// ENOMEM when the reservation or the mapping cannot be had.
inline int map_fresh(run& r, const mapping& m, std::uintptr_t begin, const capabilities& here) {
  const std::size_t page = page_size();
  const std::size_t huge = thp_size();
  const std::size_t bytes = r.pages * page;
  if (injected(failure_point::map_destination) != 0) return ENOMEM;
  // Guard pages on both sides keep the fresh mapping from merging with its neighbours, so that
  // numa_maps shows it alone.
  r.reserved = bytes + huge + 2 * page;
  void* reservation = map_own(r.reserved, PROT_NONE, MAP_NORESERVE);
  if (reservation == MAP_FAILED) return ENOMEM;
  r.reservation = reinterpret_cast<std::uintptr_t>(reservation);
  const std::uintptr_t lowest = r.reservation + page;
  r.fresh = lowest + ((begin % huge) + huge - lowest % huge) % huge;
  // MAP_NORESERVE: mremap charges moved accountable memory after it has unmapped the
  // destination, and a refused charge there would lose the original pages.
  if (::mmap(reinterpret_cast<void*>(r.fresh), bytes, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == MAP_FAILED)
    return ENOMEM;
  copy_mapping_advice(r, m, bytes);
  if (here.mbind) {
    // The original policy comes back once the pages are placed; MPOL_PREFERRED rather than
    // MPOL_BIND, so that a full node shows as misplaced pages (-ENOMEM) instead of the OOM killer.
    if (here.get_mempolicy && sys_get_mempolicy(&r.policy_mode, r.policy_mask, policy_mask_bits,
                                                reinterpret_cast<void*>(begin), mpol_f_addr) != 0)
      r.policy_mode = mpol_default;
    const node_mask mask({r.node});
    r.placed_by_mbind = sys_mbind(reinterpret_cast<void*>(r.fresh), bytes, mpol_preferred,
                                  mask.words.data(), mask.maxnode, 0) == 0;
  }
  return 0;
}

/// Prepares the runs of `e`: fresh mappings for copies, the mapped files for refaults. A run
/// that cannot be prepared keeps its errno in run::error (ENOMEM, EBUSY: no file).
inline void prepare_runs(const examination& e, const capabilities& here, std::vector<run>& runs) {
  for (run& r : runs) {
    const mapping& m = e.maps[r.vma];
    if (r.kind == treatment::copy) {
      r.error = map_fresh(r, m, e.pages[r.first].address, here);
      r.thp = thp_backs(m, here.thp);  // the fresh mapping copies the opt-in or opt-out
    } else {
      r.file = open_mapped_file(m);
      if (!r.file) r.error = EBUSY;
    }
  }
}

/// Whether a copy run's original pages cannot be read (PROT_NONE): phase B then reads them
/// through /proc/self/mem.
inline bool copies_unreadable_pages(const examination& e, const std::vector<run>& runs) {
  for (const run& r : runs)
    if (r.kind == treatment::copy && (e.maps[r.vma].protection() & PROT_READ) == 0) return true;
  return false;
}

/// Gives back the reservations of the copy runs, except the addresses committed chunks came
/// from, which another thread may have mapped since. `chunks[0 .. count)` in address order.
inline void give_back_reservations(const std::vector<run>& runs, const chunk* chunks,
                                   std::size_t count) noexcept {
  for (std::size_t r = 0; r < runs.size(); ++r) {
    if (runs[r].reservation == 0) continue;
    std::uintptr_t from = runs[r].reservation;
    const std::uintptr_t end = runs[r].reservation + runs[r].reserved;
    for (std::size_t k = 0; k < count; ++k) {
      if (chunks[k].run != r || !chunks[k].committed) continue;
      if (chunks[k].fresh > from) ::munmap(reinterpret_cast<void*>(from), chunks[k].fresh - from);
      from = chunks[k].fresh + chunks[k].pages * page_size();
    }
    if (end > from) ::munmap(reinterpret_cast<void*>(from), end - from);
  }
}

/// Whatever happens once the arena exists (an exception too), the reservations go back.
struct reservations_guard {
  const std::vector<run>& runs;
  const chunk* chunks;
  std::size_t count;
  ~reservations_guard() { give_back_reservations(runs, chunks, count); }
};

/// numamove's own mappings made during the call, in the arena: what phase B never takes for
/// the program's pages.
struct own_ranges {
  own_range* ranges = nullptr;
  std::size_t count = 0;

  void add(std::uintptr_t begin, std::uintptr_t end) noexcept { ranges[count++] = {begin, end}; }
};

/// What phase B writes and reads while the program's threads are stopped, carved out of one
/// arena made before the first stop.
struct stop_time_memory {
  std::size_t thread_room;  // the threads now, with room for many more
  std::size_t maps_room;    // lines of /proc/self/maps
  arena memory;
  chunk* chunks;
  unsigned char* moved;
  int* verdict;
  std::atomic<std::size_t>* next;  // per team
  std::uint64_t* entries;          // per worker, one huge page's worth
  unsigned char* evicted;          // per worker, one byte per page of a huge page
  void** addresses;                // per worker, one huge page's worth
  int* nodes;                      // per worker, one huge page's worth
  pid_t* tids;
  live_mapping* live_entries;
  char* live_text;
  own_ranges own;
  live_maps now;

  stop_time_memory(const relocation_plan& plan, const examination& e, std::size_t huge_pages)
      : thread_room(2 * count_threads() + 256),
        maps_room(2 * e.maps.size() + 256),
        memory(bytes(plan, e, huge_pages, thread_room, maps_room)),
        chunks(memory.make<chunk>(plan.chunks.size())),
        moved(memory.make<unsigned char>(e.pages.size())),
        verdict(memory.make<int>(e.pages.size())),
        next(memory.make<std::atomic<std::size_t>>(plan.nodes.size())),
        entries(memory.make<std::uint64_t>(workers(plan) * huge_pages)),
        evicted(memory.make<unsigned char>(workers(plan) * huge_pages)),
        addresses(memory.make<void*>(workers(plan) * huge_pages)),
        nodes(memory.make<int>(workers(plan) * huge_pages)),
        tids(memory.make<pid_t>(thread_room)),
        live_entries(memory.make<live_mapping>(maps_room)),
        live_text(memory.make<char>(maps_room * 256)),
        own{memory.make<own_range>(own_room(plan)), 0},
        now(live_text, maps_room * 256, live_entries, maps_room) {
    const own_range extent = memory.extent();
    own.add(extent.begin, extent.end);
  }

 private:
  static std::size_t workers(const relocation_plan& plan) {
    std::size_t all = 0;
    for (const unsigned w : plan.team_sizes) all += w;
    return all;
  }
  // The arena, the reservations, each team's control page and stacks, the fence's state.
  static std::size_t own_room(const relocation_plan& plan) {
    return plan.runs.size() + workers(plan) + plan.nodes.size() + 3;
  }
  static std::size_t bytes(const relocation_plan& plan, const examination& e,
                           std::size_t huge_pages, std::size_t thread_room, std::size_t maps_room) {
    const std::size_t pages = e.pages.size();
    const std::size_t worker_pages = workers(plan) * huge_pages;
    return arena::room<chunk>(plan.chunks.size()) + arena::room<unsigned char>(pages) +
           arena::room<int>(pages) + arena::room<std::atomic<std::size_t>>(plan.nodes.size()) +
           arena::room<std::uint64_t>(worker_pages) + arena::room<unsigned char>(worker_pages) +
           arena::room<void*>(worker_pages) + arena::room<int>(worker_pages) +
           arena::room<pid_t>(thread_room) + arena::room<live_mapping>(maps_room) +
           arena::room<char>(maps_room * 256) + arena::room<own_range>(own_room(plan));
  }
};

/// Whether phase B can check where late chunks' pages landed: one node, or the query.
inline bool late_placement_checkable(const capabilities& here) noexcept {
  return here.nodes.size() == 1 || here.move_pages_query;
}

/// The chunks of the plan as the phases see them, in `chunks`: each with its fresh pages, huge
/// copy chunks that THP backs late where their placement can be checked in phase B.
inline void set_up_chunks(const relocation_plan& plan, const examination& e,
                          const std::vector<run>& runs, std::size_t huge_pages, bool late,
                          chunk* chunks) noexcept {
  for (std::size_t k = 0; k < plan.chunks.size(); ++k) {
    chunk& c = chunks[k];
    const run& r = runs[plan.chunks[k].run];
    c.first = plan.chunks[k].first;
    c.pages = plan.chunks[k].pages;
    c.run = plan.chunks[k].run;
    c.fresh = r.fresh + (e.pages[c.first].address - e.pages[r.first].address);
    c.huge = c.pages == huge_pages;
    c.late = late && c.huge && r.kind == treatment::copy && r.thp;
  }
}

/// One team of workers per target node, pinned to the node's CPUs where it allows it; nullptr
/// where no thread could be started. Their mappings are added to `own`.
inline std::vector<std::unique_ptr<worker_team>> start_teams(const relocation_plan& plan,
                                                             const capabilities& here,
                                                             own_ranges& own) {
  std::vector<std::unique_ptr<worker_team>> teams;
  for (std::size_t t = 0; t < plan.nodes.size(); ++t) {
    const capabilities::node_access* access = here.find(plan.nodes[t]);
    const std::vector<int> cpus =
        access != nullptr && access->pinnable ? access->cpus : std::vector<int>{};
    try {
      teams.push_back(std::make_unique<worker_team>(plan.team_sizes[t], cpus));
    } catch (const std::system_error&) {
      teams.push_back(nullptr);
    }
    if (teams[t] != nullptr)
      teams[t]->for_each_mapping(
          [&](std::uintptr_t begin, std::uintptr_t end) { own.add(begin, end); });
  }
  return teams;
}

/// Everything the teams share but their queue, and how each team's refaults are placed.
struct team_setup {
  const examination& e;
  const std::vector<run>& runs;
  const stop_time_memory& memory;
  const process_files& files;
  std::mutex& refault_lock;
  const std::vector<node_mask>& masks;  // per team: its node
  std::size_t huge_pages;               // base pages of a huge page: the workers' buffers
};

/// The teams' jobs: what they share, each team's chunks queued for phase A, its workers'
/// buffers, and, for a team not pinned, the node its refaults ask for (set_mempolicy).
inline std::vector<team_job> make_jobs(const relocation_plan& plan, const capabilities& here,
                                       const std::vector<std::unique_ptr<worker_team>>& teams,
                                       const team_setup& s) {
  std::vector<team_job> jobs(plan.nodes.size());
  const worker_buffers every_worker{
      {s.memory.entries, s.memory.evicted, s.memory.addresses, s.memory.nodes}, s.huge_pages};
  std::size_t worker_base = 0;
  for (std::size_t t = 0; t < plan.nodes.size(); ++t) {
    team_job& job = jobs[t];
    job.request = {s.e.pages.data(), &s.e.maps, s.runs.data()};
    job.progress = {s.memory.chunks, s.memory.moved, s.memory.verdict};
    job.live = {&s.memory.now, s.memory.own.ranges, 0};
    job.files = s.files;
    job.queue.order = plan.orders[t].data();
    job.queue.next = &s.memory.next[t];
    job.queue.reset({0, plan.orders[t].size()});
    job.buffers = {every_worker.of(worker_base), s.huge_pages};
    worker_base += plan.team_sizes[t];
    job.refaults.one_at_a_time = &s.refault_lock;
    const bool pinned = teams[t] != nullptr && teams[t]->pinned();
    if (!pinned && here.set_mempolicy) job.refaults.prefer = &s.masks[t];
    job.query_late = here.nodes.size() > 1;
  }
  return jobs;
}

/// Gives up (ENOMEM) the chunks of a team that cannot place them: no thread, or neither pinned
/// nor helped by mbind (copies) or set_mempolicy (refaults).
inline void give_up_unplaceable(const relocation_plan& plan,
                                const std::vector<std::unique_ptr<worker_team>>& teams,
                                const std::vector<team_job>& jobs, const std::vector<run>& runs,
                                chunk* chunks) {
  for (std::size_t t = 0; t < plan.nodes.size(); ++t) {
    const bool pinned = teams[t] != nullptr && teams[t]->pinned();
    for (const std::size_t k : plan.orders[t]) {
      const run& r = runs[chunks[k].run];
      const bool helped =
          r.kind == treatment::copy ? r.placed_by_mbind : jobs[t].refaults.prefer != nullptr;
      if ((teams[t] == nullptr || (!pinned && !helped)) && chunks[k].error == 0)
        chunks[k].error = ENOMEM;
    }
  }
}

/// Runs `work` on every team with chunks queued, all at once, and returns when every one of
/// them is done. Allocates nothing.
inline void run_teams(const std::vector<std::unique_ptr<worker_team>>& teams,
                      std::vector<team_job>& jobs, worker_team::job work) noexcept {
  const auto busy = [&](std::size_t t) { return teams[t] != nullptr && !jobs[t].queue.empty(); };
  for (std::size_t t = 0; t < teams.size(); ++t)
    if (busy(t)) teams[t]->start(work, &jobs[t]);
  for (std::size_t t = 0; t < teams.size(); ++t)
    if (busy(t)) teams[t]->wait();
}

/// After phase A: where did the fresh pages land? Pages not on the target mean the node had no
/// room (or a policy of the process sent them elsewhere): their chunk (per page from the query;
/// their whole run from numa_maps, which counts per mapping) stays where it is, ENOMEM.
inline void check_placement(const examination& e, const capabilities& here, std::vector<run>& runs,
                            chunk* chunks, std::size_t count) {
  const auto waiting = [&](const chunk& c) {
    const run& r = runs[c.run];
    return r.kind == treatment::copy && r.error == 0 && c.error == 0 && !c.late;
  };
  for (std::size_t k = 0; k < count; ++k)
    if (waiting(chunks[k]) && injected(failure_point::place) != 0) chunks[k].error = ENOMEM;
  const bool elsewhere_possible = here.nodes.size() > 1;  // on one node there is nowhere else
  if (elsewhere_possible && here.move_pages_query) {
    page_batch fresh;
    for (std::size_t k = 0; k < count; ++k) {
      const chunk& c = chunks[k];
      if (!waiting(c)) continue;
      for (std::size_t j = 0; j < c.pages; ++j)
        if (e.pages[c.first + j].what == treatment::copy)
          fresh.add(k, reinterpret_cast<void*>(c.fresh + j * page_size()));
    }
    if (!fresh.empty() && query_nodes(0, fresh) == 0)
      for (std::size_t f = 0; f < fresh.size(); ++f)
        if (fresh.status[f] != runs[chunks[fresh.from[f]].run].node)
          chunks[fresh.from[f]].error = ENOMEM;
  } else if (elsewhere_possible && here.numa_maps) {
    const auto counts = read_numa_maps(0);
    for (run& r : runs) {
      if (r.kind != treatment::copy || r.error != 0) continue;
      const auto found = counts.find(r.fresh);
      if (found == counts.end()) continue;
      for (const auto& [node, pages] : found->second)
        if (node != r.node && pages > 0) r.error = ENOMEM;
    }
  }
}

/// Gives the fresh pages that mbind placed their original policy back, but the late chunks',
/// which keep it until phase B has populated them: one call per stretch of a run's chunks.
inline void restore_policies(const std::vector<run>& runs, const chunk* chunks,
                             std::size_t count) noexcept {
  const auto restored_now = [&](const chunk& c) { return runs[c.run].placed_by_mbind && !c.late; };
  const auto joins = [&](std::size_t before, std::size_t at) {
    return chunks[at].run == chunks[before].run &&
           restored_now(chunks[at]) == restored_now(chunks[before]);
  };
  for_each_run(count, joins, [&](std::size_t first, std::size_t end) {
    const chunk& last = chunks[end - 1];
    if (restored_now(chunks[first]))
      restore_policy(runs[chunks[first].run], chunks[first].fresh,
                     last.fresh + last.pages * page_size() - chunks[first].fresh);
  });
}

/// Phase A: the teams populate the fresh pages, placed; the chunks not on their target are
/// given up; the fresh mappings get their original policy back.
inline void place_fresh_pages(const examination& e, const capabilities& here,
                              std::vector<run>& runs,
                              const std::vector<std::unique_ptr<worker_team>>& teams,
                              std::vector<team_job>& jobs, chunk* chunks, std::size_t count) {
  run_teams(teams, jobs, &populate_chunks);
  check_placement(e, here, runs, chunks, count);
  restore_policies(runs, chunks, count);
}

/// Phase B: batch by batch, the program's threads stopped (unless `protect_writes` is off),
/// the address space read again, and the teams look again, copy and commit. When a stop fails,
/// the chunks of that batch and the later ones stay where they are (EBUSY): another thread
/// could change the address space meanwhile. Allocates nothing.
inline void commit_batches(const relocation_plan& plan,
                           const std::vector<std::unique_ptr<worker_team>>& teams,
                           std::vector<team_job>& jobs, stop_time_memory& memory,
                           bool protect_writes) noexcept {
  for (const chunk_range batch : plan.batches) {
    thread_fence fence(memory.tids, memory.thread_room);
    int error = protect_writes ? injected(failure_point::stop) : 0;
    if (protect_writes && error == 0) error = fence.stop();
    if (error != 0) {
      for (std::size_t k = batch.begin; k < plan.chunks.size(); ++k)
        if (memory.chunks[k].error == 0) memory.chunks[k].error = EBUSY;
      return;
    }
    memory.now.read();
    for (std::size_t t = 0; t < jobs.size(); ++t)
      jobs[t].queue.reset(share_of(plan.orders[t], batch));
    run_teams(teams, jobs, &move_chunks);
    fence.resume();
  }
}

/// The nodes the refaulted pages of `chunks` are on now, per page of `e` (-1: not refaulted,
/// or the kernel cannot say).
inline std::vector<int> refaulted_nodes(const examination& e, const capabilities& here,
                                        const std::vector<run>& runs, const chunk* chunks,
                                        std::size_t count, const unsigned char* moved) {
  std::vector<int> node(e.pages.size(), -1);
  if (!here.move_pages_query) return node;
  page_batch asked;
  for (std::size_t k = 0; k < count; ++k) {
    if (runs[chunks[k].run].kind != treatment::refault) continue;
    for (std::size_t i = chunks[k].first; i < chunks[k].first + chunks[k].pages; ++i)
      if (moved[i]) asked.add(i, reinterpret_cast<void*>(e.pages[i].address));
  }
  if (!asked.empty() && query_nodes(0, asked) == 0)
    for (std::size_t a = 0; a < asked.size(); ++a) node[asked.from[a]] = asked.status[a];
  return node;
}

/// Writes each page's outcome into e.pages: moved (and its node), or the status that says why
/// not.
inline void record_outcomes(examination& e, const capabilities& here, const std::vector<run>& runs,
                            const stop_time_memory& memory, std::size_t count) {
  const std::vector<int> refaulted =
      refaulted_nodes(e, here, runs, memory.chunks, count, memory.moved);
  for (std::size_t k = 0; k < count; ++k) {
    const chunk& c = memory.chunks[k];
    const run& r = runs[c.run];
    const int failure = r.error != 0 ? r.error : c.error;
    for (std::size_t i = c.first; i < c.first + c.pages; ++i) {
      page_facts& p = e.pages[i];
      if (memory.moved[i]) {  // committed (a failure resets its pages)
        p.moved = true;
        p.status = refaulted[i] >= 0 ? refaulted[i] : r.node;
        p.node = p.status;
      } else if (failure == 0 && memory.verdict[i] != 0) {
        p.status =
            memory.verdict[i];  // the program unmapped (-EFAULT) or changed (-EBUSY) it meanwhile
      } else if (p.what == treatment::copy) {
        // Not moved: a failure, or a page the program dropped meanwhile.
        p.status = failure != 0 ? -failure : -ENOENT;
      } else if (p.what == treatment::refault) {
        p.status = failure != 0 ? -failure : -EBUSY;  // someone kept it in the page cache
      }
    }
  }
}

/// Moves the copy and refault pages of `e` (statuses and `moved` flags land in e.pages).
inline void relocate(examination& e, const relocation_options& options) {
  const std::size_t page = page_size();
  std::vector<run_plan> planned_runs = plan_runs(e.pages, page);
  if (planned_runs.empty()) return;
  const capabilities& here = capabilities::of_this_process();
  const std::size_t huge_pages = thp_size() / page;
  const auto cpus_of = [&](int node) -> std::size_t {
    const capabilities::node_access* access = here.find(node);
    return access != nullptr && access->pinnable ? access->cpus.size() : 1;
  };
  const relocation_plan plan =
      plan_relocation(e.pages, std::move(planned_runs), page, huge_pages, options.workers, cpus_of);

  std::vector<run> runs(plan.runs.begin(), plan.runs.end());
  stop_time_memory memory(plan, e, huge_pages);
  const std::size_t count = plan.chunks.size();
  const reservations_guard give_back{runs, memory.chunks, count};
  prepare_runs(e, here, runs);
  set_up_chunks(plan, e, runs, huge_pages, late_placement_checkable(here), memory.chunks);
  for (const run& r : runs)
    if (r.reservation != 0) memory.own.add(r.reservation, r.reservation + r.reserved);

  resolve_phase_b_calls();
  const pagemap_file pagemap = pagemap_file::of(0);
  const unique_fd mem = copies_unreadable_pages(e, runs) ? open_proc(0, "mem") : unique_fd{};
  const process_files files{&pagemap, mem.get()};
  std::mutex refault_lock;
  std::vector<node_mask> masks;
  for (const int node : plan.nodes) masks.emplace_back(std::vector<int>{node});
  std::vector<std::unique_ptr<worker_team>> teams = start_teams(plan, here, memory.own);
  std::vector<team_job> jobs = make_jobs(
      plan, here, teams, team_setup{e, runs, memory, files, refault_lock, masks, huge_pages});
  give_up_unplaceable(plan, teams, jobs, runs, memory.chunks);

  place_fresh_pages(e, here, runs, teams, jobs, memory.chunks, count);

  const auto fence_extent = fence_state_extent();
  if (fence_extent.first != 0) memory.own.add(fence_extent.first, fence_extent.second);
  for (team_job& job : jobs) job.live.own_count = memory.own.count;
  commit_batches(plan, teams, jobs, memory, options.protect_writes);
  teams.clear();

  record_outcomes(e, here, runs, memory, count);
}

}  // namespace numamove::detail::userspace
